import { mkdirSync } from "node:fs";
import path from "node:path";
import { pino } from "pino";
import { DEFAULT_LIMITS } from "./core/limits.js";
import { createMessageIdGenerator } from "./core/message-id.js";
import { Messaging } from "./core/messaging.js";
import { RateLimits } from "./core/rate-limits.js";
import { loadConfig, type ServerConfig } from "./config.js";
import { createLogger } from "./logger.js";
import { createTokenVerifier, DEV_JWT_SECRET } from "./gateway/auth.js";
import { startGatewayServer, type GatewayServer } from "./gateway/gateway-server.js";
import { parseAllowedOrigins } from "./gateway/cors.js";
import { createWebRoutes } from "./gateway/web-routes.js";
import { createHealthService } from "./gateway/health-service.js";
import { createReflectionService } from "./gateway/reflection-service.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { ConversationService } from "../gen/im/v1/conversation_pb.js";
import { GatewayService } from "../gen/im/v1/gateway_pb.js";
import { PushService } from "../gen/im/v1/push_pb.js";
import { resolveWorkerCount, runPrimary, workerContext, type WorkerContext } from "./cluster.js";
import { createRequestValidator } from "./gateway/request-validator.js";
import type { DeviceTokenStore } from "./push/device-token-store.js";
import { openDeviceTokenStore } from "./push/open-device-token-store.js";
import { createPushService } from "./push/push-service.js";
import { startOfflinePush } from "./push/offline-push-runtime.js";
import { teeEvents } from "./core/events.js";
import { startRouting } from "./route/routing.js";
import type { MessageStore } from "./store/message-store.js";
import { MemoryMessageStore } from "./store/memory-message-store.js";
import { openCassandraMessageStore } from "./store/cassandra-message-store.js";
import { openSqliteMessageStore } from "./store/sqlite-message-store.js";
import { systemClock, systemRandom } from "./system.js";
import { startCalls, type CallsRuntime } from "./calls-runtime.js";
import type { GatewayOperations } from "./gateway/gateway-operations.js";
import { CallService } from "../gen/im/v1/call_pb.js";
import { startObservability } from "./observe/observability.js";
import { createPrimaryServices } from "./primary-services.js";

/** A running server and what it owns. */
export interface RunningServer {
  readonly gateway: GatewayServer;
  readonly store: MessageStore;
  readonly calls: CallsRuntime;
  /** Device push tokens, registered through PushService. */
  readonly devices: DeviceTokenStore;
  /** Drains the gateway, then closes the store. */
  stop(): Promise<void>;
}

