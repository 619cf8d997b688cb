import type http2 from "node:http2";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { parseTimeout as parseConnectTimeout } from "@connectrpc/connect/protocol-connect";
import { parseTimeout as parseGrpcTimeout } from "@connectrpc/connect/protocol-grpc";
import { DisconnectReason } from "../../gen/im/v1/gateway_pb.js";
import { ErrorDetailSchema, ErrorReason } from "../../gen/im/v1/message_pb.js";
import { Connection } from "./connection.js";
import { toConnectError } from "./errors.js";
import type { LongConnectionDeps } from "./gateway-service.js";
import {
  CONNECT_PATH,
  decodeRequest,
  EnvelopeReader,
  leanProtocolOf,
  malformed,
  refuse,
  requestEncoding,
  StreamSink,
  SUBSCRIBE_PATH,
  type LeanProtocol,
} from "./lean-stream.js";
import { RequestLoop } from "./request-loop.js";

/** What the lean long-connection path needs: the gateway service's parts and the frame bound. */
export interface LeanGatewayDeps extends LongConnectionDeps {
  /** Largest request message, in bytes. */
  readonly maxFrameBytes: number;
}

const noop = () => {};

/**
 * The long connection served directly on node:http2 streams: `GatewayService.Connect` and
 * `Subscribe` in gRPC and Connect's binary protocols (JSON and gRPC-Web go to connect-node,
 * which serves every other method on the same port). Per connection it holds the stream, a
 * Connection (bounds and deadlines) and, for Connect, an envelope reader and the request
 * loop; no async iterables, generators or per-frame promises. Pushes are the bytes each
 * Publication encoded once for every stream of its kind.
 *
 * Returns a stream handler: true when it took the stream, false to leave it to connect-node.
 */
