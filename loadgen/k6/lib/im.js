// Shared helpers of the microchat k6 scripts: configuration from the environment, HS256 bearer
// tokens minted in the script, proto loading (server reflection by default), and the message
// body that carries the send timestamp.
import { Client } from "k6/net/grpc";
import crypto from "k6/crypto";
import encoding from "k6/encoding";

/** host:port of the gateway (plaintext HTTP/2). */
export const TARGET = __ENV.TARGET || "127.0.0.1:8080";
/** HS256 secret the server verifies tokens with (the server's IM_JWT_SECRET). */
export const JWT_SECRET = __ENV.JWT_SECRET || "microchat-dev-secret-change-me";
/** "reflect" (default): descriptors from the server's reflection service; "files": the repo's protos. */
export const PROTO_MODE = __ENV.PROTO_MODE || "reflect";
/**
 * k6 operator runners (the TestRun's parallelism). Each runner runs setup() itself (the open
 * source operator does not share setup data between runners), so every runner runs a full,
 * independent replica of the scenario: options ask for RUNNERS times the VUs of one replica and
 * the operator gives each runner its share.
 */
export const RUNNERS = Number(__ENV.RUNNERS || 1);
/** Where handleSummary writes its JSON file. */
export const SUMMARY_DIR = __ENV.SUMMARY_DIR || ".";
/** Content type of timestamped load messages (the same as the Node load generator's). */
export const LOAD_CONTENT_TYPE = "application/x-microchat-loadgen+json";

export const CONNECT = "im.v1.GatewayService/Connect";
export const SEND = "im.v1.GatewayService/Send";
export const CREATE_GROUP = "im.v1.ConversationService/CreateGroup";

/**
 * A gRPC client with the protos loaded when PROTO_MODE=files (call in the init context, as
 * k6 requires for load()).
 */
export function newClient() {
  const client = new Client();
  if (PROTO_MODE === "files") {
    client.load(["../../proto", "../../third_party/proto"], "im/v1/gateway.proto", "im/v1/conversation.proto");
  }
  return client;
}

/**
 * Connects (in VU code); with PROTO_MODE=reflect the descriptors come from the server.
 * @param {Client} client
 */
export function connect(client) {
  client.connect(TARGET, { plaintext: true, reflect: PROTO_MODE !== "files", timeout: "10s" });
}

/** @param {string} text */
function b64url(text) {
  return encoding.b64encode(text, "rawurl");
}

/**
 * An HS256 JWT for `userId`, valid for `ttlS` seconds.
 * @param {string} userId
 * @param {number} [ttlS]
 */
export function token(userId, ttlS = 3600) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64url(JSON.stringify({ sub: userId, iat: now, exp: now + ttlS }));
  const signature = crypto.hmac("sha256", JWT_SECRET, `${head}.${body}`, "base64rawurl");
  return `${head}.${body}.${signature}`;
}

/** A tag for this run's user ids: RUN_ID, or one per setup() call (so per operator runner). */
export function newRunId() {
  return __ENV.RUN_ID || `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
}

/** @param {string} userId */
export function auth(userId) {
  return { metadata: { authorization: `Bearer ${token(userId)}` } };
}

/**
 * A message body carrying its send time (ms since the epoch), as base64 for the JSON mapping.
 * @param {string} from
 * @param {number} n
 */
export function loadBody(from, n) {
  const now = Date.now();
  return { contentType: LOAD_CONTENT_TYPE, data: encoding.b64encode(JSON.stringify({ d: now, w: now, f: from, n })) };
}

/**
 * The send time in a received message's body; undefined for other messages.
 * @param {{ contentType?: string, data?: string } | undefined} body
 * @returns {number | undefined}
 */
export function sentAt(body) {
  if (body === undefined || body.contentType !== LOAD_CONTENT_TYPE || body.data === undefined) return undefined;
  try {
    const v = JSON.parse(encoding.b64decode(body.data, "std", "s"));
    return typeof v.d === "number" ? v.d : undefined;
  } catch (_) {
    return undefined;
  }
}

/**
 * A short text summary of the custom metrics named, for handleSummary's stdout.
 * @param {any} data
 * @param {string} title
 * @param {string[]} names
 */
export function textSummary(data, title, names) {
  const lines = [`${title}`];
  for (const name of names) {
    const m = data.metrics[name];
    if (m === undefined) continue;
    const values = Object.entries(m.values)
      .map(([k, v]) => `${k}=${typeof v === "number" ? Math.round(v * 100) / 100 : v}`)
      .join(" ");
    const thresholds = m.thresholds ? Object.entries(m.thresholds).map(([t, r]) => ` [${t}: ${r.ok ? "ok" : "FAILED"}]`).join("") : "";
    lines.push(`  ${name}: ${values}${thresholds}`);
  }
  return lines.join("\n") + "\n";
}
