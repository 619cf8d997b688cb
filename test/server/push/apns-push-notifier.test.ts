import { generateKeyPairSync } from "node:crypto";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { decodeProtectedHeader, jwtVerify } from "jose";
import { afterEach, describe, expect, it } from "vitest";
import type { Clock } from "../../../server/core/clock.js";
import { ApnsPushNotifier, apnsIdFor } from "../../../server/push/apns-push-notifier.js";
import type { PushNotification } from "../../../server/push/push-notifier.js";

const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
const P8 = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
const KEY_ID = "ABC123DEFG";
const TEAM_ID = "DEF123GHIJ";
const TOPIC = "com.example.microchat";
const DEVICE_TOKEN = "a".repeat(64);

interface Seen {
  readonly headers: http2.IncomingHttpHeaders;
  readonly body: string;
}

/** A local HTTP/2 server in APNs' place, answering the n-th request with `answer(n)`. */
async function fakeApns(answer: (n: number) => { status: number; reason?: string; headers?: Record<string, string> } = () => ({ status: 200 })) {
  const seen: Seen[] = [];
  const server = http2.createServer();
  server.on("stream", (stream, headers) => {
    let body = "";
    stream.setEncoding("utf8").on("data", (c: string) => (body += c));
    stream.on("end", () => {
      const { status, reason, headers: extra } = answer(seen.length);
      seen.push({ headers, body });
      stream.respond({ ":status": status, "apns-id": String(headers["apns-id"]), ...extra });
      stream.end(reason === undefined ? "" : JSON.stringify({ reason }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { origin, seen, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

function notification(messageId = "01JCONVERSATIONMESSAGE0001"): PushNotification {
  return {
    device: { userId: "bob", deviceId: "iphone", platform: "apns", token: DEVICE_TOKEN, registeredAtMs: 1 },
    message: { messageId, conversationId: "g:team", seq: 42, senderId: "alice", preview: "lunch?" },
    deliveryId: `${messageId}/bob/iphone`,
  };
}

describe("ApnsPushNotifier against a local HTTP/2 server", () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0)) await c();
  });
  let nowMs = 1_800_000_000_000;
  const clock: Clock = { nowMs: () => nowMs };

  async function setup(answer?: Parameters<typeof fakeApns>[0]) {
    const apns = await fakeApns(answer);
    const notifier = new ApnsPushNotifier({ keyId: KEY_ID, teamId: TEAM_ID, privateKeyPem: P8, topic: TOPIC, origin: apns.origin, clock });
    cleanup.push(async () => {
      await notifier.close();
      await apns.close();
    });
    return { apns, notifier };
  }

  it("posts to /3/device/<token> with the documented headers, an ES256 provider token and an alert payload", async () => {
    const { apns, notifier } = await setup();
    expect(await notifier.send(notification())).toEqual({ kind: "sent" });
    const [req] = apns.seen;
    expect(req!.headers).toMatchObject({
      ":method": "POST",
      ":path": `/3/device/${DEVICE_TOKEN}`,
      ":scheme": "http",
      "apns-topic": TOPIC,
      "apns-push-type": "alert",
      "apns-priority": "10",
      "apns-expiration": String(nowMs / 1000 + 86_400),
      "apns-collapse-id": "01JCONVERSATIONMESSAGE0001",
      "apns-id": apnsIdFor("01JCONVERSATIONMESSAGE0001/bob/iphone"),
      "content-type": "application/json",
    });
    expect(req!.headers["apns-id"]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const auth = String(req!.headers.authorization);
    expect(auth).toMatch(/^bearer [\w-]+\.[\w-]+\.[\w-]+$/);
    const jwt = auth.slice("bearer ".length);
    expect(decodeProtectedHeader(jwt)).toEqual({ alg: "ES256", kid: KEY_ID });
    const { payload } = await jwtVerify(jwt, publicKey, { algorithms: ["ES256"], issuer: TEAM_ID, currentDate: new Date(nowMs) });
    expect(payload).toEqual({ iss: TEAM_ID, iat: nowMs / 1000 });
    expect(JSON.parse(req!.body)).toEqual({
      aps: { alert: { title: "alice", body: "lunch?" }, sound: "default", "thread-id": "g:team" },
      conversation_id: "g:team",
      message_id: "01JCONVERSATIONMESSAGE0001",
      seq: 42,
    });
  });

  it("reuses its provider token on one connection and makes a new one after the refresh interval", async () => {
    const { apns, notifier } = await setup();
    await notifier.send(notification("m1"));
    nowMs += 49 * 60_000;
    await notifier.send(notification("m2"));
    nowMs += 2 * 60_000;
    await notifier.send(notification("m3"));
    const tokens = apns.seen.map((s) => String(s.headers.authorization));
    expect(tokens[1]).toBe(tokens[0]);
    expect(tokens[2]).not.toBe(tokens[0]);
    const { payload } = await jwtVerify(tokens[2]!.slice(7), publicKey, { currentDate: new Date(nowMs) });
    expect(payload.iat).toBe(nowMs / 1000);
  });

  it("makes a new provider token and tries once more when APNs says it expired", async () => {
    const { apns, notifier } = await setup((n) => (n === 0 ? { status: 403, reason: "ExpiredProviderToken" } : { status: 200 }));
    expect(await notifier.send(notification())).toEqual({ kind: "sent" });
    expect(apns.seen).toHaveLength(2);
    expect(apns.seen[1]!.headers.authorization).not.toBe(apns.seen[0]!.headers.authorization);
    expect(apns.seen[1]!.headers["apns-id"]).toBe(apns.seen[0]!.headers["apns-id"]);
  });

  it("refuses for good when a fresh provider token is refused too", async () => {
    const { apns, notifier } = await setup(() => ({ status: 403, reason: "InvalidProviderToken" }));
    expect((await notifier.send(notification())).kind).toBe("rejected");
    expect(apns.seen).toHaveLength(2);
  });

  it.each([
    [410, "Unregistered", "invalid-token"],
    [400, "BadDeviceToken", "invalid-token"],
    [400, "DeviceTokenNotForTopic", "invalid-token"],
    [400, "PayloadTooLarge", "rejected"],
    [429, "TooManyRequests", "retry"],
    [503, "ServiceUnavailable", "retry"],
    [500, "InternalServerError", "retry"],
  ])("classifies %i %s as %s", async (status, reason, kind) => {
    const { notifier } = await setup(() => ({ status, reason }));
    expect(await notifier.send(notification())).toEqual(expect.objectContaining({ kind, reason }));
  });

  it("passes a Retry-After on", async () => {
    const { notifier } = await setup(() => ({ status: 503, reason: "ServiceUnavailable", headers: { "retry-after": "7" } }));
    expect(await notifier.send(notification())).toEqual({ kind: "retry", reason: "ServiceUnavailable", retryAfterMs: 7000 });
  });

  it("asks for a retry when APNs cannot be reached", async () => {
    const notifier = new ApnsPushNotifier({ keyId: KEY_ID, teamId: TEAM_ID, privateKeyPem: P8, topic: TOPIC, origin: "http://127.0.0.1:1", clock });
    expect((await notifier.send(notification())).kind).toBe("retry");
    await notifier.close();
  });
});