/** The composition root: picks adapters from the configuration and starts the gateway. */
export async function startServer(config: ServerConfig, logger = pino({ level: config.logLevel }), worker?: WorkerContext): Promise<RunningServer> {
  let store: MessageStore;
  if (config.store === "memory") {
    store = new MemoryMessageStore();
  } else if (config.store === "cassandra") {
    store = await openCassandraMessageStore({
      contactPoints: config.cassandraContactPoints.split(",").map((c) => c.trim()).filter((c) => c !== ""),
      keyspace: config.cassandraKeyspace,
      localDataCenter: config.cassandraLocalDc,
      consistency: config.cassandraConsistency,
      replicationFactor: config.cassandraReplicationFactor,
    });
  } else {
    mkdirSync(config.dataDir, { recursive: true });
    store = openSqliteMessageStore({ path: path.join(config.dataDir, "im.sqlite"), synchronous: config.sqliteSync });
  }
  // Metrics and traces (server/observe): what they measure is wrapped here, nothing when off.
  const observe = await startObservability(config, worker);
  store = observe.store(store);
  const devices = await openDeviceTokenStore(config);
  let messaging: Messaging | undefined;
  const routing = await startRouting({
    redisUrl: config.redisUrl,
    nodeId: config.nodeId,
    worker,
    presenceTtlMs: config.presenceTtlMs,
    clock: systemClock,
    logger,
    groupsOf: (userId) => messaging!.groupsOf(userId),
    ownerCallTracing: observe.ownerCallTracing,
  });
  // Offline push (server/push/offline-push-runtime.ts) hears the same stored events, when a provider is configured.
  const offlinePush = startOfflinePush(config, { routing, store, devices, clock: systemClock, logger });
  messaging = observe.messaging({
    store,
    events: observe.events(offlinePush === undefined ? routing.events : teeEvents(routing.events, offlinePush.pipeline)),
    clock: systemClock,
    ids: createMessageIdGenerator(systemClock, systemRandom),
    limits: { ...DEFAULT_LIMITS, bodyBytesMax: config.maxBodyBytes, groupMembersMax: config.maxGroupMembers },
    rateLimits: new RateLimits(
      {
        userSendsPerS: config.rateUserSendsPerS,
        userBytesPerS: config.rateUserBytesPerS,
        connectionSendsPerS: config.rateConnectionSendsPerS,
        connectionBytesPerS: config.rateConnectionBytesPerS,
        userGroupsPerMin: config.rateUserGroupsPerMin,
        burstS: config.rateBurstS,
      },
      systemClock,
    ),
  });
  const verifier = createTokenVerifier(config.jwtSecret);
  // Calls and live rooms (server/calls-runtime.ts); their stored messages take the gateway's send path.
  let operations: GatewayOperations | undefined;
  const calls = await startCalls(config, { messages: store, operations: () => operations!, hub: routing.hub, broker: routing.broker, verifier, clock: systemClock, logger, workerId: routing.workerId });
  const health = createHealthService();
  const reflection = createReflectionService([GatewayService, ConversationService, CallService, PushService, Health]);
  const push = createPushService({ devices, verifier, validator: createRequestValidator(), clock: systemClock, logger });
  const gateway = await startGatewayServer({
    host: config.host,
    port: config.port,
    messaging,
    hub: routing.hub,
    ownership: { owners: routing.owners, calls: routing.calls },
    verifier,
    clock: systemClock,
    logger,
    maxFrameBytes: config.maxFrameBytes,
    extraRoutes(r) {
      health.register(r);
      reflection.register(r);
      calls.register(r);
      r.service(PushService, push);
    },
    callFrames: calls.frames,
    httpRoutes: (req, res) => observe.route?.(req, res) === true || calls.http(req, res),
    connections: observe.connections,
    observer: observe.requestObserver,
    // Tell load balancers first, then the clients.
    onDrain: () => health.shutdown(),
    reusePort: worker !== undefined,
    listenBacklog: config.listenBacklog,
    connectionIdPrefix: routing.workerId,
    extraStats: () => ({ routing: routing.stats(), mediaWebhooks: Object.fromEntries(calls.webhooks), ...(offlinePush === undefined ? {} : { offlinePush: offlinePush.pipeline.stats() }) }),
    edge: {
      maxConcurrentStreams: config.h2MaxConcurrentStreams,
      maxHeaderListBytes: config.maxHeaderListBytes,
      maxSessionMemoryMb: config.h2MaxSessionMemoryMb,
      handshakeTimeoutMs: config.handshakeTimeoutMs,
      connectionsPerUserMax: config.maxConnectionsPerUser,
    },
    webRoutes: createWebRoutes({ devTokenSecret: config.jwtSecret === DEV_JWT_SECRET ? DEV_JWT_SECRET : undefined, logger }),
    allowedOrigins: parseAllowedOrigins(config.allowedOrigins),
    limits: {
      pushQueueMax: config.pushQueueMax,
      pushQueueBytesMax: config.pushQueueBytesMax,
      pushFlushMs: config.pushFlushMs,
      inFlightMax: config.inFlightMax,
      heartbeatTimeoutMs: config.heartbeatTimeoutMs,
      heartbeatIntervalMs: config.heartbeatIntervalMs,
    },
  });
  operations = gateway.operations;
  observe.watch({ hub: routing.hub, broker: routing.broker, ownerCalls: routing.calls, push: offlinePush === undefined ? undefined : () => offlinePush.pipeline.counters() });
  return {
    gateway,
    store,
    calls,
    devices,
    async stop() {
      await gateway.close({ drainTimeoutMs: config.drainTimeoutMs, reconnectSpreadMs: config.reconnectSpreadMs });
      await calls.close();
      await offlinePush?.close();
      await routing.close();
      await devices.close();
      await store.close();
      await observe.close();
    },
  };
}

async function main(): Promise<void> {
  let config: ServerConfig;
  try {
    config = loadConfig(process.argv.slice(2), process.env);
    parseAllowedOrigins(config.allowedOrigins);
  } catch (error) {
    process.stderr.write(`microchat: ${(error as Error).message}\n`);
    process.exit(2);
  }
  const logger = await createLogger({ level: config.logLevel });
  const { jwtSecret: _secret, turnSecret: _turn, livekitApiSecret: _livekit, ...shown } = config;
  if (config.jwtSecret === DEV_JWT_SECRET) logger.warn("IM_JWT_SECRET is not set: using the development secret; anyone can mint tokens");
  let workers: number;
  try {
    workers = resolveWorkerCount(config.workers, config.store);
  } catch (error) {
    process.stderr.write(`microchat: ${(error as Error).message}\n`);
    process.exit(2);
  }
  const worker = workerContext(config.redisUrl === "");
  if (worker === undefined && workers > 1) return runPrimary(config, logger, workers, createPrimaryServices(config));
  let server: RunningServer;
  try {
    server = await startServer(config, worker === undefined ? logger : logger.child({ worker: worker.index }), worker);
  } catch (error) {
    // E.g. the store cannot be reached: one clear line, the details in the log.
    logger.error({ err: error }, "cannot start");
    process.stderr.write(`microchat: cannot start: ${(error as Error).message}\n`);
    process.exit(1);
  }
  logger.info({ config: shown, url: `http://${config.host}:${server.gateway.port}` }, `listening on ${config.host}:${server.gateway.port} (Connect, gRPC, gRPC-Web)`);
  let stopping = false;
  // A worker whose primary died may have lost its stdout (a broken pipe): logging must not
  // keep it from stopping, and a drain that hangs must not keep it alive holding the port.
  const log = (write: () => void) => {
    try {
      write();
    } catch {}
  };
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => process.exit(1), config.drainTimeoutMs + 5000).unref();
    log(() => logger.info({ signal }, "draining"));
    server.stop().then(
      () => {
        log(() => logger.info("stopped"));
        process.exit(0);
      },
      (err: unknown) => {
        log(() => logger.error({ err }, "stop failed"));
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  worker?.onPrimaryGone(() => stop("primary gone"));
  worker?.ready(server.gateway.port);
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith("server/main.ts")) {
  await main();
}
