import { createHash } from "node:crypto";
import http2 from "node:http2";
import { importPKCS8, SignJWT } from "jose";
import type { Clock } from "../core/clock.js";
import { notificationText, retryAfterMs, type PushNotification, type PushNotifier, type PushResult } from "./push-notifier.js";

/** Apple's production endpoint; development builds use https://api.sandbox.push.apple.com. */
export const APNS_PRODUCTION_ORIGIN = "https://api.push.apple.com";

/** Token-based connection to APNs. */
export interface ApnsPushNotifierOptions {
  /** The 10-character key id of the APNs auth key (.p8). */
  readonly keyId: string;
  /** The 10-character team id. */
  readonly teamId: string;
  /** The contents of the .p8 file: a PKCS#8 PEM EC P-256 private key. */
  readonly privateKeyPem: string;
  /** The app's bundle id (apns-topic). */
  readonly topic: string;
  /** Default: production. */
  readonly origin?: string;
  readonly clock: Clock;
  /** Apple wants a new provider token at most every 20 and at least every 60 minutes. Default 50 min. */
  readonly tokenRefreshMs?: number;
  /** How long a notification stays deliverable while the device is off. Default 1 day. */
  readonly expirationS?: number;
  /** Per request. Default 10 s. */
  readonly timeoutMs?: number;
}

/** Reasons (APNs' JSON `reason`) that mean the device token is no longer valid for this app. */
const INVALID_TOKEN_REASONS = new Set(["BadDeviceToken", "Unregistered", "DeviceTokenNotForTopic", "ExpiredToken"]);
/** Reasons that mean our provider token was refused: make a new one and try once more. */
const PROVIDER_TOKEN_REASONS = new Set(["ExpiredProviderToken", "InvalidProviderToken"]);

