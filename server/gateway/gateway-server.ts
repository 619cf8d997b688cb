import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { randomInt } from "node:crypto";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Logger } from "pino";
import type { Clock } from "../core/clock.js";
import type { Messaging } from "../core/messaging.js";
import type { Hub } from "../route/hub.js";
import type { TokenVerifier } from "./auth.js";
import type { ConnectionLimits } from "./connection.js";
import { createConversationService } from "./conversation-service.js";
import { drainConnections } from "./drain.js";
import { GatewayOperations, type Ownership } from "./gateway-operations.js";
import { createGatewayService, type GatewayServiceDeps } from "./gateway-service.js";
import { ConnectionRegistry } from "./connection-registry.js";
import { observingInterceptor, requestContextValues, type RequestObserver } from "./request-context.js";
import { withProtocolErrorDetails } from "./protocol-errors.js";
import type { HttpRoute } from "../media/livekit-webhook.js";
import { createRequestValidator } from "./request-validator.js";
import { createLeanGateway } from "./lean-gateway.js";
import { withCors } from "./cors.js";
import type { WebRoutes } from "./web-routes.js";
import { GatewayService } from "../../gen/im/v1/gateway_pb.js";
import { ConversationService } from "../../gen/im/v1/conversation_pb.js";

/** What a gateway server is built from. */
export interface GatewayServerOptions {
  readonly host: string;
  readonly port: number;
  readonly messaging: Messaging;
  /** This process's index of live connections by channel. */
  readonly hub: Hub;
  /** Conversation owners across processes; absent: this process owns every conversation. */
  readonly ownership?: Ownership;
  readonly verifier: TokenVerifier;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly limits: ConnectionLimits;
  /** Largest request message accepted on the wire, in bytes. */
  readonly maxFrameBytes: number;
  /** Interval of the single timer that advances every connection's deadlines. */
  readonly tickMs?: number;
  readonly connectionIdPrefix?: string;
  /** Registers more services (health, reflection) on the same router. */
  readonly extraRoutes?: (router: ConnectRouter) => void;
  /** Called when the server starts draining, before clients are told (e.g. health NOT_SERVING). */
  readonly onDrain?: () => void;
  /**
   * Listen with SO_REUSEPORT, so several worker processes each hold their own listening socket
   * on the same port and the kernel spreads new connections over them.
   */
  readonly reusePort?: boolean;
  /**
   * Accept queue length of the listening socket (the kernel caps it at net.core.somaxconn).
   * Node's default, 511, overflows when thousands of clients reconnect at once.
   */
  readonly listenBacklog?: number;
  /** More fields for the /stats JSON (e.g. routing counters). */
  readonly extraStats?: () => Record<string, unknown>;
  /** HTTP/2 and connection limits; each has a default (see DEFAULT_EDGE_LIMITS). */
  readonly edge?: Partial<EdgeLimits>;
  /** Answers call-control frames of the long connection (server/calls-runtime.ts). */
  readonly callFrames?: GatewayServiceDeps["callFrames"];
  /** Serves other HTTP requests first (e.g. a media server's webhook); true when it did. */
  readonly httpRoutes?: HttpRoute;
  /** The web client and the development token endpoint, for requests no RPC route takes. */
  readonly webRoutes?: WebRoutes;
  /** Origins that browsers may call from (CORS); empty: same-origin only. */
  readonly allowedOrigins?: readonly string[];
  /** Where live connections are kept (with their observer, for metrics); default: a new one. */
  readonly connections?: ConnectionRegistry;
  /** Measures and traces requests (server/observe); absent: nothing is. */
  readonly observer?: RequestObserver;
}

/** Limits at the edge: what one TCP connection and one user may hold. */
export interface EdgeLimits {
  /** SETTINGS_MAX_CONCURRENT_STREAMS: streams one HTTP/2 connection may have open at once. */
  readonly maxConcurrentStreams: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE: bytes of request headers one stream may send. */
  readonly maxHeaderListBytes: number;
  /** Memory one HTTP/2 session may use in nghttp2 (MB) before new streams are refused. */
  readonly maxSessionMemoryMb: number;
  /**
   * A TCP connection must send the HTTP/2 preface and open its first stream (or send its first
   * HTTP/1.1 request) within this; a silent socket is closed.
   */
  readonly handshakeTimeoutMs: number;
  /** Long connections (Connect and Subscribe streams) one user may hold on this process. */
  readonly connectionsPerUserMax: number;
}

