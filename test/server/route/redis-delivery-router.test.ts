import { randomUUID } from "node:crypto";
import { Writable } from "node:stream";
import { Redis } from "ioredis";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { openRedisDeliveryRouter, type RedisDeliveryRouter, type RedisDeliveryRouterOptions } from "../../../server/route/redis-delivery-router.js";
import { redisLogTail, sharedRedisUrl, startRedis, type RedisServer } from "../../support/redis.js";
import { waitFor } from "../../support/test-server.js";
import { describeDeliveryRouterContract, messagePush, target } from "./delivery-router-contract.js";

const url = sharedRedisUrl();

/** A logger whose lines are kept, to check what the router says. */
function capturingLogger() {
  const lines: { level: number; msg: string }[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split("\n")) if (line !== "") lines.push(JSON.parse(line) as { level: number; msg: string });
      done();
    },
  });
  return { logger: pino({ level: "info" }, stream), lines };
}

/** Routers on `redisUrl` with a key prefix of their own, so test files sharing the Redis do not meet. */
async function openRouters(redisUrl: string, count: number, extra: Partial<RedisDeliveryRouterOptions> = {}) {
  const keyPrefix = `t:${randomUUID()}:`;
  const routers: RedisDeliveryRouter[] = [];
  for (let i = 0; i < count; i++) {
    routers.push(
      await openRedisDeliveryRouter({ url: redisUrl, workerId: `w${i}`, presenceTtlMs: 30_000, logger: pino({ level: "silent" }), keyPrefix, ...extra }),
    );
  }
  return { routers, keyPrefix };
}