/** An apns-id (a UUID) derived from the delivery id: the same on every attempt. */
export function apnsIdFor(deliveryId: string): string {
  const h = createHash("sha256").update(deliveryId).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/**
 * Sends through the APNs provider API: one long-lived HTTP/2 connection, `POST
 * /3/device/<token>` with `authorization: bearer <JWT>` (ES256, `kid` = key id, claims `iss` =
 * team id and `iat`), reused across requests and refreshed every `tokenRefreshMs`, and the
 * headers apns-topic, apns-push-type (alert), apns-priority (10), apns-expiration,
 * apns-collapse-id (the message id: a repeat replaces the shown notification) and apns-id.
 * The body is `{"aps": {"alert": {title, body}, "sound": "default", "thread-id": <conversation>}}`
 * plus the message's ids.
 */
export class ApnsPushNotifier implements PushNotifier {
  readonly #options: ApnsPushNotifierOptions;
  readonly #origin: string;
  #key: ReturnType<typeof importPKCS8> | undefined;
  #token: { jwt: string; issuedAtMs: number } | undefined;
  #session: http2.ClientHttp2Session | undefined;
  /** Requests in flight per connection: a connection keeps the process alive only while it has some. */
  readonly #active = new WeakMap<http2.ClientHttp2Session, number>();
  #closed = false;

  constructor(options: ApnsPushNotifierOptions) {
    this.#options = options;
    this.#origin = options.origin ?? APNS_PRODUCTION_ORIGIN;
  }

  async send(n: PushNotification): Promise<PushResult> {
    if (this.#closed) throw new Error("APNs notifier is closed");
    let answer = await this.#post(n, false);
    if (answer.kind === "provider-token") answer = await this.#post(n, true);
    return answer.kind === "provider-token" ? { kind: "rejected", reason: `APNs refused a fresh provider token: ${answer.reason}` } : answer;
  }

  async close(): Promise<void> {
    this.#closed = true;
    const session = this.#session;
    this.#session = undefined;
    if (session !== undefined && !session.closed) await new Promise<void>((resolve) => session.close(() => resolve()));
  }

  async #post(n: PushNotification, freshToken: boolean): Promise<PushResult | { kind: "provider-token"; reason: string }> {
    const nowMs = this.#options.clock.nowMs();
    let jwt: string;
    try {
      jwt = await this.#providerToken(nowMs, freshToken);
    } catch (error) {
      return { kind: "rejected", reason: `cannot sign the APNs provider token: ${(error as Error).message}` };
    }
    const { title, body } = notificationText(n.message);
    const payload = JSON.stringify({
      aps: { alert: { title, body }, sound: "default", "thread-id": n.message.conversationId },
      conversation_id: n.message.conversationId,
      message_id: n.message.messageId,
      seq: n.message.seq,
    });
    let response: { status: number; headers: http2.IncomingHttpHeaders; body: string };
    try {
      response = await this.#request(
        {
          ":method": "POST",
          ":path": `/3/device/${n.device.token}`,
          authorization: `bearer ${jwt}`,
          "apns-topic": this.#options.topic,
          "apns-push-type": "alert",
          "apns-priority": "10",
          "apns-expiration": String(Math.floor(nowMs / 1000) + (this.#options.expirationS ?? 86_400)),
          "apns-collapse-id": n.message.messageId.slice(0, 64),
          "apns-id": apnsIdFor(n.deliveryId),
          "content-type": "application/json",
        },
        payload,
      );
    } catch (error) {
      return { kind: "retry", reason: `APNs request failed: ${(error as Error).message}` };
    }
    if (response.status === 200) return { kind: "sent" };
    const reason = parseReason(response.body) ?? `status ${response.status}`;
    if (response.status === 403 && PROVIDER_TOKEN_REASONS.has(reason)) {
      this.#token = undefined;
      return { kind: "provider-token", reason };
    }
    if (response.status === 410 || INVALID_TOKEN_REASONS.has(reason)) return { kind: "invalid-token", reason };
    if (response.status === 429 || response.status >= 500) {
      const after = retryAfterMs(response.headers["retry-after"] as string | undefined, nowMs);
      return { kind: "retry", reason, ...(after === undefined ? {} : { retryAfterMs: after }) };
    }
    return { kind: "rejected", reason };
  }

  async #providerToken(nowMs: number, fresh: boolean): Promise<string> {
    const refreshMs = this.#options.tokenRefreshMs ?? 50 * 60_000;
    if (!fresh && this.#token !== undefined && nowMs - this.#token.issuedAtMs < refreshMs) return this.#token.jwt;
    this.#key ??= importPKCS8(this.#options.privateKeyPem, "ES256");
    const key = await this.#key;
    const jwt = await new SignJWT({})
      .setProtectedHeader({ alg: "ES256", kid: this.#options.keyId })
      .setIssuer(this.#options.teamId)
      .setIssuedAt(Math.floor(nowMs / 1000))
      .sign(key);
    this.#token = { jwt, issuedAtMs: nowMs };
    return jwt;
  }

  #connection(): http2.ClientHttp2Session {
    if (this.#session === undefined || this.#session.closed || this.#session.destroyed) {
      const session = http2.connect(this.#origin);
      session.on("error", () => {
        // Surfaces on the requests in flight; the next send opens a new connection.
      });
      session.on("goaway", () => session.close());
      session.on("close", () => {
        if (this.#session === session) this.#session = undefined;
      });
      session.unref();
      this.#session = session;
    }
    return this.#session;
  }

  #request(headers: http2.OutgoingHttpHeaders, body: string): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string }> {
    return new Promise((resolve, reject) => {
      const session = this.#connection();
      const active = this.#active.get(session) ?? 0;
      this.#active.set(session, active + 1);
      if (active === 0) session.ref();
      const stream = session.request(headers);
      stream.setTimeout(this.#options.timeoutMs ?? 10_000, () => stream.close(http2.constants.NGHTTP2_CANCEL));
      let status = 0;
      let responseHeaders: http2.IncomingHttpHeaders = {};
      let text = "";
      stream.on("response", (h) => {
        responseHeaders = h;
        status = Number(h[":status"]);
      });
      stream.setEncoding("utf8");
      stream.on("data", (chunk: string) => {
        if (text.length < 4096) text += chunk;
      });
      stream.on("end", () => resolve({ status, headers: responseHeaders, body: text }));
      stream.on("close", () => {
        const left = (this.#active.get(session) ?? 1) - 1;
        this.#active.set(session, left);
        if (left === 0) session.unref();
        if (status === 0) reject(new Error(`stream closed without an answer (code ${stream.rstCode})`));
      });
      stream.on("error", reject);
      stream.end(body);
    });
  }
}

function parseReason(body: string): string | undefined {
  try {
    const reason = (JSON.parse(body) as { reason?: unknown }).reason;
    return typeof reason === "string" ? reason : undefined;
  } catch {
    return undefined;
  }
}