/** The defaults of EdgeLimits (the README's configuration table). */
export const DEFAULT_EDGE_LIMITS: EdgeLimits = {
  maxConcurrentStreams: 8,
  maxHeaderListBytes: 16 * 1024,
  maxSessionMemoryMb: 10,
  handshakeTimeoutMs: 30_000,
  connectionsPerUserMax: 16,
};

/** Set on each accepted socket until it starts talking (its first stream or request). */
const kHandshake = Symbol("handshake");
interface Handshake {
  readonly socket: net.Socket;
  readonly acceptedAtMs: number;
}

/** A running gateway. */
export interface GatewayServer {
  /** The bound port (useful with port 0). */
  readonly port: number;
  /** The gateway's operations (sends routed to each conversation's owner), for calls' stored messages. */
  readonly operations: GatewayOperations;
  /** Live long connections and push streams. */
  connectionCount(): number;
  /**
   * Graceful drain: stop accepting, tell every client SERVER_SHUTDOWN with a jittered
   * reconnect delay, let in-flight requests finish (up to `drainTimeoutMs`), then close.
   */
  close(options?: { drainTimeoutMs?: number; reconnectSpreadMs?: number }): Promise<void>;
}

const H2_PREFACE_START = Buffer.from("PRI");

/**
 * Starts Connect, gRPC and gRPC-Web on one port: HTTP/2 cleartext (prior knowledge) for native
 * clients and gRPC, and HTTP/1.1 for browsers' unary calls and server streams, told apart by
 * the first bytes of each TCP connection.
 */
