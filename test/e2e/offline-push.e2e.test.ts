import { randomBytes } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ImClient } from "../../client/im-client.js";
import { PushPlatform, PushService } from "../../gen/im/v1/push_pb.js";
import { DEV_JWT_SECRET, mintToken } from "../../server/gateway/auth.js";
import { verifyWebhookSignature, WEBHOOK_DELIVERY_HEADER, WEBHOOK_SIGNATURE_HEADER, type WebhookBody } from "../../server/push/webhook-push-notifier.js";
import { startNodeProcess, type NodeProcess } from "../support/node-process.js";
import { sharedRedisUrl } from "../support/redis.js";
import { spawnServer, type ServerProcess } from "../support/server-process.js";
import { NO_RATE_LIMITS, waitFor } from "../support/test-server.js";

const SECRET = "offline-push-e2e-secret";
const GRACE_MS = 1000;

/** A push receiver of one's own: checks each signature, answers 503 to the first `failFirst` requests. */
async function startReceiver(failFirst: number) {
  const attempts: string[] = [];
  const accepted = new Map<string, WebhookBody>();
  let badSignatures = 0;
  const server = http.createServer((req, res) => {
    let raw = "";
    req.setEncoding("utf8").on("data", (c: string) => (raw += c));
    req.on("end", () => {
      if (!verifyWebhookSignature(SECRET, req.headers[WEBHOOK_SIGNATURE_HEADER] as string | undefined, raw, Date.now())) badSignatures++;
      const delivery = String(req.headers[WEBHOOK_DELIVERY_HEADER]);
      attempts.push(delivery);
      if (attempts.length <= failFirst) {
        res.writeHead(503, { "retry-after": "0" }).end();
        return;
      }
      // A receiver drops repeats by delivery id; every repeat is counted by `attempts`.
      accepted.set(delivery, JSON.parse(raw) as WebhookBody);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/push`,
    attempts,
    accepted,
    badSignatures: () => badSignatures,
    /** "user:conversation:seq" of every accepted notification. */
    notified: () => [...accepted.values()].map((b) => `${b.user_id}:${b.message.conversation_id}:${b.message.seq}`).sort(),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const clients: ImClient[] = [];

describe("offline push through a webhook, on a node of 2 workers", () => {
  let dir: string;
  let server: ServerProcess;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  const baseUrl = () => `http://127.0.0.1:${server.port}`;
  const headers = async (userId: string) => ({ authorization: `Bearer ${await mintToken(DEV_JWT_SECRET, userId)}` });

  async function online(userId: string): Promise<ImClient> {
    // A transport of its own: a TCP connection of its own, which the kernel hands to either worker.
    const c = new ImClient({ transport: createGrpcTransport({ baseUrl: baseUrl() }), token: await mintToken(DEV_JWT_SECRET, userId), heartbeatIntervalMs: 1000, heartbeatTimeoutMs: 5000 });
    clients.push(c);
    c.start();
    return c;
  }

  async function registerDevice(userId: string, platform: PushPlatform): Promise<void> {
    const push = createClient(PushService, createGrpcTransport({ baseUrl: baseUrl() }));
    await push.registerDevice({ deviceId: `${userId}-phone`, platform, token: `token-${userId}` }, { headers: await headers(userId) });
  }

  beforeAll(async () => {
    // The first two requests fail: the dispatcher retries them.
    receiver = await startReceiver(2);
    dir = mkdtempSync(path.join(tmpdir(), "offline-push-"));
    server = await spawnServer(
      ["--workers", "2", "--store", "sqlite", "--sqlite-sync", "normal", "--data-dir", dir, "--push-webhook-url", receiver.url, "--push-webhook-secret", SECRET, "--push-grace-ms", String(GRACE_MS), ...NO_RATE_LIMITS],
      { timeoutMs: 60_000 },
    );
  }, 90_000);

  afterAll(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    server?.child.kill("SIGTERM");
    await server?.exited;
    await receiver?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("notifies each offline member's device once per message, nobody online anywhere, none who reconnects in the grace", async () => {
    const offline = ["off0", "off1", "off2", "off3"];
    // Online members spread over both workers (their homes are spread too).
    const onlineUsers = Array.from({ length: 8 }, (_, i) => `on${i}`);
    for (const [i, userId] of [...offline, ...onlineUsers, "back"].entries()) await registerDevice(userId, i % 2 === 0 ? PushPlatform.APNS : PushPlatform.FCM);
    const sender = await online("sender");
    const live = await Promise.all(onlineUsers.map((u) => online(u)));
    await waitFor(() => [sender, ...live].every((c) => c.idle()), "clients live", 20_000);

    const { conversation } = await sender.conversations.createGroup({ title: "push", memberUserIds: [...offline, ...onlineUsers, "back"] });
    const group = conversation!.conversationId;
    for (let i = 1; i <= 3; i++) await sender.send({ conversationId: group, body: `group ${i}` });
    await sender.send({ toUserId: "off0", body: "just for you" });
    // "back" opens the app within the grace: its client syncs, no notification.
    const back = await online("back");
    await waitFor(() => back.idle(), "back live", 10_000);

    const expected = [
      ...offline.flatMap((u) => [1, 2, 3].map((seq) => `${u}:${group}:${seq}`)),
      `off0:d:off0:sender:1`,
    ].sort();
    await waitFor(() => receiver.accepted.size >= expected.length, `${expected.length} notifications`, 20_000);
    // Past another grace and the retries: nothing more arrives.
    await new Promise((r) => setTimeout(r, GRACE_MS + 2000));
    expect(receiver.notified()).toEqual(expected);
    expect(receiver.badSignatures()).toBe(0);

    // The failing receiver was asked again with the same delivery ids: two attempts more than deliveries.
    expect(receiver.attempts.length).toBe(expected.length + 2);
    expect(new Set(receiver.attempts).size).toBe(expected.length);
    const one = [...receiver.accepted.values()].find((b) => b.user_id === "off1")!;
    expect(one).toMatchObject({ device: { device_id: "off1-phone", platform: "fcm", token: "token-off1" }, message: { sender_id: "sender", preview: expect.stringMatching(/^group \d$/) } });

    // The node's scrape sums both workers' offline push counters.
    const metrics = await (await fetch(`${baseUrl()}/metrics`)).text();
    // Summed over every sample of the metric (a gauge has one per worker).
    const value = (name: string) => {
      const samples = [...metrics.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "gm"))];
      return samples.length === 0 ? Number.NaN : samples.reduce((sum, m) => sum + Number(m[1]), 0);
    };
    expect(value("microchat_offline_push_sent_total")).toBe(expected.length);
    expect(value("microchat_offline_push_retries_total")).toBe(2);
    expect(value("microchat_offline_push_decided_total")).toBe(expected.length);
    expect(value("microchat_offline_push_queued")).toBe(0);
  }, 60_000);
});

const redisUrl = sharedRedisUrl();

describe.skipIf(redisUrl === "")("offline push across two nodes on Redis", () => {
  let dir: string;
  let nodes: NodeProcess[] = [];
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  // Redis is shared with other runs: ids unique to this one.
  const run = randomBytes(3).toString("hex");
  const id = (name: string) => `${name}-${run}`;

  async function online(userId: string, node: NodeProcess): Promise<ImClient> {
    const c = new ImClient({
      transport: createGrpcTransport({ baseUrl: `http://127.0.0.1:${node.port}` }),
      token: await mintToken(DEV_JWT_SECRET, userId),
      heartbeatIntervalMs: 1000,
      heartbeatTimeoutMs: 3000,
      backoff: { baseMs: 50, maxMs: 500 },
    });
    clients.push(c);
    c.start();
    return c;
  }

  beforeAll(async () => {
    receiver = await startReceiver(0);
    dir = mkdtempSync(path.join(tmpdir(), "offline-push-nodes-"));
    const common = ["--workers", "1", "--port", "0", "--data-dir", dir, "--sqlite-sync", "normal", "--redis-url", redisUrl, "--presence-ttl-ms", "1500", "--drain-timeout-ms", "1000"];
    const push = ["--push-webhook-url", receiver.url, "--push-webhook-secret", SECRET, "--push-grace-ms", String(GRACE_MS), ...NO_RATE_LIMITS];
    nodes = await Promise.all(["a", "b"].map((n) => startNodeProcess([...common, ...push, "--node-id", id(`node-${n}`)])));
  }, 90_000);

  afterAll(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    for (const node of nodes) if (node.child.exitCode === null && node.child.signalCode === null) node.kill("SIGTERM");
    await Promise.all(nodes.map((n) => n.exited));
    await receiver?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("notifies only members online at neither node, and those of a node that died once it is gone", async () => {
    const [a, b] = nodes as [NodeProcess, NodeProcess];
    const atA = Array.from({ length: 5 }, (_, i) => id(`a${i}`));
    const atB = Array.from({ length: 5 }, (_, i) => id(`b${i}`));
    const away = [id("away0"), id("away1")];
    const pushClient = createClient(PushService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${a.port}` }));
    for (const userId of [...atA, ...atB, ...away]) {
      await pushClient.registerDevice({ deviceId: "phone", platform: PushPlatform.FCM, token: `t-${userId}` }, { headers: { authorization: `Bearer ${await mintToken(DEV_JWT_SECRET, userId)}` } });
    }
    const sender = await online(id("sender"), a);
    const live = [...(await Promise.all(atA.map((u) => online(u, a)))), ...(await Promise.all(atB.map((u) => online(u, b))))];
    await waitFor(() => [sender, ...live].every((c) => c.idle()), "clients live", 20_000);
    const { conversation } = await sender.conversations.createGroup({ title: "nodes", memberUserIds: [...atA, ...atB, ...away] });
    const group = conversation!.conversationId;
    await sender.send({ conversationId: group, body: "first" });
    await waitFor(() => receiver.accepted.size >= 2, "2 notifications", 20_000);
    await new Promise((r) => setTimeout(r, GRACE_MS + 1000));
    expect(receiver.notified()).toEqual(away.map((u) => `${u}:${group}:1`).sort());

    // Node b dies: once its owner lease lapses, its users count as offline everywhere.
    b.kill("SIGKILL");
    await b.exited;
    await a.waitForLog((l) => l.msg === "conversation owners changed" && (l.left as string[]).some((w) => w.startsWith(id("node-b"))), "node b gone", 15_000);
    await sender.send({ conversationId: group, body: "second" });
    await waitFor(() => receiver.accepted.size >= 2 + 2 + atB.length, "notifications of the second message", 20_000);
    await new Promise((r) => setTimeout(r, GRACE_MS + 1000));
    expect(receiver.notified()).toEqual([...away.map((u) => `${u}:${group}:1`), ...[...away, ...atB].map((u) => `${u}:${group}:2`)].sort());
  }, 90_000);
});
