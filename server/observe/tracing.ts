import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Span, type Tracer } from "@opentelemetry/api";
import { NodeSDK, resources, tracing } from "@opentelemetry/sdk-node";
import type { EventSink } from "../core/events.js";
import { Messaging, type FetchCommand, type MessagingDeps, type SendCommand, type SyncCommand } from "../core/messaging.js";
import type { ConversationRecord, StoredMessage } from "../core/model.js";
import type { RequestObserver } from "../gateway/request-context.js";
import type { OwnerCallTracing } from "../route/owners.js";
import type { StoreObserver } from "./observed-message-store.js";

/** Attribute names of the spans (the conversation and the message's seq). */
export const ATTR = { conversationId: "im.conversation_id", seq: "im.seq", owner: "im.owner" } as const;

/** How tracing is set up. */
export interface TracingOptions {
  /** OTLP/HTTP base URL (spans go to <url>/v1/traces); "" to take OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT. */
  readonly endpoint: string;
  /** This process's id (a worker of a node), the resource's service.instance.id. */
  readonly instanceId: string;
  readonly env: NodeJS.ProcessEnv;
  /** Where spans go instead of the OTLP exporter (tests: an in-memory exporter). */
  readonly spanProcessor?: tracing.SpanProcessor;
}

/** What the server wires in when tracing is on (server/observe/observability.ts). */
export interface Tracing {
  readonly requestObserver: RequestObserver;
  readonly storeObserver: StoreObserver;
  readonly ownerCalls: OwnerCallTracing;
  /** The messaging core with a span around each operation. */
  messaging(deps: MessagingDeps): Messaging;
  /** `sink` with a span around each publication of a message. */
  events(sink: EventSink): EventSink;
  /** Exports what is buffered and stops. */
  shutdown(): Promise<void>;
}

/**
 * OpenTelemetry traces (the Node SDK with an OTLP/HTTP exporter, protobuf or JSON as
 * OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL says): a span per request at the gateway, around the
 * owner hop on both sides (the trace context travels in the owner call), around the core's
 * operation, each store call and the publication. This module is imported only when tracing
 * is configured; otherwise none of it is loaded and no span object is ever made.
 */
export async function startTracing(options: TracingOptions): Promise<Tracing> {
  const sdk = new NodeSDK({
    serviceName: options.env.OTEL_SERVICE_NAME ?? "microchat",
    resource: resources.resourceFromAttributes({ "service.instance.id": options.instanceId }),
    spanProcessors: [options.spanProcessor ?? new tracing.BatchSpanProcessor(await otlpExporter(options))],
    instrumentations: [],
  });
  sdk.start();
  const tracer = trace.getTracer("microchat");
  return {
    requestObserver: requestObserver(tracer),
    storeObserver: storeObserver(tracer),
    ownerCalls: ownerCallTracing(tracer),
    messaging: (deps) => new TracedMessaging(deps, tracer),
    events: (sink) => new TracedEventSink(sink, tracer),
    shutdown: () => sdk.shutdown(),
  };
}

/** The OTLP/HTTP exporter, protobuf or JSON as OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL says. */
async function otlpExporter(options: TracingOptions): Promise<tracing.SpanExporter> {
  const protocol = options.env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? options.env.OTEL_EXPORTER_OTLP_PROTOCOL ?? "http/protobuf";
  const url = options.endpoint === "" ? undefined : `${options.endpoint.replace(/\/+$/, "")}/v1/traces`;
  let exporter: tracing.SpanExporter;
  if (protocol === "http/json") {
    const { OTLPTraceExporter } = await import("@opentelemetry/exporter-trace-otlp-http");
    exporter = new OTLPTraceExporter(url === undefined ? {} : { url });
  } else if (protocol === "http/protobuf") {
    const { OTLPTraceExporter } = await import("@opentelemetry/exporter-trace-otlp-proto");
    exporter = new OTLPTraceExporter(url === undefined ? {} : { url });
  } else {
    throw new Error(`OTEL_EXPORTER_OTLP_PROTOCOL ${JSON.stringify(protocol)} is not supported: use http/protobuf or http/json`);
  }
  return exporter;
}

