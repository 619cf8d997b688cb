import http from "node:http";
import type { AddressInfo } from "node:net";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { OfflinePushDecider, type AppendedMessage } from "../../../server/core/offline-push.js";
import { MemoryDeviceTokenStore } from "../../../server/push/memory-device-token-store.js";
import { PushDispatcher } from "../../../server/push/push-dispatcher.js";
import {
  signWebhookBody,
  verifyWebhookSignature,
  WEBHOOK_DELIVERY_HEADER,
  WEBHOOK_SIGNATURE_HEADER,
  WebhookPushNotifier,
  type WebhookBody,
} from "../../../server/push/webhook-push-notifier.js";
import { systemClock } from "../../../server/system.js";

const SECRET = "webhook-test-secret";

interface Received {
  readonly body: WebhookBody;
  readonly delivery: string;
  readonly signatureValid: boolean;
}

/** A local receiver that checks each request's signature and answers with `answer(n)` for the n-th request. */
async function receiver(answer: (n: number) => { status: number; headers?: Record<string, string> } = () => ({ status: 204 })) {
  const received: Received[] = [];
  let requests = 0;
  const server = http.createServer((req, res) => {
    let raw = "";
    req.setEncoding("utf8").on("data", (c: string) => (raw += c));
    req.on("end", () => {
      const ok = req.method === "POST" && req.headers["content-type"] === "application/json";
      received.push({
        body: JSON.parse(raw) as WebhookBody,
        delivery: String(req.headers[WEBHOOK_DELIVERY_HEADER]),
        signatureValid: ok && verifyWebhookSignature(SECRET, req.headers[WEBHOOK_SIGNATURE_HEADER] as string | undefined, raw, Date.now()),
      });
      const { status, headers } = answer(requests++);
      res.writeHead(status, headers).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/push`;
  return { url, received, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

const message = (id: string): AppendedMessage => ({ messageId: id, conversationId: "d:alice:bob", seq: 3, senderId: "alice", preview: "hi bob" });

describe("verifyWebhookSignature()", () => {
  const body = '{"a":1}';
  const now = 1_800_000_000_000;
  const header = signWebhookBody(SECRET, now / 1000, body);

  it("accepts the signature of the same body within the tolerance", () => {
    expect(verifyWebhookSignature(SECRET, header, body, now + 299_000)).toBe(true);
  });

  it.each([
    ["another body", SECRET, '{"a":2}', now],
    ["another secret", "other", body, now],
    ["an old timestamp (replay)", SECRET, body, now + 301_000],
  ])("rejects %s", (_what, secret, text, at) => {
    expect(verifyWebhookSignature(secret, header, text, at)).toBe(false);
  });

  it("rejects a missing or malformed header", () => {
    expect(verifyWebhookSignature(SECRET, undefined, body, now)).toBe(false);
    expect(verifyWebhookSignature(SECRET, "v1=abc", body, now)).toBe(false);
  });
});

describe("WebhookPushNotifier through the PushDispatcher", () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0)) await c();
  });

  async function setup(answer?: (n: number) => { status: number; headers?: Record<string, string> }, options: { queueMax?: number } = {}) {
    const r = await receiver(answer);
    const devices = new MemoryDeviceTokenStore();
    const webhook = new WebhookPushNotifier({ url: r.url, secret: SECRET, clock: systemClock, timeoutMs: 2000 });
    const dispatcher = new PushDispatcher({
      devices,
      notifiers: { apns: webhook, fcm: webhook },
      logger: pino({ level: "silent" }),
      backoffBaseMs: 20,
      backoffMaxMs: 100,
      ...options,
    });
    cleanup.push(async () => {
      await dispatcher.close();
      await r.close();
    });
    return { r, devices, dispatcher };
  }

  it("posts one signed request per device with the message and the device's token", async () => {
    const { r, devices, dispatcher } = await setup();
    await devices.register("bob", { deviceId: "iphone", platform: "apns", token: "apns-token" }, 1);
    await devices.register("bob", { deviceId: "pixel", platform: "fcm", token: "fcm-token" }, 2);
    dispatcher.notify({ userId: "bob", message: message("m1"), why: "grace" });
    await dispatcher.settled();
    expect(r.received.map((x) => x.signatureValid)).toEqual([true, true]);
    expect(r.received.map((x) => x.body).sort((a, b) => a.device.device_id.localeCompare(b.device.device_id))).toEqual([
      { delivery_id: "m1/bob/iphone", user_id: "bob", device: { device_id: "iphone", platform: "apns", token: "apns-token" }, message: { message_id: "m1", conversation_id: "d:alice:bob", seq: 3, sender_id: "alice", preview: "hi bob" } },
      { delivery_id: "m1/bob/pixel", user_id: "bob", device: { device_id: "pixel", platform: "fcm", token: "fcm-token" }, message: { message_id: "m1", conversation_id: "d:alice:bob", seq: 3, sender_id: "alice", preview: "hi bob" } },
    ]);
    expect(r.received.map((x) => x.delivery).sort()).toEqual(["m1/bob/iphone", "m1/bob/pixel"]);
    expect(dispatcher.stats()).toMatchObject({ sent: 2, retries: 0, queued: 0, inFlight: 0 });
  });

  it("retries through a failing receiver with the same delivery id until it takes the notification", async () => {
    const { r, devices, dispatcher } = await setup((n) => (n < 2 ? { status: 503, headers: { "retry-after": "0" } } : { status: 200 }));
    await devices.register("bob", { deviceId: "iphone", platform: "apns", token: "t" }, 1);
    dispatcher.notify({ userId: "bob", message: message("m1"), why: "grace" });
    await dispatcher.settled();
    expect(r.received.map((x) => [x.delivery, x.signatureValid])).toEqual([
      ["m1/bob/iphone", true],
      ["m1/bob/iphone", true],
      ["m1/bob/iphone", true],
    ]);
    expect(dispatcher.stats()).toMatchObject({ sent: 1, retries: 2, failed: 0 });
  });

  it("retries when the receiver cannot be reached, and gives up after the attempts allowed", async () => {
    const devices = new MemoryDeviceTokenStore();
    const webhook = new WebhookPushNotifier({ url: "http://127.0.0.1:1/unreachable", secret: SECRET, clock: systemClock });
    const dispatcher = new PushDispatcher({ devices, notifiers: { fcm: webhook }, logger: pino({ level: "silent" }), backoffBaseMs: 5, attemptsMax: 3 });
    await devices.register("bob", { deviceId: "pixel", platform: "fcm", token: "t" }, 1);
    dispatcher.notify({ userId: "bob", message: message("m1"), why: "grace" });
    await dispatcher.settled();
    expect(dispatcher.stats()).toMatchObject({ sent: 0, retries: 2, failed: 1 });
  });

  it("sends nothing twice for one message and device, however often it is decided", async () => {
    const { r, devices, dispatcher } = await setup();
    await devices.register("bob", { deviceId: "iphone", platform: "apns", token: "t" }, 1);
    for (let i = 0; i < 3; i++) dispatcher.notify({ userId: "bob", message: message("m1"), why: "grace" });
    dispatcher.notify({ userId: "bob", message: message("m2"), why: "grace" });
    await dispatcher.settled();
    expect(r.received.map((x) => x.delivery).sort()).toEqual(["m1/bob/iphone", "m2/bob/iphone"]);
    expect(dispatcher.stats().duplicates).toBe(2);
  });

  it("removes a registration the receiver reports gone (410), and does not retry a refusal (400)", async () => {
    const { r, devices, dispatcher } = await setup((n) => ({ status: n === 0 ? 410 : 400 }));
    await devices.register("bob", { deviceId: "iphone", platform: "apns", token: "t" }, 1);
    dispatcher.notify({ userId: "bob", message: message("m1"), why: "grace" });
    await dispatcher.settled();
    expect(await devices.listDevices("bob")).toEqual([]);
    await devices.register("carol", { deviceId: "pixel", platform: "fcm", token: "u" }, 1);
    dispatcher.notify({ userId: "carol", message: message("m1"), why: "grace" });
    await dispatcher.settled();
    expect(r.received).toHaveLength(2);
    expect(dispatcher.stats()).toMatchObject({ invalidTokens: 1, rejected: 1, retries: 0 });
  });

  it("drops what does not fit its bounded queue", async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const r = await receiver();
    const devices = new MemoryDeviceTokenStore();
    const webhook = new WebhookPushNotifier({ url: r.url, secret: SECRET, clock: systemClock });
    const slow = { send: async (n: Parameters<typeof webhook.send>[0]) => (await gate, webhook.send(n)), close: () => webhook.close() };
    const dispatcher = new PushDispatcher({ devices, notifiers: { fcm: slow }, logger: pino({ level: "silent" }), queueMax: 2, concurrency: 1 });
    for (const u of ["u1", "u2", "u3", "u4"]) await devices.register(u, { deviceId: "d", platform: "fcm", token: u }, 1);
    for (const u of ["u1", "u2", "u3", "u4"]) dispatcher.notify({ userId: u, message: message("m1"), why: "grace" });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(dispatcher.stats()).toMatchObject({ dropped: 2, inFlight: 1, queued: 1 });
    release();
    await dispatcher.settled();
    expect(r.received).toHaveLength(2);
    await dispatcher.close();
    await r.close();
  });

  it("gives an offline member's devices exactly one notification per message, and a reconnected member none", async () => {
    const { r, devices, dispatcher } = await setup();
    await devices.register("bob", { deviceId: "iphone", platform: "apns", token: "b1" }, 1);
    await devices.register("bob", { deviceId: "ipad", platform: "apns", token: "b2" }, 2);
    await devices.register("carol", { deviceId: "pixel", platform: "fcm", token: "c1" }, 3);
    const decider = new OfflinePushDecider({ graceMs: 5000, pendingMax: 100, pendingPerUserMax: 10 });
    decider.connected("alice", 0);
    for (const [i, id] of ["m1", "m2"].entries()) {
      for (const d of decider.messageAppended({ ...message(id), conversationId: "g:team", seq: i + 1 }, ["alice", "bob", "carol"], 1000 + i)) dispatcher.notify(d);
    }
    decider.connected("carol", 3000);
    for (const d of decider.tick(10_000)) dispatcher.notify(d);
    for (const d of decider.tick(20_000)) dispatcher.notify(d);
    await dispatcher.settled();
    expect(r.received.map((x) => x.delivery).sort()).toEqual(["m1/bob/ipad", "m1/bob/iphone", "m2/bob/ipad", "m2/bob/iphone"]);
  });
});
