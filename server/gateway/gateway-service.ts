import { create } from "@bufbuild/protobuf";
import { ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { Logger } from "pino";
import {
  ConnectResponseSchema,
  DisconnectReason,
  FetchRangeRequestSchema,
  GatewayService,
  MarkReadRequestSchema,
  SendRequestSchema,
  SubscribeResponseSchema,
  SyncRequestSchema,
  type ConnectRequest,
  type ConnectResponse,
  type SubscribeResponse,
} from "../../gen/im/v1/gateway_pb.js";
import type { Clock } from "../core/clock.js";
import type { Hub } from "../route/hub.js";
import type { Principal, TokenVerifier } from "./auth.js";
import { Connection, QueueSink, type ConnectionLimits, type FrameFactory } from "./connection.js";
import type { ConnectionRegistry } from "./connection-registry.js";
import { RequestLoop, type RequestLoopDeps } from "./request-loop.js";
import { tooManyConnections } from "./lean-gateway.js";
import { toConnectError } from "./errors.js";
import type { GatewayOperations } from "./gateway-operations.js";
import type { RequestValidator } from "./request-validator.js";
import { createUnaryRunner } from "./unary-call.js";
import { streamProtocolOf } from "./request-context.js";

export type { ConnectionRegistry };

/** What serving long connections needs, on connect-node's streams and on the lean path alike. */
export interface LongConnectionDeps {
  readonly operations: GatewayOperations;
  readonly verifier: TokenVerifier;
  readonly validator: RequestValidator;
  readonly hub: Hub;
  readonly registry: ConnectionRegistry;
  readonly clock: Clock;
  readonly limits: ConnectionLimits;
  readonly logger: Logger;
  /** A new connection id, unique among the deployment's live connections. */
  readonly nextConnectionId: () => string;
  /** Long connections (Connect and Subscribe streams) one user may hold on this process. */
  readonly connectionsPerUserMax: number;
  /** Answers call-control frames (see RequestLoopDeps). */
  readonly callFrames?: RequestLoopDeps["callFrames"];
  /** Measures and traces requests (see RequestLoopDeps). */
  readonly observer?: RequestLoopDeps["observer"];
}

/** What the gateway service needs. */
export type GatewayServiceDeps = LongConnectionDeps;

const bidiFrames: FrameFactory<ConnectResponse> = {
  push: (p) => p.connectResponse(),
  reply: (frame) => frame,
  heartbeat: () => {
    throw new Error("bidirectional streams have no server heartbeat");
  },
  disconnect: (d) => create(ConnectResponseSchema, { frame: { case: "disconnect", value: d } }),
};

const subscribeFrames: FrameFactory<SubscribeResponse> = {
  push: (p) => p.subscribeResponse(),
  reply: () => {
    throw new Error("push-only streams carry no answers");
  },
  heartbeat: (nowMs) => create(SubscribeResponseSchema, { frame: { case: "heartbeatMs", value: BigInt(nowMs) } }),
  disconnect: (d) => create(SubscribeResponseSchema, { frame: { case: "disconnect", value: d } }),
};

/** The GatewayService implementation: the long connection, the browser stream and unary calls. */
export function createGatewayService(deps: GatewayServiceDeps): ServiceImpl<typeof GatewayService> {
  const { operations, verifier, validator, hub, registry, clock, limits, logger } = deps;
  const unary = createUnaryRunner(verifier, validator, logger);

  async function authenticate(ctx: HandlerContext): Promise<Principal> {
    return verifier.verify(ctx.requestHeader.get("authorization"));
  }

  /**
   * Opens a connection, registers it with the hub, and yields its frames until it ends. The
   * client's requests are read only once the hub delivers everything published from then on,
   * so a sync the client starts cannot miss a message in between.
   */
  async function* hold<F>(principal: Principal, frames: FrameFactory<F>, pushOnly: boolean, ctx: HandlerContext, reader?: (conn: Connection) => Promise<void>): AsyncGenerator<F> {
    const sink = new QueueSink(frames);
    const conn = new Connection(deps.nextConnectionId(), principal.userId, principal.expiresAtMs, clock.nowMs(), limits, sink, pushOnly);
    registry.add(conn, streamProtocolOf(ctx));
    const onAbort = () => conn.close();
    ctx.signal.addEventListener("abort", onAbort);
    let failure: ConnectError | undefined;
    const attached = hub.attach(conn).then(
      () => {
        // Push-only streams start with a heartbeat: it tells the client the subscription is
        // registered, so a sync it starts afterwards cannot miss a message in between.
        if (pushOnly && !conn.ending) sink.heartbeat(clock.nowMs());
        // Not awaited: once the frames end (a disconnect, or the client went away) the
        // handler returns, even if the client never half-closes its side.
        void reader?.(conn).catch((error: unknown) => {
          failure = toConnectError(error);
          conn.disconnect(DisconnectReason.PROTOCOL_ERROR, failure.rawMessage, 1000);
        });
      },
      (error: unknown) => {
        failure = toConnectError(error);
        conn.close();
      },
    );
    try {
      yield* sink.frames();
    } finally {
      ctx.signal.removeEventListener("abort", onAbort);
      conn.close();
      hub.detach(conn);
      registry.delete(conn);
    }
    await attached;
    if (failure !== undefined) throw failure;
  }

  /** Reads client frames of a long connection and answers each with the same request_id. */
  async function readFrames(principal: Principal, requests: AsyncIterable<ConnectRequest>, conn: Connection): Promise<void> {
    const loop = new RequestLoop({ operations, validator, clock, logger, callFrames: deps.callFrames, observer: deps.observer }, principal.userId, conn);
    for await (const frame of requests) if (!loop.take(frame)) break;
    await loop.settled();
    conn.close();
  }

  return {
    async *connect(requests, ctx) {
      const principal = await authenticate(ctx);
      if (hub.connectionsOf(principal.userId) >= deps.connectionsPerUserMax) throw tooManyConnections(deps.connectionsPerUserMax);
      yield* hold(principal, bidiFrames, false, ctx, (conn) => readFrames(principal, requests, conn));
    },
    async *subscribe(_req, ctx) {
      const principal = await authenticate(ctx);
      if (hub.connectionsOf(principal.userId) >= deps.connectionsPerUserMax) throw tooManyConnections(deps.connectionsPerUserMax);
      yield* hold(principal, subscribeFrames, true, ctx);
    },
    send: (req, ctx) => unary(SendRequestSchema, req, ctx, (userId) => operations.send(userId, req)),
    sync: (req, ctx) => unary(SyncRequestSchema, req, ctx, (userId) => operations.sync(userId, req)),
    fetchRange: (req, ctx) => unary(FetchRangeRequestSchema, req, ctx, (userId) => operations.fetchRange(userId, req)),
    markRead: (req, ctx) => unary(MarkReadRequestSchema, req, ctx, (userId) => operations.markRead(userId, req)),
  };
}
