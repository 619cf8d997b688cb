import { generateKeyPairSync } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { decodeProtectedHeader, jwtVerify } from "jose";
import { afterEach, describe, expect, it } from "vitest";
import type { Clock } from "../../../server/core/clock.js";
import { FCM_SCOPE, FcmPushNotifier } from "../../../server/push/fcm-push-notifier.js";
import type { PushNotification } from "../../../server/push/push-notifier.js";

const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const PROJECT = "microchat-test";
const EMAIL = "push@microchat-test.iam.gserviceaccount.com";
const KEY_ID = "0123456789abcdef";
const SEND_PATH = `/v1/projects/${PROJECT}/messages:send`;

type Answer = { status: number; body?: unknown; headers?: Record<string, string> };

/** A local server in place of Google's token endpoint and FCM. */
async function fakeGoogle(sendAnswer: (n: number) => Answer = () => ({ status: 200, body: { name: `projects/${PROJECT}/messages/1` } }), tokenAnswer?: (n: number) => Answer) {
  const tokens: { form: URLSearchParams; contentType: string | undefined }[] = [];
  const sends: { headers: http.IncomingHttpHeaders; body: any }[] = [];
  const issued: string[] = [];
  const server = http.createServer((req, res) => {
    let raw = "";
    req.setEncoding("utf8").on("data", (c: string) => (raw += c));
    req.on("end", () => {
      let answer: Answer;
      if (req.method === "POST" && req.url === "/token") {
        tokens.push({ form: new URLSearchParams(raw), contentType: req.headers["content-type"] });
        const token = `ya29.access-${tokens.length}`;
        issued.push(token);
        answer = tokenAnswer?.(tokens.length - 1) ?? { status: 200, body: { access_token: token, expires_in: 3599, token_type: "Bearer" } };
      } else if (req.method === "POST" && req.url === SEND_PATH) {
        sends.push({ headers: req.headers, body: JSON.parse(raw) });
        answer = sendAnswer(sends.length - 1);
      } else {
        answer = { status: 404, body: { error: { code: 404, status: "NOT_FOUND" } } };
      }
      res.writeHead(answer.status, { "content-type": "application/json", ...answer.headers }).end(JSON.stringify(answer.body ?? {}));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { origin, tokens, sends, issued, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

const fcmError = (code: number, status: string, errorCode: string): Answer => ({
  status: code,
  body: { error: { code, message: errorCode, status, details: [{ "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", errorCode }] } },
});

function notification(messageId = "01JMESSAGE000000000000000A"): PushNotification {
  return {
    device: { userId: "bob", deviceId: "pixel", platform: "fcm", token: "fcm-registration-token", registeredAtMs: 1 },
    message: { messageId, conversationId: "d:alice:bob", seq: 5, senderId: "alice", preview: "" },
    deliveryId: `${messageId}/bob/pixel`,
  };
}

describe("FcmPushNotifier against a local token endpoint and FCM", () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0)) await c();
  });
  let nowMs = 1_800_000_000_000;
  const clock: Clock = { nowMs: () => nowMs };

  async function setup(...args: Parameters<typeof fakeGoogle>) {
    const google = await fakeGoogle(...args);
    const notifier = new FcmPushNotifier({
      serviceAccount: {
        project_id: PROJECT,
        client_email: EMAIL,
        private_key: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
        private_key_id: KEY_ID,
        token_uri: `${google.origin}/token`,
      },
      endpoint: google.origin,
      clock,
    });
    cleanup.push(async () => {
      await notifier.close();
      await google.close();
    });
    return { google, notifier };
  }

  it("exchanges a signed service-account JWT for an access token, as Google's OAuth2 documents it", async () => {
    const { google, notifier } = await setup();
    expect(await notifier.send(notification())).toEqual({ kind: "sent" });
    const [exchange] = google.tokens;
    expect(exchange!.contentType).toBe("application/x-www-form-urlencoded");
    expect(exchange!.form.get("grant_type")).toBe("urn:ietf:params:oauth:grant-type:jwt-bearer");
    const assertion = exchange!.form.get("assertion")!;
    expect(decodeProtectedHeader(assertion)).toEqual({ alg: "RS256", typ: "JWT", kid: KEY_ID });
    const { payload } = await jwtVerify(assertion, publicKey, { algorithms: ["RS256"], issuer: EMAIL, audience: `${google.origin}/token`, currentDate: new Date(nowMs) });
    expect(payload).toEqual({ iss: EMAIL, aud: `${google.origin}/token`, scope: FCM_SCOPE, iat: nowMs / 1000, exp: nowMs / 1000 + 3600 });
  });

  it("posts the HTTP v1 message with the access token as a bearer", async () => {
    const { google, notifier } = await setup();
    await notifier.send(notification());
    const [send] = google.sends;
    expect(send!.headers.authorization).toBe(`Bearer ${google.issued[0]}`);
    expect(send!.headers["content-type"]).toBe("application/json; UTF-8");
    expect(send!.body).toEqual({
      message: {
        token: "fcm-registration-token",
        notification: { title: "alice", body: "New message" },
        data: { conversation_id: "d:alice:bob", message_id: "01JMESSAGE000000000000000A", seq: "5", sender_id: "alice" },
        android: { priority: "HIGH", collapse_key: "01JMESSAGE000000000000000A" },
      },
    });
  });

  it("keeps the access token until a minute before it expires", async () => {
    const { google, notifier } = await setup();
    await notifier.send(notification("m1"));
    nowMs += 58 * 60_000;
    await Promise.all([notifier.send(notification("m2")), notifier.send(notification("m3"))]);
    expect(google.tokens).toHaveLength(1);
    nowMs += 60_000;
    await Promise.all([notifier.send(notification("m4")), notifier.send(notification("m5"))]);
    expect(google.tokens).toHaveLength(2);
    expect(google.sends.map((s) => s.headers.authorization)).toEqual([1, 1, 1, 2, 2].map((i) => `Bearer ya29.access-${i}`));
  });

  it("gets a new access token and tries once more after a 401", async () => {
    const { google, notifier } = await setup((n) => (n === 0 ? { status: 401, body: { error: { code: 401, status: "UNAUTHENTICATED" } } } : { status: 200 }));
    expect(await notifier.send(notification())).toEqual({ kind: "sent" });
    expect(google.tokens).toHaveLength(2);
    expect(google.sends.map((s) => s.headers.authorization)).toEqual(["Bearer ya29.access-1", "Bearer ya29.access-2"]);
  });

  it.each([
    [fcmError(404, "NOT_FOUND", "UNREGISTERED"), "invalid-token", "UNREGISTERED"],
    [fcmError(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH"), "invalid-token", "SENDER_ID_MISMATCH"],
    [fcmError(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"), "rejected", "INVALID_ARGUMENT"],
    [fcmError(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"), "retry", "QUOTA_EXCEEDED"],
    [fcmError(503, "UNAVAILABLE", "UNAVAILABLE"), "retry", "UNAVAILABLE"],
    [fcmError(500, "INTERNAL", "INTERNAL"), "retry", "INTERNAL"],
  ])("classifies %j as %s", async (answer, kind, reason) => {
    const { notifier } = await setup(() => answer);
    expect(await notifier.send(notification())).toEqual({ kind, reason });
  });

  it("passes a Retry-After on", async () => {
    const { notifier } = await setup(() => ({ ...fcmError(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"), headers: { "retry-after": "30" } }));
    expect(await notifier.send(notification())).toEqual({ kind: "retry", reason: "QUOTA_EXCEEDED", retryAfterMs: 30_000 });
  });

  it("refuses for good when the token endpoint refuses the service account, and retries when it is down", async () => {
    const refused = await setup(undefined, () => ({ status: 400, body: { error: "invalid_grant" } }));
    expect((await refused.notifier.send(notification())).kind).toBe("rejected");
    const down = await setup(undefined, () => ({ status: 503 }));
    expect((await down.notifier.send(notification())).kind).toBe("retry");
    expect(down.google.sends).toHaveLength(0);
  });
});
