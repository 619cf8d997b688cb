import type { AppendedMessage } from "../core/offline-push.js";
import type { DeviceRegistration } from "./device-token-store.js";

/** One notification for one device. */
export interface PushNotification {
  readonly device: DeviceRegistration;
  readonly message: AppendedMessage;
  /**
   * `<messageId>/<userId>/<deviceId>`: the same for every attempt, so a receiver (or the
   * provider's collapse key) can drop a repeat that a lost answer caused.
   */
  readonly deliveryId: string;
}

/** What a provider answered. */
export type PushResult =
  /** Accepted by the provider. */
  | { readonly kind: "sent" }
  /** Not accepted now (overload, outage, timeout, network): try again, not before `retryAfterMs` if given. */
  | { readonly kind: "retry"; readonly reason: string; readonly retryAfterMs?: number }
  /** The token is no longer valid (app uninstalled, token expired): forget the registration. */
  | { readonly kind: "invalid-token"; readonly reason: string }
  /** Refused for good (bad request, bad credentials): do not retry. */
  | { readonly kind: "rejected"; readonly reason: string };

/**
 * A push provider: sends one notification to one device. Adapters: webhook (HTTP POST signed
 * with HMAC-SHA256, for a push service of one's own), APNs (HTTP/2, ES256 provider token) and
 * FCM HTTP v1 (OAuth2 service account). Queueing, retries, backoff and duplicate suppression
 * are the PushDispatcher's, in front of any adapter.
 *
 * Contract: `send` resolves with the provider's answer classified as a PushResult and never
 * rejects for anything the provider or the network did (a network failure or timeout is
 * `retry`); each call makes at most one provider request for the notification itself (plus
 * what its authentication needs, and one more if the provider refused an expired credential).
 */
export interface PushNotifier {
  send(notification: PushNotification): Promise<PushResult>;
  /** Closes connections; sends after it reject. */
  close(): Promise<void>;
}

/** The notification's title and text: the sender, and the preview or a neutral line. */
export function notificationText(message: AppendedMessage): { title: string; body: string } {
  return { title: message.senderId, body: message.preview !== "" ? message.preview : "New message" };
}

/** A Retry-After header (seconds, or an HTTP date) in ms from `nowMs`, if present and sane. */
export function retryAfterMs(header: string | null | undefined, nowMs: number): number | undefined {
  if (header === null || header === undefined || header === "") return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.min(seconds * 1000, 3_600_000);
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.min(Math.max(at - nowMs, 0), 3_600_000);
}
