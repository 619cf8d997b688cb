import { createHmac, timingSafeEqual } from "node:crypto";
import type { Clock } from "../core/clock.js";
import { retryAfterMs, type PushNotification, type PushNotifier, type PushResult } from "./push-notifier.js";

/** Header carrying `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. */
export const WEBHOOK_SIGNATURE_HEADER = "x-microchat-signature";
/** Header carrying the delivery id, the same on every attempt: receivers drop repeats by it. */
export const WEBHOOK_DELIVERY_HEADER = "x-microchat-delivery";

/** Where and how to post. */
export interface WebhookPushNotifierOptions {
  readonly url: string;
  /** The shared secret the receiver verifies signatures with. */
  readonly secret: string;
  readonly clock: Clock;
  /** Per request. Default 10 s. */
  readonly timeoutMs?: number;
}

/** The JSON body of one webhook request. */
export interface WebhookBody {
  readonly delivery_id: string;
  readonly user_id: string;
  readonly device: { readonly device_id: string; readonly platform: string; readonly token: string };
  readonly message: { readonly message_id: string; readonly conversation_id: string; readonly seq: number; readonly sender_id: string; readonly preview: string };
}

/** The signature header value for `body` sent at `timestampS`. */
export function signWebhookBody(secret: string, timestampS: number, body: string): string {
  const mac = createHmac("sha256", secret).update(`${timestampS}.${body}`).digest("hex");
  return `t=${timestampS},v1=${mac}`;
}

/**
 * Checks a signature header against the raw body, as a receiver does: the MAC must match
 * (compared in constant time) and the timestamp lie within `toleranceS` of `nowMs`, so a
 * captured request cannot be replayed later.
 */
export function verifyWebhookSignature(secret: string, header: string | undefined, body: string, nowMs: number, toleranceS = 300): boolean {
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header ?? "");
  if (match === null) return false;
  const timestampS = Number(match[1]);
  if (Math.abs(nowMs / 1000 - timestampS) > toleranceS) return false;
  const expected = Buffer.from(signWebhookBody(secret, timestampS, body).slice(-64), "hex");
  return timingSafeEqual(expected, Buffer.from(match[2]!, "hex"));
}

/**
 * Posts each notification as JSON to one URL (a push service of one's own, which then talks to
 * the providers), signed with HMAC-SHA256 over the timestamp and the body. The receiver answers
 * 2xx when it took the notification, 410 when the device's token is gone, 429 or 5xx (with an
 * optional Retry-After) to be asked again later; any other status refuses it for good.
 */
export class WebhookPushNotifier implements PushNotifier {
  readonly #options: WebhookPushNotifierOptions;
  #closed = false;

  constructor(options: WebhookPushNotifierOptions) {
    if (options.secret === "") throw new Error("the webhook secret must not be empty");
    this.#options = options;
  }

  async send(n: PushNotification): Promise<PushResult> {
    if (this.#closed) throw new Error("webhook notifier is closed");
    const payload: WebhookBody = {
      delivery_id: n.deliveryId,
      user_id: n.device.userId,
      device: { device_id: n.device.deviceId, platform: n.device.platform, token: n.device.token },
      message: { message_id: n.message.messageId, conversation_id: n.message.conversationId, seq: n.message.seq, sender_id: n.message.senderId, preview: n.message.preview },
    };
    const body = JSON.stringify(payload);
    const nowMs = this.#options.clock.nowMs();
    let response: Response;
    try {
      response = await fetch(this.#options.url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          [WEBHOOK_SIGNATURE_HEADER]: signWebhookBody(this.#options.secret, Math.floor(nowMs / 1000), body),
          [WEBHOOK_DELIVERY_HEADER]: n.deliveryId,
        },
        body,
        signal: AbortSignal.timeout(this.#options.timeoutMs ?? 10_000),
      });
      await response.arrayBuffer();
    } catch (error) {
      return { kind: "retry", reason: `webhook request failed: ${(error as Error).message}` };
    }
    const { status } = response;
    if (status >= 200 && status < 300) return { kind: "sent" };
    if (status === 410) return { kind: "invalid-token", reason: "webhook answered 410 Gone" };
    if (status === 408 || status === 429 || status >= 500) {
      const after = retryAfterMs(response.headers.get("retry-after"), nowMs);
      return { kind: "retry", reason: `webhook answered ${status}`, ...(after === undefined ? {} : { retryAfterMs: after }) };
    }
    return { kind: "rejected", reason: `webhook answered ${status}` };
  }

  async close(): Promise<void> {
    this.#closed = true;
  }
}