describe.skipIf(url === "")("RedisDeliveryRouter", () => {
  describeDeliveryRouterContract(
    "RedisDeliveryRouter",
    async () => {
      const { routers } = await openRouters(url, 2);
      return { routers, close: async () => void (await Promise.all(routers.map((r) => r.close()))) };
    },
    2,
  );

  describe("presence", () => {
    let routers: RedisDeliveryRouter[] = [];
    afterEach(async () => {
      await Promise.all(routers.map((r) => r.close()));
      routers = [];
    });

    it("names the worker holding a user from its first attach until its last detach", async () => {
      ({ routers } = await openRouters(url, 2));
      const [a, b] = routers as [RedisDeliveryRouter, RedisDeliveryRouter];
      const bob1 = target("b-1", "bob");
      const bob2 = target("b-2", "bob");
      b.attach(bob1);
      b.attach(bob2);
      await expect.poll(async () => (await a.lookup(["bob", "carol"])).get("bob")).toEqual(["w1"]);
      expect((await a.lookup(["carol"])).has("carol")).toBe(false);
      // A worker never routes to itself: its own connections get pushes locally.
      expect((await b.lookup(["bob"])).has("bob")).toBe(false);
      b.detach(bob1);
      expect((await a.lookup(["bob"])).get("bob")).toEqual(["w1"]);
      b.detach(bob2);
      await expect.poll(async () => (await a.lookup(["bob"])).has("bob")).toBe(false);
    });

    it("keeps entries alive while the worker ticks, and lets them expire (key and all) when it stops", async () => {
      const ttlMs = 1500;
      const { routers: opened, keyPrefix } = await openRouters(url, 2, { presenceTtlMs: ttlMs });
      routers = opened;
      const [a, b] = routers as [RedisDeliveryRouter, RedisDeliveryRouter];
      b.attach(target("b-1", "bob"));
      await expect.poll(async () => (await a.lookup(["bob"])).get("bob")).toEqual(["w1"]);
      // Ticking (the worker's heartbeat) for two TTLs keeps the entry.
      const started = Date.now();
      while (Date.now() - started < 2 * ttlMs) {
        b.tick(Date.now());
        await new Promise((r) => setTimeout(r, 50));
      }
      expect((await a.lookup(["bob"])).get("bob")).toEqual(["w1"]);
      // A dead worker stops ticking: after the TTL nobody sees it, and the key itself is gone.
      const probe = new Redis(url);
      try {
        await expect.poll(async () => (await a.lookup(["bob"])).has("bob"), { timeout: 3 * ttlMs, interval: 100 }).toBe(false);
        await expect.poll(() => probe.exists(`${keyPrefix}p:bob`), { timeout: 3 * ttlMs, interval: 100 }).toBe(0);
      } finally {
        probe.disconnect();
      }
    });
  });

  describe("deliver()", () => {
    it("drops cross-process pushes beyond pendingMax and counts them; local connections still get them", async () => {
      const { routers } = await openRouters(url, 1, { pendingMax: 1 });
      const a = routers[0]!;
      try {
        const local = target("l-1", "bob");
        a.attach(local);
        for (let seq = 1; seq <= 50; seq++) a.deliver(["bob"], messagePush(seq));
        expect(local.got).toHaveLength(50);
        expect(a.stats().dropped).toBe(49);
      } finally {
        await a.close();
      }
    });

    it("ignores a malformed envelope on its channel and keeps delivering", async () => {
      const { logger, lines } = capturingLogger();
      const { routers, keyPrefix } = await openRouters(url, 2, { logger });
      const [a, b] = routers as [RedisDeliveryRouter, RedisDeliveryRouter];
      const publisher = new Redis(url);
      try {
        const bob = target("b-1", "bob");
        b.attach(bob);
        await expect.poll(async () => (await a.lookup(["bob"])).get("bob")).toEqual(["w1"]);
        await publisher.publish(`${keyPrefix}w:w1`, Buffer.from([0, 0, 0, 9, 1, 2]));
        a.deliver(["bob"], messagePush(1));
        await waitFor(() => bob.got.length === 1, "push after garbage");
        expect(lines.some((l) => l.msg === "dropped a malformed push envelope")).toBe(true);
      } finally {
        publisher.disconnect();
        await Promise.all(routers.map((r) => r.close()));
      }
    });
  });

  describe("when Redis goes down and comes back", () => {
    let redis: RedisServer;
    beforeAll(async () => {
      redis = await startRedis();
    });
    afterAll(async () => {
      await redis?.destroy();
    });

    it("delivers locally, drops and counts remote pushes, logs it, then re-registers presence and resumes", async () => {
      const { logger, lines } = capturingLogger();
      const { routers } = await openRouters(redis.url, 2, { logger });
      const [a, b] = routers as [RedisDeliveryRouter, RedisDeliveryRouter];
      try {
        const aliceHere = target("a-1", "alice");
        const bob = target("b-1", "bob");
        a.attach(aliceHere);
        b.attach(bob);
        await expect.poll(async () => (await a.lookup(["bob"])).get("bob")).toEqual(["w1"]);
        a.deliver(["alice", "bob"], messagePush(1));
        await waitFor(() => bob.got.length === 1, "push before the outage");

        await redis.stop();
        await waitFor(() => !a.available && !b.available, "both routers to see Redis down");
        const droppedBefore = a.stats().dropped;
        a.deliver(["alice", "bob"], messagePush(2));
        expect(aliceHere.seqs()).toEqual([1, 2]);
        expect(a.stats().dropped).toBe(droppedBefore + 1);
        expect(lines.filter((l) => l.level === 40 && l.msg.startsWith("redis unavailable")).length).toBeGreaterThanOrEqual(1);

        // A restarted Redis is empty: the routers must put their presence back on their own.
        await redis.restart();
        await waitFor(() => a.available && b.available, `both routers to reconnect (redis log: ${redisLogTail(redis.dir)})`, 15_000);
        await expect.poll(async () => (await a.lookup(["bob"])).get("bob"), { timeout: 5000 }).toEqual(["w1"]);
        a.deliver(["bob"], messagePush(3));
        await waitFor(() => bob.seqs().includes(3), "push after the outage");
        expect(bob.seqs()).toEqual([1, 3]);
        expect(lines.some((l) => l.level === 30 && l.msg.startsWith("redis available again"))).toBe(true);
      } finally {
        await Promise.all(routers.map((r) => r.close()));
      }
    });

    it("starts degraded when Redis is down at start, then subscribes, registers and delivers once it is up", async () => {
      await redis.stop();
      const { logger, lines } = capturingLogger();
      const { routers } = await openRouters(redis.url, 2, { logger, connectWaitMs: 200 });
      const [a, b] = routers as [RedisDeliveryRouter, RedisDeliveryRouter];
      try {
        expect(a.available || b.available).toBe(false);
        expect(lines.some((l) => l.msg.startsWith("redis unavailable"))).toBe(true);
        const bob = target("b-1", "bob");
        b.attach(bob);
        await redis.restart();
        await waitFor(() => a.available && b.available, "reconnect", 15_000);
        await expect.poll(async () => (await a.lookup(["bob"])).get("bob")).toEqual(["w1"]);
        a.deliver(["bob"], messagePush(1));
        await waitFor(() => bob.got.length === 1, "a push through the late subscription");
      } finally {
        await Promise.all(routers.map((r) => r.close()));
      }
    });
  });
});
