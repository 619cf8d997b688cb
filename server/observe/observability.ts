import { hostname } from "node:os";
import type { WorkerContext } from "../cluster.js";
import type { ServerConfig } from "../config.js";
import type { EventSink } from "../core/events.js";
import { Messaging, type MessagingDeps } from "../core/messaging.js";
import { ConnectionRegistry } from "../gateway/connection-registry.js";
import type { RequestObserver } from "../gateway/request-context.js";
import type { HttpRoute } from "../media/livekit-webhook.js";
import type { OwnerCallTracing } from "../route/owners.js";
import type { MessageStore } from "../store/message-store.js";
import { scrapeProcess, WorkerMetrics } from "./cluster-metrics.js";
import { GatewayMetrics, type MetricSources } from "./gateway-metrics.js";
import { createMetricsRoute } from "./metrics-route.js";
import { ObservedMessageStore } from "./observed-message-store.js";
import type { Tracing } from "./tracing.js";

/** Metrics and traces as configured, and where the server plugs them in. */
export interface Observability {
  /** Live connections, counted for the metrics. */
  readonly connections: ConnectionRegistry;
  /** The gateway's request observer; undefined when neither metrics nor traces are on. */
  readonly requestObserver: RequestObserver | undefined;
  /** Carries traces across owner calls; undefined without traces. */
  readonly ownerCallTracing: OwnerCallTracing | undefined;
  /** GET /metrics; undefined with metrics off. */
  readonly route: HttpRoute | undefined;
  /** The store, measured and traced as configured. */
  store(store: MessageStore): MessageStore;
  /** The core's event sink, traced as configured. */
  events(sink: EventSink): EventSink;
  /** The messaging core, traced as configured. */
  messaging(deps: MessagingDeps): Messaging;
  /** What the scrape-time metrics read, once routing runs. */
  watch(sources: Omit<MetricSources, "connections">): void;
  /** Flushes traces. */
  close(): Promise<void>;
}

/** True when traces are configured: the flag, or the standard OTEL_ variables (and not disabled by them). */
export function tracingConfigured(config: Pick<ServerConfig, "otlpEndpoint">, env: NodeJS.ProcessEnv): boolean {
  if (env.OTEL_SDK_DISABLED?.toLowerCase() === "true" || env.OTEL_TRACES_EXPORTER === "none") return false;
  return config.otlpEndpoint !== "" || (env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? "") !== "" || (env.OTEL_EXPORTER_OTLP_ENDPOINT ?? "") !== "";
}

/**
 * Starts what `--metrics` and `--otlp-endpoint` (or OTEL_EXPORTER_OTLP_ENDPOINT) ask for. With
 * both off nothing is wrapped: the store, the core, the event sink and the gateway run exactly
 * as without this module, and the tracing SDK is never loaded.
 */
export async function startObservability(config: Pick<ServerConfig, "metrics" | "otlpEndpoint" | "nodeId">, worker: WorkerContext | undefined, env: NodeJS.ProcessEnv = process.env): Promise<Observability> {
  const metrics = config.metrics === "on" ? new GatewayMetrics() : undefined;
  let tracing: Tracing | undefined;
  if (tracingConfigured(config, env)) {
    const { startTracing } = await import("./tracing.js");
    const node = config.nodeId !== "" ? config.nodeId : hostname();
    tracing = await startTracing({ endpoint: config.otlpEndpoint, instanceId: worker === undefined ? node : `${node}.w${worker.index}`, env });
  }
  const connections = new ConnectionRegistry(metrics?.connectionObserver);
  let route: HttpRoute | undefined;
  if (metrics !== undefined) {
    const gathered = worker === undefined ? undefined : new WorkerMetrics(metrics.registry, worker.channel);
    route = createMetricsRoute(() => (gathered === undefined ? scrapeProcess(metrics.registry) : gathered.scrape()));
  }
  return {
    connections,
    requestObserver: composeObservers(tracing?.requestObserver, metrics?.requestObserver),
    ownerCallTracing: tracing?.ownerCalls,
    route,
    store(store) {
      const measured = metrics?.measureStore(store) ?? store;
      return tracing === undefined ? measured : new ObservedMessageStore(measured, tracing.storeObserver);
    },
    events: (sink) => tracing?.events(sink) ?? sink,
    messaging: (deps) => tracing?.messaging(deps) ?? new Messaging(deps),
    watch(sources) {
      metrics?.watch({ ...sources, connections });
    },
    async close() {
      await tracing?.shutdown().catch(() => {});
    },
  };
}

/** `outer` around `inner` (a trace span around the measured request), or whichever exists. */
function composeObservers(outer: RequestObserver | undefined, inner: RequestObserver | undefined): RequestObserver | undefined {
  if (outer === undefined) return inner;
  if (inner === undefined) return outer;
  return {
    observe: (method, run) =>
      outer.observe(method, async () => {
        let code = 0;
        await inner.observe(method, async () => (code = await run()));
        return code;
      }),
    refused(method, code) {
      outer.refused(method, code);
      inner.refused(method, code);
    },
  };
}
