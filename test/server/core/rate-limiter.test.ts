import { describe, expect, it } from "vitest";
import type { Clock } from "../../../server/core/clock.js";
import { RateLimiter } from "../../../server/core/rate-limiter.js";
import { RateLimits, DEFAULT_RATE_LIMITS } from "../../../server/core/rate-limits.js";

function manualClock(start = 1_000_000): Clock & { advance(ms: number): void } {
  let now = start;
  return { nowMs: () => now, advance: (ms) => void (now += ms) };
}

const rate = { perS: 10, burst: 20 };

describe("RateLimiter", () => {
  it("allows a burst, then refuses with the exact wait until the next token", () => {
    const clock = manualClock();
    const limiter = new RateLimiter({ clock });
    for (let i = 0; i < 20; i++) expect(limiter.take([{ key: "k", rate, cost: 1 }])).toEqual({ ok: true });
    expect(limiter.take([{ key: "k", rate, cost: 1 }])).toEqual({ ok: false, key: "k", retryAfterMs: 100 });
    clock.advance(99);
    expect(limiter.take([{ key: "k", rate, cost: 1 }]).ok).toBe(false);
    clock.advance(1);
    expect(limiter.take([{ key: "k", rate, cost: 1 }]).ok).toBe(true);
  });

  it("refills at the rate, never above the burst", () => {
    const clock = manualClock();
    const limiter = new RateLimiter({ clock });
    expect(limiter.take([{ key: "k", rate, cost: 20 }]).ok).toBe(true);
    clock.advance(60_000);
    expect(limiter.take([{ key: "k", rate, cost: 20 }]).ok).toBe(true);
    expect(limiter.take([{ key: "k", rate, cost: 1 }])).toEqual({ ok: false, key: "k", retryAfterMs: 100 });
  });

  it("draws from every bucket or from none, and reports the longest wait", () => {
    const clock = manualClock();
    const limiter = new RateLimiter({ clock });
    const slow = { perS: 1, burst: 1 };
    expect(limiter.take([{ key: "a", rate, cost: 1 }, { key: "b", rate: slow, cost: 1 }]).ok).toBe(true);
    expect(limiter.take([{ key: "a", rate, cost: 5 }, { key: "b", rate: slow, cost: 1 }])).toEqual({ ok: false, key: "b", retryAfterMs: 1000 });
    // Nothing was drawn from "a" by the refused request: 19 tokens left.
    expect(limiter.take([{ key: "a", rate, cost: 19 }]).ok).toBe(true);
    expect(limiter.take([{ key: "a", rate, cost: 1 }]).ok).toBe(false);
  });

  it("lets a draw larger than the burst through a full bucket only, and empties it", () => {
    const clock = manualClock();
    const limiter = new RateLimiter({ clock });
    expect(limiter.take([{ key: "k", rate, cost: 1 }]).ok).toBe(true);
    expect(limiter.take([{ key: "k", rate, cost: 500 }])).toEqual({ ok: false, key: "k", retryAfterMs: 100 });
    clock.advance(100);
    expect(limiter.take([{ key: "k", rate, cost: 500 }]).ok).toBe(true);
    expect(limiter.take([{ key: "k", rate, cost: 1 }])).toEqual({ ok: false, key: "k", retryAfterMs: 100 });
  });

  it("forgets buckets that have refilled, so idle keys cost no memory", () => {
    const clock = manualClock();
    const limiter = new RateLimiter({ clock });
    for (let i = 0; i < 1000; i++) limiter.take([{ key: `conn-${i}`, rate, cost: 1 }]);
    expect(limiter.size).toBe(1000);
    clock.advance(101);
    for (let i = 0; i < 600; i++) limiter.take([{ key: "busy", rate: { perS: 1e9, burst: 1e9 }, cost: 1 }]);
    expect(limiter.size).toBeLessThan(1000 - 1000 / 2);
  });

  it("holds at most bucketsMax buckets", () => {
    const clock = manualClock();
    const limiter = new RateLimiter({ clock, bucketsMax: 100 });
    for (let i = 0; i < 1000; i++) limiter.take([{ key: `k${i}`, rate, cost: 1 }]);
    expect(limiter.size).toBe(100);
  });
});

describe("RateLimits", () => {
  const settings = { ...DEFAULT_RATE_LIMITS, userSendsPerS: 5, connectionSendsPerS: 2, userBytesPerS: 1000, connectionBytesPerS: 0, userGroupsPerMin: 2, burstS: 1 };

  it("limits one connection below its user, and the user over all its connections", () => {
    const limits = new RateLimits(settings, manualClock());
    expect([1, 2, 3].map(() => limits.send("alice", "c1", 10)?.reason)).toEqual([undefined, undefined, "rate_limited"]);
    expect([1, 2, 3].map(() => limits.send("alice", "c2", 10)?.reason)).toEqual([undefined, undefined, "rate_limited"]);
    expect(limits.send("alice", undefined, 10)).toBeUndefined();
    expect(limits.send("alice", undefined, 10)).toMatchObject({ reason: "rate_limited", retryAfterMs: 200, message: "you sent too many messages: retry after 200 ms" });
    expect(limits.send("bob", "c3", 10)).toBeUndefined();
  });

  it("limits body bytes per user", () => {
    const limits = new RateLimits(settings, manualClock());
    expect(limits.send("alice", undefined, 900)).toBeUndefined();
    expect(limits.send("alice", undefined, 200)).toMatchObject({ reason: "rate_limited", retryAfterMs: 100, message: "you sent too many message bytes: retry after 100 ms" });
  });

  it("limits groups created per minute", () => {
    const clock = manualClock();
    const limits = new RateLimits(settings, clock);
    expect([1, 2, 3].map(() => limits.createGroup("alice")?.retryAfterMs)).toEqual([undefined, undefined, 30_000]);
    clock.advance(30_000);
    expect(limits.createGroup("alice")).toBeUndefined();
  });

  it("turns a limit off with 0", () => {
    const limits = new RateLimits({ ...settings, userSendsPerS: 0, connectionSendsPerS: 0, userBytesPerS: 0, userGroupsPerMin: 0 }, manualClock());
    for (let i = 0; i < 100; i++) {
      expect(limits.send("alice", "c1", 1e6)).toBeUndefined();
      expect(limits.createGroup("alice")).toBeUndefined();
    }
    expect(limits.buckets).toBe(0);
  });
});