export function createLeanGateway(deps: LeanGatewayDeps): (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => boolean {
  const { verifier, hub, registry, clock, logger } = deps;

  async function open(stream: http2.ServerHttp2Stream, protocol: LeanProtocol, pushOnly: boolean, compressed: boolean, authorization: string | null, timeoutMs: number | undefined): Promise<void> {
    let principal;
    try {
      principal = await verifier.verify(authorization);
    } catch (error) {
      refuse(stream, protocol, toConnectError(error));
      return;
    }
    if (stream.destroyed || stream.closed) return;
    if (hub.connectionsOf(principal.userId) >= deps.connectionsPerUserMax) {
      refuse(stream, protocol, tooManyConnections(deps.connectionsPerUserMax));
      return;
    }
    const lean = new LeanStream(deps, stream, protocol, pushOnly, compressed, principal.userId, principal.expiresAtMs);
    registry.add(lean.conn, protocol);
    if (timeoutMs !== undefined) lean.deadlineIn(timeoutMs);
    lean.sink.open();
    if (pushOnly) stream.resume();
    try {
      await hub.attach(lean.conn);
    } catch (error) {
      lean.sink.error = toConnectError(error);
      lean.conn.close();
      return;
    }
    if (lean.conn.ending) return;
    if (pushOnly) lean.sink.heartbeat(clock.nowMs());
    // Requests that arrived while the hub registered the connection are answered now: a sync
    // among them reads the store after every channel of the user delivers here.
    else lean.start();
  }

  return (stream, headers) => {
    const path = headers[":path"];
    if ((path !== CONNECT_PATH && path !== SUBSCRIBE_PATH) || headers[":method"] !== "POST") return false;
    const protocol = leanProtocolOf(headers["content-type"]);
    if (protocol === undefined) return false;
    stream.on("error", noop);
    const encoding = requestEncoding(protocol, headers);
    if (encoding !== "identity" && encoding !== "gzip") {
      refuse(stream, protocol, new ConnectError(`message encoding "${encoding}" is not supported (identity, gzip)`, Code.Unimplemented));
      return true;
    }
    const authorization = typeof headers.authorization === "string" ? headers.authorization : null;
    const timeout = protocol === "grpc" ? parseGrpcTimeout(headerOf(headers, "grpc-timeout"), TIMEOUT_MAX_MS) : parseConnectTimeout(headerOf(headers, "connect-timeout-ms"), TIMEOUT_MAX_MS);
    if (timeout.error !== undefined) {
      refuse(stream, protocol, malformed(timeout.error.rawMessage));
      return true;
    }
    open(stream, protocol, path === SUBSCRIBE_PATH, encoding === "gzip", authorization, timeout.timeoutMs).catch((error: unknown) => {
      logger.error({ err: error }, "long connection failed");
      if (!stream.destroyed) stream.close(http2Constants.NGHTTP2_INTERNAL_ERROR);
    });
    return true;
  };
}

/** The longest call deadline a client may ask for (a timer's range). */
const TIMEOUT_MAX_MS = 2 ** 31 - 1;

function headerOf(headers: http2.IncomingHttpHeaders, name: string): string | null {
  const value = headers[name];
  return typeof value === "string" ? value : null;
}

/** The LeanStream of a stream, set on the stream so that one shared function serves each event of every stream. */
const kLean = Symbol("lean");
type Tagged = http2.ServerHttp2Stream & { [kLean]?: LeanStream };

function onStreamData(this: Tagged, chunk: Buffer): void {
  this[kLean]?.data(chunk);
}

function onStreamEnd(this: Tagged): void {
  this[kLean]?.ended();
}

function onStreamClose(this: Tagged): void {
  this[kLean]?.closed();
}

/**
 * The server's side of one lean long connection: its Connection and StreamSink and, for
 * `Connect`, the reading of request messages into the request loop. Reached from the
 * stream's events through one shared listener per event, so a connection costs these few
 * objects and no closures.
 */
class LeanStream {
  readonly conn: Connection;
  readonly sink: StreamSink;
  readonly #deps: LeanGatewayDeps;
  readonly #compressed: boolean;
  #envelopes: EnvelopeReader | undefined;
  #loop: RequestLoop | undefined;
  /** Messages that came before start(), held (bounded) until the hub registered the connection. */
  #held: { flags: number; data: Uint8Array }[] | undefined;
  /** Set while a compressed message is being inflated: later messages wait behind it. */
  #chain: Promise<void> | undefined;
  #ended = false;
  /** Set when the client gave the call a deadline (grpc-timeout, connect-timeout-ms). */
  #deadline: NodeJS.Timeout | undefined;

  constructor(deps: LeanGatewayDeps, stream: http2.ServerHttp2Stream, protocol: LeanProtocol, pushOnly: boolean, compressed: boolean, userId: string, expiresAtMs: number) {
    this.#deps = deps;
    this.#compressed = compressed;
    this.sink = new StreamSink(stream, protocol, pushOnly ? "subscribe" : "connect", this, deps.limits.pushFlushMs);
    this.conn = new Connection(deps.nextConnectionId(), userId, expiresAtMs, deps.clock.nowMs(), deps.limits, this.sink, pushOnly);
    (stream as Tagged)[kLean] = this;
    stream.on("close", onStreamClose);
    if (!pushOnly) {
      this.#envelopes = new EnvelopeReader(deps.maxFrameBytes);
      this.#held = [];
      stream.on("data", onStreamData);
      stream.on("end", onStreamEnd);
    }
  }

  /**
   * The stream was ended from this side: nothing more is pushed to it, and the user's
   * connection count no longer includes it. It stays in the registry (which shutdown drains)
   * until the stream closes, so its last frames are flushed before the socket ends.
   */
  released(): void {
    this.#deps.hub.detach(this.conn);
  }

  /** Ends the call with DEADLINE_EXCEEDED after `timeoutMs`, as the client asked. */
  deadlineIn(timeoutMs: number): void {
    this.#deadline = setTimeout(() => {
      this.sink.error = new ConnectError(`the call's deadline of ${timeoutMs} ms passed`, Code.DeadlineExceeded);
      this.conn.close();
    }, timeoutMs);
    this.#deadline.unref();
  }

  /** The stream closed (both sides, or a reset). */
  closed(): void {
    clearTimeout(this.#deadline);
    this.conn.close();
    this.#deps.registry.delete(this.conn);
  }

  /** The hub registered the connection: answer what was held, then read on. */
  start(): void {
    this.#loop = new RequestLoop(this.#deps, this.conn.userId, this.conn);
    const early = this.#held ?? [];
    this.#held = undefined;
    for (const m of early) this.message(m.flags, m.data);
    if (this.#ended) this.#finish();
  }

  data(chunk: Buffer): void {
    try {
      this.#envelopes?.push(chunk, this);
    } catch (error) {
      this.#fail(error);
    }
  }

  ended(): void {
    this.#ended = true;
    if ((this.#envelopes?.pendingBytes ?? 0) > 0) this.#fail(new ConnectError("the request stream ended inside a message", Code.InvalidArgument));
    else if (this.#held === undefined) this.#finish();
  }

  /** One request message, from the envelope reader. */
  message(flags: number, data: Uint8Array): void {
    const conn = this.conn;
    if (conn.ending) return;
    if (this.#held !== undefined) {
      // Bounded like requests in flight: a client may not pile up frames before it is registered.
      const max = this.#deps.limits.inFlightMax;
      if (this.#held.length >= max) this.#fail(new ConnectError(`more than ${max} requests before the connection was registered`, Code.ResourceExhausted));
      else this.#held.push({ flags, data: data.slice() });
      return;
    }
    const loop = this.#loop!;
    try {
      const request = decodeRequest(flags, data, this.#compressed, this.#deps.maxFrameBytes);
      if (request instanceof Promise) {
        this.#chain = (this.#chain ?? Promise.resolve()).then(() => request).then((r) => void loop.take(r), (e: unknown) => this.#fail(e));
      } else if (this.#chain !== undefined) {
        this.#chain = this.#chain.then(() => void loop.take(request));
      } else {
        loop.take(request);
      }
    } catch (error) {
      this.#fail(error);
    }
  }

  #finish(): void {
    void (this.#chain ?? Promise.resolve())
      .then(() => this.#loop?.settled())
      .then(() => this.conn.close());
  }

  #fail(error: unknown): void {
    const failure = toConnectError(error);
    this.sink.error = failure;
    this.conn.disconnect(DisconnectReason.PROTOCOL_ERROR, failure.rawMessage, 1000);
  }
}

/** RESOURCE_EXHAUSTED for a user over its long-connection bound on this process. */
export function tooManyConnections(max: number): ConnectError {
  return new ConnectError(`this user already holds ${max} long connections on this server: close one first`, Code.ResourceExhausted, undefined, [
    { desc: ErrorDetailSchema, value: create(ErrorDetailSchema, { reason: ErrorReason.TOO_MANY_CONNECTIONS, retryable: true, retryAfterMs: 5000 }) },
  ]);
}

const http2Constants = { NGHTTP2_INTERNAL_ERROR: 2 };
