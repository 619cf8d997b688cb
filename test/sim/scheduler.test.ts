import { describe, expect, it } from "vitest";
import { Scheduler } from "../../sim/scheduler.js";

describe("Scheduler", () => {
  it("runs events in (time, sequence) order: by time, then in the order they were scheduled", async () => {
    const sched = new Scheduler();
    const seen: string[] = [];
    const log = (name: string): void => {
      seen.push(`${sched.nowMs}:${name}`);
    };
    sched.schedule(20, log, "c");
    sched.schedule(10, log, "a");
    sched.schedule(20, log, "d");
    sched.schedule(10, log, "b");
    sched.schedule(0, log, "now");
    expect(await sched.run({ untilMs: 100, maxEvents: 100 })).toBe("idle");
    expect(seen).toEqual(["0:now", "10:a", "10:b", "20:c", "20:d"]);
    expect(sched.events).toBe(5);
  });

  it("runs an event scheduled for the current time in the same step, after those already waiting", async () => {
    const sched = new Scheduler();
    const seen: string[] = [];
    sched.schedule(5, () => {
      seen.push("first");
      sched.schedule(0, (n: string) => seen.push(n), "spawned");
    }, undefined);
    sched.schedule(5, () => seen.push("second"), undefined);
    sched.schedule(6, () => seen.push("later"), undefined);
    await sched.run({ untilMs: 100, maxEvents: 100 });
    expect(seen).toEqual(["first", "second", "spawned", "later"]);
  });

  it("lets async work started by an event finish before virtual time moves on", async () => {
    const sched = new Scheduler();
    const seen: string[] = [];
    sched.schedule(1, () => {
      sched.touch();
      void (async () => {
        await Promise.resolve();
        await Promise.resolve();
        seen.push(`async at ${sched.nowMs}`);
      })();
    }, undefined);
    sched.schedule(2, () => seen.push(`event at ${sched.nowMs}`), undefined);
    await sched.run({ untilMs: 100, maxEvents: 100 });
    expect(seen).toEqual(["async at 1", "event at 2"]);
  });

  it("resolves delay() after that much virtual time", async () => {
    const sched = new Scheduler();
    const seen: number[] = [];
    sched.schedule(3, () => {
      void sched.delay(7).then(() => seen.push(sched.nowMs));
    }, undefined);
    sched.schedule(9, () => seen.push(-sched.nowMs), undefined);
    await sched.run({ untilMs: 100, maxEvents: 100 });
    expect(seen).toEqual([-9, 10]);
  });

  it("stops at the time bound and at the event budget, keeping what is left", async () => {
    const sched = new Scheduler();
    let count = 0;
    for (let t = 0; t < 10; t++) sched.schedule(t, () => count++, undefined);
    expect(await sched.run({ untilMs: 4, maxEvents: 100 })).toBe("until");
    expect(count).toBe(5);
    expect(await sched.run({ untilMs: 100, maxEvents: 7 })).toBe("max-events");
    expect(count).toBe(7);
    expect(sched.pending()).toBe(3);
    expect(await sched.run({ untilMs: 100, maxEvents: 100, stop: () => count >= 9 })).toBe("stopped");
    expect(count).toBe(9);
  });
});
