import { create } from "@bufbuild/protobuf";
import { ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { Logger } from "pino";
import {
  ConnectRequestSchema,
  ConnectResponseSchema,
  DisconnectReason,
  FetchRangeRequestSchema,
  GatewayService,
  MarkReadRequestSchema,
  PingResponseSchema,
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
import { toConnectError, toRequestError } from "./errors.js";
import type { GatewayOperations } from "./gateway-operations.js";
import type { RequestValidator } from "./request-validator.js";
import { createUnaryRunner } from "./unary-call.js";

/** The live connections of this process: for ticks, stats and draining on shutdown. */
export type ConnectionRegistry = Set<Connection>;

/** What the gateway service needs. */
export interface GatewayServiceDeps {
  readonly operations: GatewayOperations;
  readonly verifier: TokenVerifier;
  readonly validator: RequestValidator;
  readonly hub: Hub;
  readonly registry: ConnectionRegistry;
  readonly clock: Clock;
  readonly limits: ConnectionLimits;
  readonly logger: Logger;
  /** Prefix of connection ids, unique per process (e.g. node and worker). */
  readonly connectionIdPrefix: string;
}

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
  let nextConnection = 0;
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
    const conn = new Connection(`${deps.connectionIdPrefix}-${++nextConnection}`, principal.userId, principal.expiresAtMs, clock.nowMs(), limits, sink, pushOnly);
    registry.add(conn);
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
    let sends = Promise.resolve();
    const running = new Set<Promise<void>>();
    for await (const frame of requests) {
      conn.heard(clock.nowMs());
      if (conn.ending) break;
      const invalid = validator.check(ConnectRequestSchema, frame);
      if (invalid !== undefined) {
        conn.reply(create(ConnectResponseSchema, { requestId: frame.requestId, frame: { case: "error", value: toRequestError(invalid) } }));
        continue;
      }
      if (frame.frame.case === "ping") {
        const pong = create(PingResponseSchema, { clientTimeMs: frame.frame.value.clientTimeMs, serverTimeMs: BigInt(clock.nowMs()) });
        conn.reply(create(ConnectResponseSchema, { requestId: frame.requestId, frame: { case: "pong", value: pong } }));
        continue;
      }
      if (!conn.begin()) break;
      let task: Promise<void>;
      if (frame.frame.case === "send") {
        // Sends of one connection are applied in the order they were written, so a client's
        // own messages keep their order in every conversation.
        task = sends = sends.then(() => answer(principal, frame, conn));
      } else {
        task = answer(principal, frame, conn);
      }
      running.add(task);
      void task.finally(() => {
        running.delete(task);
        conn.end();
      });
    }
    await Promise.all(running);
    conn.close();
  }

  async function answer(principal: Principal, request: ConnectRequest, conn: Connection): Promise<void> {
    const { userId } = principal;
    let frame: ConnectResponse["frame"];
    try {
      switch (request.frame.case) {
        case "send":
          frame = { case: "send", value: await operations.send(userId, request.frame.value, conn.connectionId) };
          break;
        case "sync":
          frame = { case: "sync", value: await operations.sync(userId, request.frame.value) };
          break;
        case "fetchRange":
          frame = { case: "fetchRange", value: await operations.fetchRange(userId, request.frame.value) };
          break;
        case "markRead":
          frame = { case: "markRead", value: await operations.markRead(userId, request.frame.value, conn.connectionId) };
          break;
        default:
          return;
      }
    } catch (error) {
      const connectError = toConnectError(error);
      if (connectError.cause !== undefined) logger.warn({ err: connectError.cause, userId }, "request failed");
      frame = { case: "error", value: toRequestError(connectError) };
    }
    conn.reply(create(ConnectResponseSchema, { requestId: request.requestId, frame }));
  }

  return {
    async *connect(requests, ctx) {
      const principal = await authenticate(ctx);
      yield* hold(principal, bidiFrames, false, ctx, (conn) => readFrames(principal, requests, conn));
    },
    async *subscribe(_req, ctx) {
      const principal = await authenticate(ctx);
      yield* hold(principal, subscribeFrames, true, ctx);
    },
    send: (req, ctx) => unary(SendRequestSchema, req, ctx, (userId) => operations.send(userId, req)),
    sync: (req, ctx) => unary(SyncRequestSchema, req, ctx, (userId) => operations.sync(userId, req)),
    fetchRange: (req, ctx) => unary(FetchRangeRequestSchema, req, ctx, (userId) => operations.fetchRange(userId, req)),
    markRead: (req, ctx) => unary(MarkReadRequestSchema, req, ctx, (userId) => operations.markRead(userId, req)),
  };
}
