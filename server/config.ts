import { parseArgs } from "node:util";
import { DEV_JWT_SECRET } from "./gateway/auth.js";
import { CASSANDRA_CONSISTENCIES, type CassandraConsistency } from "./store/cassandra-session.js";

/** Server configuration, from flags (first) and environment variables. */
export interface ServerConfig {
  readonly host: string;
  readonly port: number;
  readonly store: "sqlite" | "memory" | "cassandra";
  readonly dataDir: string;
  readonly sqliteSync: "full" | "normal";
  readonly cassandraContactPoints: string;
  readonly cassandraKeyspace: string;
  readonly cassandraLocalDc: string;
  readonly cassandraConsistency: CassandraConsistency;
  readonly cassandraReplicationFactor: number;
  readonly jwtSecret: string;
  readonly logLevel: string;
  readonly maxBodyBytes: number;
  readonly maxFrameBytes: number;
  readonly maxGroupMembers: number;
  readonly heartbeatTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  readonly pushQueueMax: number;
  readonly pushQueueBytesMax: number;
  readonly pushFlushMs: number;
  readonly inFlightMax: number;
  readonly drainTimeoutMs: number;
  readonly reconnectSpreadMs: number;
  readonly listenBacklog: number;
  readonly h2MaxConcurrentStreams: number;
  readonly maxHeaderListBytes: number;
  readonly h2MaxSessionMemoryMb: number;
  readonly handshakeTimeoutMs: number;
  readonly maxConnectionsPerUser: number;
  readonly workers: number;
  readonly redisUrl: string;
  readonly nodeId: string;
  readonly presenceTtlMs: number;
  readonly callStore: "auto" | "memory" | "sqlite" | "redis";
  readonly turnUrls: string;
  readonly turnSecret: string;
  readonly turnTtlS: number;
  readonly callRingTimeoutMs: number;
  readonly callConnectTimeoutMs: number;
  readonly callKeepaliveTimeoutMs: number;
  readonly livekitUrl: string;
  readonly livekitApiKey: string;
  readonly livekitApiSecret: string;
  readonly liveRoomViewersMax: number;
  readonly allowedOrigins: string;
  readonly rateUserSendsPerS: number;
  readonly rateUserBytesPerS: number;
  readonly rateConnectionSendsPerS: number;
  readonly rateConnectionBytesPerS: number;
  readonly rateUserGroupsPerMin: number;
  readonly rateBurstS: number;
  readonly metrics: "on" | "off";
  readonly otlpEndpoint: string;
  readonly pushGraceMs: number;
  readonly pushPreviewChars: number;
  readonly pushGroupMembersMax: number;
  readonly pushConcurrency: number;
  readonly pushWebhookUrl: string;
  readonly pushWebhookSecret: string;
  readonly apnsKeyFile: string;
  readonly apnsKeyId: string;
  readonly apnsTeamId: string;
  readonly apnsTopic: string;
  readonly apnsOrigin: string;
  readonly fcmServiceAccountFile: string;
  readonly fcmEndpoint: string;
}

interface Option {
  readonly flag: string;
  readonly env: string;
  readonly key: keyof ServerConfig;
  readonly fallback: string;
  readonly kind: "string" | "int" | readonly string[];
  readonly doc: string;
}

