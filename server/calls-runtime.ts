import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { SendRequestSchema } from "../gen/im/v1/gateway_pb.js";
import { ErrorDetailSchema } from "../gen/im/v1/message_pb.js";
import type { Logger } from "pino";
import { CallService } from "../gen/im/v1/call_pb.js";
import type { ConnectRequest, ConnectResponse } from "../gen/im/v1/gateway_pb.js";
import type { ServerConfig } from "./config.js";
import { DEFAULT_CALL_TIMEOUTS, type CallTimeouts } from "./core/call-model.js";
import { Calls } from "./core/calls.js";
import type { Clock } from "./core/clock.js";
import { createMessageIdGenerator } from "./core/message-id.js";
import type { TokenVerifier } from "./gateway/auth.js";
import { answerCallFrame } from "./gateway/call-frames.js";
import { CallOperations } from "./gateway/call-operations.js";
import type { GatewayOperations } from "./gateway/gateway-operations.js";
import { createCallService } from "./gateway/call-service.js";
import { createRequestValidator } from "./gateway/request-validator.js";
import { LivekitMediaRoomProvider } from "./media/livekit-media-room-provider.js";
import { createLivekitWebhookHandler, type HttpRoute } from "./media/livekit-webhook.js";
import type { MediaRoomProvider } from "./media/media-room-provider.js";
import { parseUrlList, turnCredentials } from "./media/turn-credentials.js";
import type { Broker } from "./route/broker.js";
import { ChannelCallEventPublisher } from "./route/channel-call-event-publisher.js";
import type { Hub } from "./route/hub.js";
import type { CallStore } from "./store/call-store.js";
import { MemoryCallStore } from "./store/memory-call-store.js";
import type { MessageStore } from "./store/message-store.js";
import { openRedisCallStore } from "./store/redis-call-store.js";
import { openSqliteCallStore } from "./store/sqlite-call-store.js";
import { systemRandom } from "./system.js";

/** Calls as the gateway serves them. */
export interface CallsRuntime {
  readonly calls: Calls;
  readonly store: CallStore;
  /** Registers CallService. */
  register(router: ConnectRouter): void;
  /** Answers call frames of the long connection. */
  frames(userId: string, frame: ConnectRequest["frame"]): Promise<ConnectResponse["frame"]>;
  /** Serves the media server's webhook; false for other requests. */
  readonly http: HttpRoute;
  /** Media-server webhooks whose signature checked out, by event name. */
  readonly webhooks: ReadonlyMap<string, number>;
  /** Stops the deadline timer and closes the call store. */
  close(): Promise<void>;
}

/** What calls are built from besides the configuration. */
export interface CallsRuntimeDeps {
  readonly messages: MessageStore;
  /** The gateway's operations (sends go to each conversation's owner); read once the gateway runs. */
  readonly operations: () => GatewayOperations;
  /** This process's hub and the broker: call events go out on user channels. */
  readonly hub: Hub;
  readonly broker: Broker;
  readonly verifier: TokenVerifier;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Unique among every process sharing the call store and the broker (deadline claims, publication origin). */
  readonly workerId: string;
  /** Interval of the deadline tick. Default 250 ms. */
  readonly tickMs?: number;
}

/** The call timeouts from the configuration. */
export function callTimeouts(config: ServerConfig): CallTimeouts {
  return {
    ...DEFAULT_CALL_TIMEOUTS,
    ringTimeoutMs: config.callRingTimeoutMs,
    connectTimeoutMs: config.callConnectTimeoutMs,
    keepaliveTimeoutMs: config.callKeepaliveTimeoutMs,
    keepaliveIntervalMs: Math.max(100, Math.floor(config.callKeepaliveTimeoutMs / 3)),
  };
}

