import type http2 from "node:http2";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import { DisconnectReason } from "../../gen/im/v1/gateway_pb.js";
import { ErrorDetailSchema, ErrorReason } from "../../gen/im/v1/message_pb.js";
import type { Clock } from "../core/clock.js";
import type { Hub } from "../route/hub.js";
import type { TokenVerifier } from "./auth.js";
import { Connection, type ConnectionLimits } from "./connection.js";
import { toConnectError } from "./errors.js";
import type { GatewayOperations } from "./gateway-operations.js";
import type { ConnectionRegistry } from "./gateway-service.js";
import {
  CONNECT_PATH,
  decodeRequest,
  EnvelopeReader,
  leanProtocolOf,
  refuse,
  requestEncoding,
  StreamSink,
  SUBSCRIBE_PATH,
  type LeanProtocol,
} from "./lean-stream.js";
import { RequestLoop } from "./request-loop.js";
import type { RequestValidator } from "./request-validator.js";

/** What the lean long-connection path needs (the same parts as the gateway service). */
export interface LeanGatewayDeps {
  readonly operations: GatewayOperations;
  readonly verifier: TokenVerifier;
  readonly validator: RequestValidator;
  readonly hub: Hub;
  readonly registry: ConnectionRegistry;
  readonly clock: Clock;
  readonly limits: ConnectionLimits;
  readonly logger: Logger;
  /** A new connection id, unique per process (shared with connect-node's streams). */
  readonly nextConnectionId: () => string;
  /** Largest request message, in bytes. */
  readonly maxFrameBytes: number;
  /** Long connections (Connect and Subscribe streams) one user may hold on this process. */
  readonly connectionsPerUserMax: number;
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
  const { verifier, hub, registry, clock, limits, logger } = deps;

  async function open(stream: http2.ServerHttp2Stream, protocol: LeanProtocol, pushOnly: boolean, compressed: boolean, authorization: string | null): Promise<void> {
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
    // Released when this side ends the stream (a client that never half-closes after the
    // final frame holds nothing of the server's but the stream itself) or when it closes.
    const release = () => {
      hub.detach(conn);
      registry.delete(conn);
    };
    const sink = new StreamSink(stream, protocol, pushOnly ? "subscribe" : "connect", release);
    const conn: Connection = new Connection(deps.nextConnectionId(), principal.userId, principal.expiresAtMs, clock.nowMs(), limits, sink, pushOnly);
    registry.add(conn);
    stream.once("close", () => conn.close());
    sink.open();
    const reader = pushOnly ? undefined : read(stream, conn, sink, principal.userId, compressed);
    if (pushOnly) stream.resume();
    try {
      await hub.attach(conn);
    } catch (error) {
      sink.error = toConnectError(error);
      conn.close();
      return;
    }
    if (conn.ending) return;
    if (pushOnly) sink.heartbeat(clock.nowMs());
    // Requests that arrived while the hub registered the connection are answered now: a sync
    // among them reads the store after every channel of the user delivers here.
    reader?.start();
  }

  /** Reads a Connect stream's request messages into its request loop (held until start()). */
  function read(stream: http2.ServerHttp2Stream, conn: Connection, sink: StreamSink, userId: string, compressed: boolean): { start(): void } {
    const envelopes = new EnvelopeReader(deps.maxFrameBytes);
    const loop = new RequestLoop(deps, userId, conn);
    /** Messages that came before start(), or behind a compressed one being inflated. */
    let held: { flags: number; data: Uint8Array }[] | undefined = [];
    let chain: Promise<void> | undefined;
    let ended = false;
    const fail = (error: unknown) => {
      const failure = toConnectError(error);
      sink.error = failure;
      conn.disconnect(DisconnectReason.PROTOCOL_ERROR, failure.rawMessage, 1000);
    };
    const take = (flags: number, data: Uint8Array) => {
      if (conn.ending) return;
      if (held !== undefined) {
        // Bounded like requests in flight: a client may not pile up frames before it is registered.
        if (held.length >= limits.inFlightMax) fail(new ConnectError(`more than ${limits.inFlightMax} requests before the connection was registered`, Code.ResourceExhausted));
        else held.push({ flags, data: data.slice() });
        return;
      }
      try {
        const request = decodeRequest(flags, data, compressed, deps.maxFrameBytes);
        if (request instanceof Promise) {
          chain = (chain ?? Promise.resolve()).then(() => request).then((r) => void loop.take(r), fail);
        } else if (chain !== undefined) {
          chain = chain.then(() => void loop.take(request));
        } else {
          loop.take(request);
        }
      } catch (error) {
        fail(error);
      }
    };
    const finish = () => {
      void (chain ?? Promise.resolve())
        .then(() => loop.settled())
        .then(() => conn.close());
    };
    stream.on("data", (chunk: Buffer) => {
      try {
        envelopes.push(chunk, take);
      } catch (error) {
        fail(error);
      }
    });
    stream.once("end", () => {
      ended = true;
      if (envelopes.pendingBytes > 0) fail(new ConnectError("the request stream ended inside a message", Code.InvalidArgument));
      else if (held === undefined) finish();
    });
    return {
      start() {
        const early = held ?? [];
        held = undefined;
        for (const m of early) take(m.flags, m.data);
        if (ended) finish();
      },
    };
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
    open(stream, protocol, path === SUBSCRIBE_PATH, encoding === "gzip", authorization).catch((error: unknown) => {
      logger.error({ err: error }, "long connection failed");
      if (!stream.destroyed) stream.close(http2Constants.NGHTTP2_INTERNAL_ERROR);
    });
    return true;
  };
}

/** RESOURCE_EXHAUSTED for a user over its long-connection bound on this process. */
export function tooManyConnections(max: number): ConnectError {
  return new ConnectError(`this user already holds ${max} long connections on this server: close one first`, Code.ResourceExhausted, undefined, [
    { desc: ErrorDetailSchema, value: create(ErrorDetailSchema, { reason: ErrorReason.TOO_MANY_CONNECTIONS, retryable: true, retryAfterMs: 5000 }) },
  ]);
}

const http2Constants = { NGHTTP2_INTERNAL_ERROR: 2 };
