import { describe, expect, it } from "vitest";
import { scenarioConfig, type ScenarioName, type SimConfig } from "../../sim/scenarios.js";
import { runSimulation, type SimResult } from "../../sim/simulation.js";

function run(scenario: ScenarioName, seed: number, overrides: Partial<SimConfig> = {}): Promise<SimResult> {
  return runSimulation({ scenario, size: "small", seed, config: scenarioConfig(scenario, "small", overrides) });
}

function details(result: SimResult): string[] {
  return Object.values(result.checkers).flatMap((r) => r.examples.map((v) => `${v.checker}: ${v.detail}`));
}

/**
 * Seeds that failed while the simulator was built. Each names what it found; the overrides pin
 * the settings of the run that found it, so preset changes do not quietly retire the seed.
 */
describe("simulator regressions", () => {
  // client/sync-engine.ts fetchResult() wanted lastSeq + 1 after a fetch with hasMore, even
  // when buffered messages had completed the requested range: it asked for a seq beyond the
  // head, the server answered out_of_range, the client dropped the connection, and after
  // every reconnect it asked again (a livelock until someone sent to the conversation).
  it.each([
    [8, { slowPushMs: 500, pushQueueMax: 16 }],
    [3, {}],
  ] as const)("chaos seed %i: a paged fetch completed by buffered messages does not ask past the head", async (seed, overrides) => {
    const result = await run("chaos", seed, overrides);
    expect(details(result)).toEqual([]);
    expect(result.stats.stuck).toBe(0);
  });
});

/**
 * The simulator runs the production client core (client/client-core.ts). These seeds show
 * that behaviours it once lacked, and that only a copy of the client had, are the ones the
 * simulation depends on now.
 */
describe("the production client in the simulator", () => {
  // Tokens that never expire: an expiring one makes the client reconnect and sync, which repairs the tail too.
  it("chaos seed 1, resyncIntervalMs 0: a lost push at the tail of a conversation is never repaired while the connection stays up", async () => {
    const off = await run("chaos", 1, { resyncIntervalMs: 0, tokenTtlMs: 0 });
    expect(off.first?.checker).toBe("liveness");
    expect(details(off).some((d) => /no cursor|cursor seq \d+ read \d+; server seq/.test(d))).toBe(true);
    expect((await run("chaos", 1)).ok).toBe(true);
  });

  it("million seed 1, no faults, no resync: a device's own markRead moves its cursor (the answer moves the engine)", async () => {
    const result = await run("million", 1, { resyncIntervalMs: 0 });
    expect(details(result)).toEqual([]);
    expect(result.stats.markReads).toBeGreaterThan(0);
    expect(result.stats.resyncs).toBe(0);
  });

  it("chaos seed 2: sends that failed retryably on a live connection are retried there until stored", async () => {
    const result = await run("chaos", 2);
    expect(details(result)).toEqual([]);
    expect(result.stats.storeFailuresBeforeWrite + result.stats.storeTimeoutsAfterWrite).toBeGreaterThan(0);
    expect(result.stats.acked).toBe(result.stats.appSends);
  });
});