/** Picks the call store: Redis for several nodes, memory beside the memory store, else SQLite. */
export async function openCallStore(config: ServerConfig): Promise<CallStore> {
  // The Redis call store runs multi-key scripts: a plain Redis, not a Redis Cluster (whose
  // URLs start redis+cluster://); with a cluster, auto keeps call state in SQLite (one node).
  const plainRedis = config.redisUrl !== "" && !config.redisUrl.startsWith("redis+cluster:");
  const kind = config.callStore === "auto" ? (plainRedis ? "redis" : config.store === "memory" ? "memory" : "sqlite") : config.callStore;
  if (kind === "memory") return new MemoryCallStore();
  if (kind === "redis") {
    if (!plainRedis) throw new Error("--call-store redis needs --redis-url naming a plain Redis (not redis+cluster://)");
    return openRedisCallStore({ url: config.redisUrl });
  }
  return openSqliteCallStore({ path: path.join(config.dataDir, "calls.sqlite"), synchronous: config.sqliteSync });
}

/** Builds calls (store, media server, TURN credentials, publisher) and starts the deadline tick. */
export async function startCalls(config: ServerConfig, deps: CallsRuntimeDeps): Promise<CallsRuntime> {
  const { clock, logger } = deps;
  const store = await openCallStore(config);
  let media: MediaRoomProvider | undefined;
  if (config.livekitUrl !== "") {
    if (config.livekitApiKey === "" || config.livekitApiSecret === "") throw new Error("--livekit-url needs --livekit-api-key and --livekit-api-secret");
    media = new LivekitMediaRoomProvider({ url: config.livekitUrl, apiKey: config.livekitApiKey, apiSecret: config.livekitApiSecret });
  }
  const turn = { urls: parseUrlList(config.turnUrls), secret: config.turnSecret, ttlS: config.turnTtlS };
  const timeouts = callTimeouts(config);
  const calls = new Calls({
    store,
    messages: deps.messages,
    sendMessage: (senderId, conversationId, clientMsgId, contentType, data) => sendCallMessage(deps.operations(), senderId, conversationId, clientMsgId, contentType, data),
    publisher: new ChannelCallEventPublisher(deps.workerId, deps.hub, deps.broker),
    media,
    iceServers: (userId) => turnCredentials(turn, userId, clock.nowMs()),
    clock,
    ids: createMessageIdGenerator(clock, systemRandom),
    timeouts,
    liveRoomViewersMax: config.liveRoomViewersMax,
    workerId: deps.workerId,
    onBackgroundError: (err, context) => logger.warn({ err }, context),
  });
  const operations = new CallOperations(calls, clock, timeouts.keepaliveIntervalMs);
  const service = createCallService({ operations, verifier: deps.verifier, validator: createRequestValidator([CallService]), logger });
  const webhooks = new Map<string, number>();
  const webhook =
    media === undefined
      ? undefined
      : createLivekitWebhookHandler({
          apiKey: config.livekitApiKey,
          apiSecret: config.livekitApiSecret,
          sink: calls,
          logger,
          onVerified: (event) => webhooks.set(event, (webhooks.get(event) ?? 0) + 1),
        });
  let ticking = false;
  const timer = setInterval(() => {
    if (ticking) return;
    ticking = true;
    calls
      .tick(clock.nowMs())
      .catch((err: unknown) => logger.warn({ err }, "call deadlines"))
      .finally(() => (ticking = false));
  }, deps.tickMs ?? 250);
  timer.unref();
  return {
    calls,
    store,
    webhooks,
    register: (r) => r.service(CallService, service),
    frames: (userId, frame) => answerCallFrame(operations, userId, frame),
    http: (req, res) => webhook?.(req, res) ?? false,
    async close() {
      clearInterval(timer);
      while (ticking) await new Promise((r) => setTimeout(r, 10));
      await calls.settled();
      await store.close();
    },
  };
}

/** A call's stored message through the gateway's send path: refusals are final, anything retryable throws. */
async function sendCallMessage(operations: GatewayOperations, senderId: string, conversationId: string, clientMsgId: string, contentType: string, data: Uint8Array): Promise<"stored" | "refused"> {
  try {
    await operations.send(senderId, create(SendRequestSchema, { target: { case: "conversationId", value: conversationId }, clientMsgId, body: { contentType, data } }));
    return "stored";
  } catch (error) {
    const e = ConnectError.from(error);
    const retryable = e.findDetails(ErrorDetailSchema)[0]?.retryable ?? e.code === Code.Unavailable;
    if (retryable || e.code === Code.Internal) throw error;
    return "refused";
  }
}