/** Every setting: flag, environment variable, default and meaning (the README's table). */
export const OPTIONS: readonly Option[] = [
  { flag: "host", env: "IM_HOST", key: "host", fallback: "127.0.0.1", kind: "string", doc: "address to listen on (0.0.0.0 for every interface)" },
  { flag: "port", env: "IM_PORT", key: "port", fallback: "8080", kind: "int", doc: "port for Connect, gRPC and gRPC-Web (HTTP/2 cleartext and HTTP/1.1)" },
  { flag: "store", env: "IM_STORE", key: "store", fallback: "sqlite", kind: ["sqlite", "memory", "cassandra"], doc: "message store: sqlite (durable, embedded), cassandra (shared by many gateways) or memory (tests)" },
  { flag: "data-dir", env: "IM_DATA_DIR", key: "dataDir", fallback: ".data", kind: "string", doc: "directory of the embedded store (im.sqlite)" },
  { flag: "sqlite-sync", env: "IM_SQLITE_SYNC", key: "sqliteSync", fallback: "full", kind: ["full", "normal"], doc: "SQLite synchronous mode: full survives power loss, normal only process crashes" },
  { flag: "cassandra-contact-points", env: "IM_CASSANDRA_CONTACT_POINTS", key: "cassandraContactPoints", fallback: "127.0.0.1:9042", kind: "string", doc: "Cassandra nodes to connect to first, comma-separated host[:port] (the port applies to every node)" },
  { flag: "cassandra-keyspace", env: "IM_CASSANDRA_KEYSPACE", key: "cassandraKeyspace", fallback: "microchat", kind: "string", doc: "Cassandra keyspace; created with the schema (deploy/cassandra/schema.cql) if missing" },
  { flag: "cassandra-local-dc", env: "IM_CASSANDRA_LOCAL_DC", key: "cassandraLocalDc", fallback: "datacenter1", kind: "string", doc: "the gateway's Cassandra data centre: requests go to its nodes, token-aware" },
  { flag: "cassandra-consistency", env: "IM_CASSANDRA_CONSISTENCY", key: "cassandraConsistency", fallback: "LOCAL_QUORUM", kind: CASSANDRA_CONSISTENCIES, doc: "consistency of every Cassandra read and write; LOCAL_QUORUM keeps acknowledged messages safe when replicas fail (ONE only with one replica)" },
  { flag: "cassandra-replication-factor", env: "IM_CASSANDRA_REPLICATION_FACTOR", key: "cassandraReplicationFactor", fallback: "1", kind: "int", doc: "replication factor in the local data centre when the keyspace is created (3 for a cluster)" },
  { flag: "jwt-secret", env: "IM_JWT_SECRET", key: "jwtSecret", fallback: DEV_JWT_SECRET, kind: "string", doc: "HS256 secret for bearer tokens (the default is for development only)" },
  { flag: "log-level", env: "IM_LOG_LEVEL", key: "logLevel", fallback: "info", kind: ["trace", "debug", "info", "warn", "error", "fatal", "silent"], doc: "pino log level" },
  { flag: "max-body-bytes", env: "IM_MAX_BODY_BYTES", key: "maxBodyBytes", fallback: "65536", kind: "int", doc: "largest message body" },
  { flag: "max-frame-bytes", env: "IM_MAX_FRAME_BYTES", key: "maxFrameBytes", fallback: "1048576", kind: "int", doc: "largest request message (frame) on the wire" },
  { flag: "max-group-members", env: "IM_MAX_GROUP_MEMBERS", key: "maxGroupMembers", fallback: "100000", kind: "int", doc: "largest group" },
  { flag: "heartbeat-timeout-ms", env: "IM_HEARTBEAT_TIMEOUT_MS", key: "heartbeatTimeoutMs", fallback: "90000", kind: "int", doc: "silence after which a long connection is closed; anything on its TCP connection counts (HTTP/2 PING acks too), and a connection silent for half of it is sent an HTTP/2 PING" },
  { flag: "heartbeat-interval-ms", env: "IM_HEARTBEAT_INTERVAL_MS", key: "heartbeatIntervalMs", fallback: "30000", kind: "int", doc: "server heartbeat interval on browser push streams" },
  { flag: "push-queue-max", env: "IM_PUSH_QUEUE_MAX", key: "pushQueueMax", fallback: "1024", kind: "int", doc: "pushes queued per connection before a slow-consumer disconnect" },
  { flag: "push-queue-bytes-max", env: "IM_PUSH_QUEUE_BYTES_MAX", key: "pushQueueBytesMax", fallback: "8388608", kind: "int", doc: "body bytes queued per connection before a slow-consumer disconnect" },
  { flag: "push-flush-ms", env: "IM_PUSH_FLUSH_MS", key: "pushFlushMs", fallback: "10", kind: "int", doc: "how long a push may wait to share one write with the next pushes to its connection on a gRPC or Connect binary long connection (server CPU for latency: 10 ms halves the CPU per delivery of a busy group); answers never wait; 0: each push is written at once" },
  { flag: "inflight-max", env: "IM_INFLIGHT_MAX", key: "inFlightMax", fallback: "64", kind: "int", doc: "requests in flight per long connection" },
  { flag: "drain-timeout-ms", env: "IM_DRAIN_TIMEOUT_MS", key: "drainTimeoutMs", fallback: "10000", kind: "int", doc: "on SIGTERM, how long in-flight requests may take to finish" },
  { flag: "reconnect-spread-ms", env: "IM_RECONNECT_SPREAD_MS", key: "reconnectSpreadMs", fallback: "5000", kind: "int", doc: "on shutdown, clients are told to reconnect after a random delay up to this" },
  { flag: "workers", env: "IM_WORKERS", key: "workers", fallback: "0", kind: "int", doc: "gateway worker processes sharing the port with SO_REUSEPORT (0: one per core; the memory store runs 1)" },
  { flag: "redis-url", env: "IM_REDIS_URL", key: "redisUrl", fallback: "", kind: "string", doc: "Redis for cross-process delivery and conversation owners (redis://host:port); needed for several nodes; empty: none" },
  { flag: "node-id", env: "IM_NODE_ID", key: "nodeId", fallback: "", kind: "string", doc: "this node's id, unique per running node; its workers are <node id>.w<i> (empty: <hostname>-<pid>)" },
  { flag: "presence-ttl-ms", env: "IM_PRESENCE_TTL_MS", key: "presenceTtlMs", fallback: "30000", kind: "int", doc: "a dead worker's owner lease in Redis expires after this, moving its conversations to the live workers; renewed every third of it" },
  { flag: "h2-max-concurrent-streams", env: "IM_H2_MAX_CONCURRENT_STREAMS", key: "h2MaxConcurrentStreams", fallback: "8", kind: "int", doc: "streams one HTTP/2 connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS): the long connection plus a few calls" },
  { flag: "max-header-list-bytes", env: "IM_MAX_HEADER_LIST_BYTES", key: "maxHeaderListBytes", fallback: "16384", kind: "int", doc: "bytes of request headers per stream or HTTP/1.1 request (SETTINGS_MAX_HEADER_LIST_SIZE)" },
  { flag: "h2-max-session-memory-mb", env: "IM_H2_MAX_SESSION_MEMORY_MB", key: "h2MaxSessionMemoryMb", fallback: "10", kind: "int", doc: "memory one HTTP/2 connection may hold in nghttp2 before its new streams are refused" },
  { flag: "handshake-timeout-ms", env: "IM_HANDSHAKE_TIMEOUT_MS", key: "handshakeTimeoutMs", fallback: "30000", kind: "int", doc: "a TCP connection that has not opened its first stream (or sent its first HTTP/1.1 request) by then is closed; the time counts from the accept, so a worker behind its load in a reconnect storm spends some of it (10 s closed devices at 100,000 connections on 2 cores)" },
  { flag: "max-connections-per-user", env: "IM_MAX_CONNECTIONS_PER_USER", key: "maxConnectionsPerUser", fallback: "16", kind: "int", doc: "long connections (Connect and Subscribe streams) one user may hold per worker process; more are refused with RESOURCE_EXHAUSTED / TOO_MANY_CONNECTIONS" },
  { flag: "allowed-origins", env: "IM_ALLOWED_ORIGINS", key: "allowedOrigins", fallback: "", kind: "string", doc: "origins whose browser apps may call the gateway (CORS for Connect and gRPC-Web), comma-separated scheme://host[:port], or * for any; empty: same-origin only" },
  { flag: "rate-user-sends-per-s", env: "IM_RATE_USER_SENDS_PER_S", key: "rateUserSendsPerS", fallback: "50", kind: "int", doc: "messages a user may send per second through one worker process, over all its connections and unary calls there (0: no limit); beyond it RESOURCE_EXHAUSTED with RATE_LIMITED and retry_after_ms" },
  { flag: "rate-user-bytes-per-s", env: "IM_RATE_USER_BYTES_PER_S", key: "rateUserBytesPerS", fallback: "4194304", kind: "int", doc: "message body bytes a user may send per second (0: no limit)" },
  { flag: "rate-connection-sends-per-s", env: "IM_RATE_CONNECTION_SENDS_PER_S", key: "rateConnectionSendsPerS", fallback: "30", kind: "int", doc: "messages one long connection may send per second (0: no limit)" },
  { flag: "rate-connection-bytes-per-s", env: "IM_RATE_CONNECTION_BYTES_PER_S", key: "rateConnectionBytesPerS", fallback: "2097152", kind: "int", doc: "message body bytes one long connection may send per second (0: no limit)" },
  { flag: "rate-user-groups-per-min", env: "IM_RATE_USER_GROUPS_PER_MIN", key: "rateUserGroupsPerMin", fallback: "10", kind: "int", doc: "groups a user may create per minute (0: no limit)" },
  { flag: "rate-burst-s", env: "IM_RATE_BURST_S", key: "rateBurstS", fallback: "2", kind: "int", doc: "bursts allowed above the per-second rates, in seconds of rate (group creation: one minute's worth)" },
  { flag: "listen-backlog", env: "IM_LISTEN_BACKLOG", key: "listenBacklog", fallback: "4096", kind: "int", doc: "accept queue length of the listening socket (capped by net.core.somaxconn); a reconnect storm overflows a short one" },
  { flag: "call-store", env: "IM_CALL_STORE", key: "callStore", fallback: "auto", kind: ["auto", "memory", "sqlite", "redis"], doc: "call state: auto is redis with a plain-Redis --redis-url, memory with the memory store, else sqlite (calls.sqlite in --data-dir, shared by the workers; also with a Redis Cluster, which the call store does not support yet)" },
  { flag: "turn-urls", env: "IM_TURN_URLS", key: "turnUrls", fallback: "", kind: "string", doc: "STUN/TURN URLs for one-to-one calls, comma-separated (e.g. stun:turn.example.com:3478,turn:turn.example.com:3478); empty: none" },
  { flag: "turn-secret", env: "IM_TURN_SECRET", key: "turnSecret", fallback: "", kind: "string", doc: "the TURN server's shared secret (coturn static-auth-secret): TURN REST credentials are HMAC-SHA1 of it" },
  { flag: "turn-ttl-s", env: "IM_TURN_TTL_S", key: "turnTtlS", fallback: "3600", kind: "int", doc: "lifetime of TURN credentials" },
  { flag: "call-ring-timeout-ms", env: "IM_CALL_RING_TIMEOUT_MS", key: "callRingTimeoutMs", fallback: "45000", kind: "int", doc: "a call nobody answers within this ends NO_ANSWER" },
  { flag: "call-connect-timeout-ms", env: "IM_CALL_CONNECT_TIMEOUT_MS", key: "callConnectTimeoutMs", fallback: "30000", kind: "int", doc: "an answered call whose media does not connect within this ends ICE_FAILED" },
  { flag: "call-keepalive-timeout-ms", env: "IM_CALL_KEEPALIVE_TIMEOUT_MS", key: "callKeepaliveTimeoutMs", fallback: "30000", kind: "int", doc: "a call whose answering device sends no keepalive within this ends CONNECTION_LOST (devices send one every third of it)" },
  { flag: "livekit-url", env: "IM_LIVEKIT_URL", key: "livekitUrl", fallback: "", kind: "string", doc: "LiveKit server for group calls and live rooms, as clients reach it (ws://host:7880); empty: none" },
  { flag: "livekit-api-key", env: "IM_LIVEKIT_API_KEY", key: "livekitApiKey", fallback: "", kind: "string", doc: "LiveKit API key (also checks its webhooks, posted to /livekit/webhook)" },
  { flag: "livekit-api-secret", env: "IM_LIVEKIT_API_SECRET", key: "livekitApiSecret", fallback: "", kind: "string", doc: "LiveKit API secret" },
  { flag: "metrics", env: "IM_METRICS", key: "metrics", fallback: "on", kind: ["on", "off"], doc: "GET /metrics: Prometheus text for the whole node (every worker's metrics, gathered through the primary); off: no metrics are kept" },
  { flag: "otlp-endpoint", env: "IM_OTLP_ENDPOINT", key: "otlpEndpoint", fallback: "", kind: "string", doc: "OpenTelemetry traces to this OTLP/HTTP endpoint (http://collector:4318; spans go to /v1/traces); the standard OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL (http/protobuf, http/json) and OTEL_SERVICE_NAME apply too; empty and no OTEL_ endpoint: no tracing, the SDK is not loaded" },
  { flag: "push-webhook-url", env: "IM_PUSH_WEBHOOK_URL", key: "pushWebhookUrl", fallback: "", kind: "string", doc: "offline push through a webhook: notifications are POSTed here, signed with --push-webhook-secret (docs/push.md); it serves every platform without a provider of its own; empty: none" },
  { flag: "push-webhook-secret", env: "IM_PUSH_WEBHOOK_SECRET", key: "pushWebhookSecret", fallback: "", kind: "string", doc: "HMAC-SHA256 secret of the webhook's x-microchat-signature (required with --push-webhook-url)" },
  { flag: "apns-key-file", env: "IM_APNS_KEY_FILE", key: "apnsKeyFile", fallback: "", kind: "string", doc: "offline push to iOS devices through APNs: the auth key (.p8) file; with --apns-key-id, --apns-team-id and --apns-topic; empty: none" },
  { flag: "apns-key-id", env: "IM_APNS_KEY_ID", key: "apnsKeyId", fallback: "", kind: "string", doc: "the APNs auth key's 10-character key id" },
  { flag: "apns-team-id", env: "IM_APNS_TEAM_ID", key: "apnsTeamId", fallback: "", kind: "string", doc: "the Apple developer team id" },
  { flag: "apns-topic", env: "IM_APNS_TOPIC", key: "apnsTopic", fallback: "", kind: "string", doc: "the iOS app's bundle id (apns-topic)" },
  { flag: "apns-origin", env: "IM_APNS_ORIGIN", key: "apnsOrigin", fallback: "https://api.push.apple.com", kind: "string", doc: "the APNs server (https://api.sandbox.push.apple.com for development builds)" },
  { flag: "fcm-service-account-file", env: "IM_FCM_SERVICE_ACCOUNT_FILE", key: "fcmServiceAccountFile", fallback: "", kind: "string", doc: "offline push to Android devices through FCM HTTP v1: the Firebase service account JSON key file; empty: none" },
  { flag: "fcm-endpoint", env: "IM_FCM_ENDPOINT", key: "fcmEndpoint", fallback: "https://fcm.googleapis.com", kind: "string", doc: "the FCM server" },
  { flag: "push-grace-ms", env: "IM_PUSH_GRACE_MS", key: "pushGraceMs", fallback: "5000", kind: "int", doc: "a member with no live connection is notified if it still has none this long after the message (a client that reconnects within it syncs instead)" },
  { flag: "push-preview-chars", env: "IM_PUSH_PREVIEW_CHARS", key: "pushPreviewChars", fallback: "80", kind: "int", doc: "characters of a text message shown in its notification (0: none, the notification says only who wrote)" },
  { flag: "push-group-members-max", env: "IM_PUSH_GROUP_MEMBERS_MAX", key: "pushGroupMembersMax", fallback: "2000", kind: "int", doc: "messages of groups larger than this notify no offline member (a large group's members are not kept per message)" },
  { flag: "push-concurrency", env: "IM_PUSH_CONCURRENCY", key: "pushConcurrency", fallback: "64", kind: "int", doc: "offline push requests in flight to the providers per worker process (10,000 notifications wait behind them; beyond that they are dropped and counted)" },
  { flag: "live-room-viewers-max", env: "IM_LIVE_ROOM_VIEWERS_MAX", key: "liveRoomViewersMax", fallback: "1000", kind: "int", doc: "viewers one live room admits" },
];

/** Parses flags and environment; throws an Error naming the bad setting. */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv): ServerConfig {
  const { values } = parseArgs({
    args: [...argv],
    options: Object.fromEntries(OPTIONS.map((o) => [o.flag, { type: "string" as const }])),
    strict: true,
    allowPositionals: false,
  });
  const config: Record<string, string | number> = {};
  for (const o of OPTIONS) {
    const raw = (values[o.flag] as string | undefined) ?? env[o.env] ?? o.fallback;
    if (o.kind === "int") {
      const n = Number(raw);
      if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${o.flag} / ${o.env} must be a non-negative integer, got ${JSON.stringify(raw)}`);
      config[o.key] = n;
    } else if (Array.isArray(o.kind)) {
      if (!o.kind.includes(raw)) throw new Error(`--${o.flag} / ${o.env} must be one of ${o.kind.join(", ")}, got ${JSON.stringify(raw)}`);
      config[o.key] = raw;
    } else {
      config[o.key] = raw;
    }
  }
  return config as unknown as ServerConfig;
}
