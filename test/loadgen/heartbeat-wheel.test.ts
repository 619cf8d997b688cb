import { afterEach, describe, expect, it } from "vitest";
import { HeartbeatWheel, WHEEL_TICK_MS } from "../../loadgen/heartbeat-wheel.js";

function members(n: number) {
  return Array.from({ length: n }, () => {
    const m = { beats: 0, heartbeat: () => m.beats++ };
    return m;
  });
}

describe("HeartbeatWheel", () => {
  let wheel: HeartbeatWheel<{ heartbeat(): void }> | undefined;
  afterEach(() => wheel?.stop());

  it("beats every member once per interval, spread over it", () => {
    const all = members(50);
    wheel = new HeartbeatWheel(1000);
    for (const m of all) wheel.add(m);
    wheel.turn(WHEEL_TICK_MS);
    // 50 members per 1000 ms: one per 20 ms turn, not a burst.
    expect(all.reduce((n, m) => n + m.beats, 0)).toBe(1);
    for (let t = WHEEL_TICK_MS; t < 1000; t += WHEEL_TICK_MS) wheel.turn(WHEEL_TICK_MS);
    expect(all.map((m) => m.beats)).toEqual(all.map(() => 1));
    for (let t = 0; t < 1000; t += WHEEL_TICK_MS) wheel.turn(WHEEL_TICK_MS);
    expect(all.map((m) => m.beats)).toEqual(all.map(() => 2));
  });

  it("stops beating a member that left, and does not catch up a stall in one burst", () => {
    const all = members(1000);
    wheel = new HeartbeatWheel(1000);
    for (const m of all) wheel.add(m);
    wheel.delete(all[0]!);
    // A 10 s stall is worth 10,000 beats; the wheel makes up at most a few turns of them.
    wheel.turn(10_000);
    const beaten = all.reduce((n, m) => n + m.beats, 0);
    expect(beaten).toBeLessThanOrEqual(5 * WHEEL_TICK_MS);
    expect(beaten).toBeGreaterThan(0);
    for (let t = 0; t < 2000; t += WHEEL_TICK_MS) wheel.turn(WHEEL_TICK_MS);
    expect(all[0]!.beats).toBe(0);
  });
});
