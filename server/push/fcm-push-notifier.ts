import { importPKCS8, SignJWT } from "jose";
import type { Clock } from "../core/clock.js";
import { notificationText, retryAfterMs, type PushNotification, type PushNotifier, type PushResult } from "./push-notifier.js";

/** The fields of a Google service-account key file (JSON) that FCM needs. */
export interface ServiceAccountKey {
  readonly project_id: string;
  readonly client_email: string;
  /** PKCS#8 PEM RSA key. */
  readonly private_key: string;
  readonly private_key_id?: string;
  /** Default https://oauth2.googleapis.com/token. */
  readonly token_uri?: string;
}

/** How to reach FCM. */
export interface FcmPushNotifierOptions {
  readonly serviceAccount: ServiceAccountKey;
  /** Default https://fcm.googleapis.com. */
  readonly endpoint?: string;
  readonly clock: Clock;
  /** Per request. Default 10 s. */
  readonly timeoutMs?: number;
}

/** The OAuth2 scope for sending with FCM. */
export const FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging";
const GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token";
const JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/** FCM error codes (google.firebase.fcm.v1.FcmError) that mean the token is gone. */
const INVALID_TOKEN_CODES = new Set(["UNREGISTERED", "SENDER_ID_MISMATCH"]);

/**
 * Sends through FCM's HTTP v1 API: `POST /v1/projects/<project>/messages:send` with
 * `Authorization: Bearer <access token>` and `{"message": {token, notification, data, android}}`.
 * The access token comes from Google's OAuth2 token endpoint in exchange for a JWT signed with
 * the service account's key (RS256; iss = client_email, scope = firebase.messaging,
 * aud = token_uri, exp = iat + 1 h), is cached until a minute before it expires, and is fetched
 * anew once if FCM answers 401.
 */
export class FcmPushNotifier implements PushNotifier {
  readonly #options: FcmPushNotifierOptions;
  readonly #endpoint: string;
  readonly #tokenUri: string;
  #key: ReturnType<typeof importPKCS8> | undefined;
  #access: { token: string; expiresAtMs: number } | undefined;
  /** One token exchange at a time; concurrent sends wait for it. */
  #exchange: Promise<{ token: string; expiresAtMs: number }> | undefined;
  #closed = false;

  constructor(options: FcmPushNotifierOptions) {
    this.#options = options;
    this.#endpoint = options.endpoint ?? "https://fcm.googleapis.com";
    this.#tokenUri = options.serviceAccount.token_uri ?? GOOGLE_TOKEN_URI;
  }

  async send(n: PushNotification): Promise<PushResult> {
    if (this.#closed) throw new Error("FCM notifier is closed");
    const first = await this.#post(n);
    if (first.kind !== "unauthenticated") return first;
    this.#access = undefined;
    const second = await this.#post(n);
    return second.kind === "unauthenticated" ? { kind: "rejected", reason: "FCM refused a fresh access token" } : second;
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  async #post(n: PushNotification): Promise<PushResult | { kind: "unauthenticated" }> {
    let token: string;
    try {
      token = await this.#accessToken();
    } catch (error) {
      return error instanceof CredentialsRefused
        ? { kind: "rejected", reason: error.message }
        : { kind: "retry", reason: `FCM access token: ${(error as Error).message}` };
    }
    const { title, body } = notificationText(n.message);
    const message = {
      message: {
        token: n.device.token,
        notification: { title, body },
        // FCM data values must be strings.
        data: { conversation_id: n.message.conversationId, message_id: n.message.messageId, seq: String(n.message.seq), sender_id: n.message.senderId },
        android: { priority: "HIGH", collapse_key: n.message.messageId },
      },
    };
    const nowMs = this.#options.clock.nowMs();
    let response: Response;
    let text: string;
    try {
      response = await fetch(`${this.#endpoint}/v1/projects/${encodeURIComponent(this.#options.serviceAccount.project_id)}/messages:send`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json; UTF-8" },
        body: JSON.stringify(message),
        signal: AbortSignal.timeout(this.#options.timeoutMs ?? 10_000),
      });
      text = await response.text();
    } catch (error) {
      return { kind: "retry", reason: `FCM request failed: ${(error as Error).message}` };
    }
    if (response.ok) return { kind: "sent" };
    if (response.status === 401) return { kind: "unauthenticated" };
    const code = fcmErrorCode(text) ?? `HTTP ${response.status}`;
    if (INVALID_TOKEN_CODES.has(code)) return { kind: "invalid-token", reason: code };
    if (response.status === 429 || response.status >= 500) {
      const after = retryAfterMs(response.headers.get("retry-after"), nowMs);
      return { kind: "retry", reason: code, ...(after === undefined ? {} : { retryAfterMs: after }) };
    }
    return { kind: "rejected", reason: code };
  }

  async #accessToken(): Promise<string> {
    const nowMs = this.#options.clock.nowMs();
    if (this.#access !== undefined && nowMs < this.#access.expiresAtMs - 60_000) return this.#access.token;
    this.#exchange ??= this.#exchangeAssertion(nowMs).finally(() => (this.#exchange = undefined));
    this.#access = await this.#exchange;
    return this.#access.token;
  }

  async #exchangeAssertion(nowMs: number): Promise<{ token: string; expiresAtMs: number }> {
    const account = this.#options.serviceAccount;
    this.#key ??= importPKCS8(account.private_key, "RS256");
    const iat = Math.floor(nowMs / 1000);
    const assertion = await new SignJWT({ scope: FCM_SCOPE })
      .setProtectedHeader({ alg: "RS256", typ: "JWT", ...(account.private_key_id === undefined ? {} : { kid: account.private_key_id }) })
      .setIssuer(account.client_email)
      .setAudience(this.#tokenUri)
      .setIssuedAt(iat)
      .setExpirationTime(iat + 3600)
      .sign(await this.#key);
    const response = await fetch(this.#tokenUri, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: JWT_BEARER, assertion }).toString(),
      signal: AbortSignal.timeout(this.#options.timeoutMs ?? 10_000),
    });
    const text = await response.text();
    if (response.status === 400 || response.status === 401) throw new CredentialsRefused(`the token endpoint refused the service account (${response.status}): ${text.slice(0, 200)}`);
    if (!response.ok) throw new Error(`the token endpoint answered ${response.status}`);
    const { access_token: token, expires_in: expiresInS } = JSON.parse(text) as { access_token?: unknown; expires_in?: unknown };
    if (typeof token !== "string" || typeof expiresInS !== "number") throw new Error("the token endpoint's answer has no access_token or expires_in");
    return { token, expiresAtMs: nowMs + expiresInS * 1000 };
  }
}

/** The token endpoint refused the credentials themselves: retrying cannot help. */
class CredentialsRefused extends Error {}

/** The FcmError code in an FCM error body, else its canonical status (e.g. "UNAVAILABLE"). */
function fcmErrorCode(body: string): string | undefined {
  try {
    const error = (JSON.parse(body) as { error?: { status?: string; details?: { "@type"?: string; errorCode?: string }[] } }).error;
    const fcm = error?.details?.find((d) => d["@type"] === "type.googleapis.com/google.firebase.fcm.v1.FcmError")?.errorCode;
    return fcm ?? error?.status;
  } catch {
    return undefined;
  }
}