export async function startGatewayServer(options: GatewayServerOptions): Promise<GatewayServer> {
  const { messaging, hub, verifier, clock, logger, limits } = options;
  const edge: EdgeLimits = { ...DEFAULT_EDGE_LIMITS, ...options.edge };
  const registry = options.connections ?? new ConnectionRegistry();
  // The long connection's frames and the unary calls: planned before the first device arrives.
  const validator = createRequestValidator([GatewayService, ConversationService]);
  const operations = new GatewayOperations(messaging, options.ownership);
  const prefix = options.connectionIdPrefix ?? `c${process.pid}`;
  let connections = 0;
  const nextConnectionId = () => `${prefix}-${++connections}`;
  const longConnections = { operations, verifier, validator, hub, registry, clock, limits, logger, nextConnectionId, connectionsPerUserMax: edge.connectionsPerUserMax, callFrames: options.callFrames, observer: options.observer };
  const gateway = createGatewayService(longConnections);
  const lean = createLeanGateway({ ...longConnections, maxFrameBytes: options.maxFrameBytes });
  const conversations = createConversationService({ messaging, operations, verifier, validator, logger });
  const rpc = connectNodeAdapter({
    readMaxBytes: options.maxFrameBytes,
    contextValues: requestContextValues,
    interceptors: options.observer === undefined ? [] : [observingInterceptor(options.observer)],
    routes: withProtocolErrorDetails((r) => {
      r.service(GatewayService, gateway);
      r.service(ConversationService, conversations);
      options.extraRoutes?.(r);
    }),
    fallback(req, res) {
      if (options.httpRoutes?.(req, res) === true) return;
      if (req.url === "/stats" && req.method === "GET") {
        const mem = process.memoryUsage();
        const body = JSON.stringify({ pid: process.pid, connections: registry.size, handshakeTimeouts, rssBytes: mem.rss, heapUsedBytes: mem.heapUsed, uptimeS: process.uptime(), ...options.extraStats?.() });
        res.writeHead(200, { "content-type": "application/json" });
        res.end(body);
        return;
      }
      if (options.webRoutes?.(req, res) === true) return;
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found");
    },
  });
  const handler = withCors(options.allowedOrigins ?? [], rpc);

  const h2 = http2.createServer(
    {
      maxSessionMemory: edge.maxSessionMemoryMb,
      maxHeaderListPairs: 64,
      settings: { maxConcurrentStreams: edge.maxConcurrentStreams, maxHeaderListSize: edge.maxHeaderListBytes },
    },
    handler,
  );
  // The long connection's streams go to the lean path; every other stream to connect-node
  // through node's own compatibility layer, which is the server's 'stream' listener.
  const compat = h2.listeners("stream") as ((...args: unknown[]) => void)[];
  h2.removeAllListeners("stream");
  h2.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, ...rest: unknown[]) => {
    started(stream.session?.socket);
    if (!lean(stream, headers)) for (const listener of compat) listener.call(h2, stream, headers, ...rest);
  });
  const h1 = http.createServer({ maxHeaderSize: edge.maxHeaderListBytes }, handler);
  h1.on("request", (req: http.IncomingMessage) => started(req.socket));
  const sockets = new Set<net.Socket>();
  /** Sockets that have not started talking yet, oldest first (a Set keeps insertion order). */
  const handshaking = new Set<Handshake>();
  /** Sockets closed for silence since start (/stats): a client too slow to open its stream shows here. */
  let handshakeTimeouts = 0;
  function started(socket: net.Socket | undefined): void {
    const tagged = socket as { [kHandshake]?: Handshake } | undefined;
    const handshake = tagged?.[kHandshake];
    if (handshake === undefined) return;
    handshaking.delete(handshake);
    tagged![kHandshake] = undefined;
  }
  const route = (socket: net.Socket, isH2: boolean) => (isH2 ? h2 : h1).emit("connection", socket);
  function onSocketClose(this: net.Socket): void {
    sockets.delete(this);
    const handshake = (this as { [kHandshake]?: Handshake })[kHandshake];
    if (handshake !== undefined) handshaking.delete(handshake);
  }
  const tcp = net.createServer((socket) => {
    sockets.add(socket);
    const handshake: Handshake = { socket, acceptedAtMs: clock.nowMs() };
    (socket as { [kHandshake]?: Handshake })[kHandshake] = handshake;
    handshaking.add(handshake);
    socket.on("close", onSocketClose);
    sniff(socket, route);
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once("error", reject);
    tcp.listen({ host: options.host, port: options.port, reusePort: options.reusePort ?? false, backlog: options.listenBacklog ?? 4096 }, () => {
      tcp.off("error", reject);
      resolve();
    });
  });
  const port = (tcp.address() as net.AddressInfo).port;
  const ticker = setInterval(() => {
    const now = clock.nowMs();
    for (const conn of registry) conn.tick(now);
    let silent = 0;
    for (const handshake of handshaking) {
      if (now - handshake.acceptedAtMs < edge.handshakeTimeoutMs) break;
      handshaking.delete(handshake);
      handshake.socket.destroy();
      silent++;
    }
    if (silent > 0) {
      handshakeTimeouts += silent;
      // Once per tick, not per socket: a storm of half-open connections must not flood the log.
      options.logger.info({ closed: silent, handshakeTimeoutMs: edge.handshakeTimeoutMs }, "closed connections that opened no stream within the handshake timeout");
    }
  }, options.tickMs ?? 1000);
  ticker.unref();

  let closing: Promise<void> | undefined;
  return {
    port,
    operations,
    connectionCount: () => registry.size,
    close(closeOptions = {}) {
      closing ??= (async () => {
        const drainTimeoutMs = closeOptions.drainTimeoutMs ?? 10_000;
        const spreadMs = closeOptions.reconnectSpreadMs ?? 5000;
        options.onDrain?.();
        const stopped = new Promise<void>((resolve) => tcp.close(() => resolve()));
        await drainConnections(registry, { drainTimeoutMs, reconnectSpreadMs: spreadMs }, {
          clock,
          randomInt: (maxExclusive) => randomInt(0, maxExclusive),
          wait: (ms) => new Promise((r) => setTimeout(r, ms)),
        });
        clearInterval(ticker);
        for (const socket of sockets) socket.end();
        setTimeout(() => {
          for (const socket of sockets) socket.destroy();
        }, 1000).unref();
        await stopped;
      })();
      return closing;
    },
  };
}

function destroyOnError(this: net.Socket): void {
  this.destroy();
}

/** Tells HTTP/2 prior-knowledge connections ("PRI * HTTP/2.0") from HTTP/1.1 by their first bytes. */
function sniff(socket: net.Socket, route: (socket: net.Socket, isH2: boolean) => void): void {
  let seen: Buffer | undefined;
  const onData = (chunk: Buffer) => {
    // Nearly always the whole preface comes in the first chunk: no copy then.
    seen = seen === undefined ? chunk : Buffer.concat([seen, chunk]);
    if (seen.length < H2_PREFACE_START.length && H2_PREFACE_START.subarray(0, seen.length).equals(seen)) return;
    socket.off("data", onData);
    socket.pause();
    socket.unshift(seen);
    const isH2 = seen.subarray(0, H2_PREFACE_START.length).equals(H2_PREFACE_START);
    route(socket, isH2);
    // HTTP/2 reads what was unshifted with socket.read() on its own; HTTP/1.1 takes it as
    // 'data' events, which need the stream flowing again.
    if (!isH2) socket.resume();
  };
  socket.on("data", onData);
  socket.on("error", destroyOnError);
}