/** Runs `run` in an active span that ends when it settles (an error when it rejects). */
async function inSpan<T>(tracer: Tracer, name: string, kind: SpanKind, attributes: Attributes, run: (span: Span) => Promise<T>): Promise<T> {
  return tracer.startActiveSpan(name, { kind, attributes }, async (span) => {
    try {
      return await run(span);
    } catch (error) {
      span.recordException(error as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
      throw error;
    } finally {
      span.end();
    }
  });
}

function requestObserver(tracer: Tracer): RequestObserver {
  return {
    observe: (method, run) =>
      inSpan(tracer, method, SpanKind.SERVER, { "rpc.system": "connect_rpc", "rpc.method": method }, async (span) => {
        const code = await run();
        span.setAttribute("rpc.grpc.status_code", code);
        if (code !== 0) span.setStatus({ code: SpanStatusCode.ERROR });
      }),
    refused: () => {},
  };
}

function storeObserver(tracer: Tracer): StoreObserver {
  return {
    run: (op, conversationId, call) =>
      inSpan(tracer, `store.${op}`, SpanKind.CLIENT, conversationId === undefined ? {} : { [ATTR.conversationId]: conversationId }, async (span) => {
        const result = await call();
        if (op === "append") span.setAttribute(ATTR.seq, (result as { message: StoredMessage }).message.seq);
        return result;
      }),
  };
}

function ownerCallTracing(tracer: Tracer): OwnerCallTracing {
  return {
    call: (owner, run) =>
      inSpan(tracer, "owner.call", SpanKind.CLIENT, { [ATTR.owner]: owner }, () => {
        const carrier: Record<string, string> = {};
        propagation.inject(context.active(), carrier);
        return run(carrier.traceparent ?? "");
      }),
    serve: (traceparent, run) =>
      context.with(propagation.extract(ROOT_CONTEXT, { traceparent }), () => inSpan(tracer, "owner.serve", SpanKind.SERVER, {}, () => run())),
  };
}

/** The messaging core with a span around each operation the gateway calls; the core itself stays pure. */
class TracedMessaging extends Messaging {
  readonly #tracer: Tracer;

  constructor(deps: MessagingDeps, tracer: Tracer) {
    super(deps);
    this.#tracer = tracer;
  }

  override send(userId: string, command: SendCommand, originConnectionId?: string): ReturnType<Messaging["send"]> {
    const target = "conversationId" in command.target ? { [ATTR.conversationId]: command.target.conversationId } : {};
    return inSpan(this.#tracer, "core.send", SpanKind.INTERNAL, target, async (span) => {
      const result = await super.send(userId, command, originConnectionId);
      if (result.ok) span.setAttributes({ [ATTR.conversationId]: result.value.message.conversationId, [ATTR.seq]: result.value.message.seq, "im.duplicate": result.value.duplicate });
      else span.setAttribute("im.refused", result.reason);
      return result;
    });
  }

  override sync(userId: string, command: SyncCommand): ReturnType<Messaging["sync"]> {
    return inSpan(this.#tracer, "core.sync", SpanKind.INTERNAL, { "im.cursors": command.cursors.length }, async (span) => {
      const result = await super.sync(userId, command);
      if (result.ok) span.setAttribute("im.sessions", result.value.sessions.length);
      return result;
    });
  }

  override fetchRange(userId: string, command: FetchCommand): ReturnType<Messaging["fetchRange"]> {
    const attributes = { [ATTR.conversationId]: command.conversationId, "im.after_seq": String(command.afterSeq), "im.up_to_seq": String(command.upToSeq) };
    return inSpan(this.#tracer, "core.fetchRange", SpanKind.INTERNAL, attributes, async (span) => {
      const result = await super.fetchRange(userId, command);
      if (result.ok) span.setAttributes({ "im.messages": result.value.messages.length, "im.last_seq": result.value.lastSeq });
      return result;
    });
  }
}

/** An EventSink with a span around each message's publication (encoding it, the hub, the broker). */
class TracedEventSink implements EventSink {
  readonly #sink: EventSink;
  readonly #tracer: Tracer;

  constructor(sink: EventSink, tracer: Tracer) {
    this.#sink = sink;
    this.#tracer = tracer;
  }

  messageAppended(conversation: ConversationRecord, message: StoredMessage, originConnectionId: string | undefined): void {
    const span = this.#tracer.startSpan("publish", { kind: SpanKind.PRODUCER, attributes: { [ATTR.conversationId]: conversation.id, [ATTR.seq]: message.seq } });
    try {
      context.with(trace.setSpan(context.active(), span), () => this.#sink.messageAppended(conversation, message, originConnectionId));
    } finally {
      span.end();
    }
  }

  readMoved(userId: string, conversationId: string, readSeq: number, originConnectionId: string | undefined): void {
    this.#sink.readMoved(userId, conversationId, readSeq, originConnectionId);
  }

  membersChanged(conversation: ConversationRecord, added: readonly string[], removed: readonly string[]): void {
    this.#sink.membersChanged(conversation, added, removed);
  }
}
