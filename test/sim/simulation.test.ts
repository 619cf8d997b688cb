import { describe, expect, it } from "vitest";
import { scenarioConfig, SCENARIOS, type ScenarioName, type SimConfig } from "../../sim/scenarios.js";
import { runSimulation, type SimResult } from "../../sim/simulation.js";
import { formatJson, formatText } from "../../sim/report.js";

/** The fixed seeds `npm test` runs per scenario, at the small size. */
const SEEDS = [1, 2];

function run(scenario: ScenarioName, seed: number, overrides: Partial<SimConfig> = {}): Promise<SimResult> {
  return runSimulation({ scenario, size: "small", seed, config: scenarioConfig(scenario, "small", overrides) });
}

/** The violations of a result, readable in a failed assertion. */
function violations(result: SimResult): string[] {
  return Object.values(result.checkers).flatMap((r) => r.examples.map((v) => `${v.checker} ${v.conversationId} ${v.device}: ${v.detail}`));
}

describe("runSimulation()", () => {
  describe.each(SCENARIOS)("%s, small", (scenario) => {
    it.each(SEEDS)("seed %i: no checker fires and every device converges with the server after the heal", async (seed) => {
      const result = await run(scenario, seed);
      expect(violations(result)).toEqual([]);
      expect(result.ok).toBe(true);
      const s = result.stats;
      expect(s.convergedAfterMs).toBeGreaterThanOrEqual(0);
      expect(s.convergedAfterMs).toBeLessThanOrEqual(scenarioConfig(scenario, "small").livenessBoundMs);
      expect(s.deliveries).toBeGreaterThan(0);
      expect(s.acked + s.sendsRejected + s.sendsFailed).toBe(s.appSends);
      expect(s.gapsRepaired).toBe(s.gapsFound);
    });
  });

  it("chaos injects every kind of fault (over two seeds: one seed may draw no slow consumer)", async () => {
    const [a, b] = [(await run("chaos", 1)).stats, (await run("chaos", 2)).stats];
    const s = Object.fromEntries(Object.entries(a).map(([k, v]) => [k, typeof v === "number" ? v + Number((b as unknown as Record<string, number>)[k] ?? 0) : v])) as typeof a;
    for (const counter of [s.publicationsLost, s.publicationsDuplicated, s.publicationsReordered, s.publicationsCut, s.drops, s.refused, s.storms, s.partitions, s.crashes, s.storeTimeoutsAfterWrite, s.storeFailuresBeforeWrite, s.storeReadFailures, s.storeCutFailures, s.slowConsumerDisconnects, s.gapsFound, s.resends, s.tokenExpiries, s.shutdownDisconnects, s.drains, s.adversaryRefused]) {
      expect(counter).toBeGreaterThan(0);
    }
  });

  it("reproduces a seed exactly: the same report, byte for byte; another seed runs differently", async () => {
    const first = await run("chaos", 11);
    const again = await run("chaos", 11);
    expect(formatText(again, {})).toBe(formatText(first, {}));
    expect(formatJson(again, {})).toBe(formatJson(first, {}));
    const other = await run("chaos", 12);
    expect(formatJson(other, {})).not.toBe(formatJson(first, {}));
  });

  describe("the checkers bite: a deliberate bug is reported by the right checker", () => {
    it.each([
      ["the engine skips gap repair", "chaos", { bugSkipGapRepair: 1 }, "order", "skipped or reordered"],
      ["the engine delivers a message again when it arrives again", "chaos", { bugRedeliverSeen: 1 }, "duplicate", "again"],
      ["the store loses a write after acknowledging it", "chaos", { bugLoseAckedWrite: 0.02 }, "loss", "is not in the log"],
      ["the client retries a send under a new clientMsgId", "chaos", { bugFreshIdOnRetry: 1 }, "duplicate", "stored twice"],
      ["the gateways run without conversation owners", "group-fanout", { bugNoOwners: 1 }, "pushOrder", "was pushed seq"],
      ["the gateways never push a message to its sender's other devices", "group-fanout", { bugNoPushToSender: 1 }, "pushMissing", "was never pushed"],
      ["the store's readRange starts at the cursor", "chaos", { bugReadFromCursor: 1 }, "answers", "where the log has"],
      ["the client fetches one message at a time", "chaos", { bugFetchOneAtATime: 1 }, "fetches", "fetches (bound"],
      ["the client loses its fetch answers", "chaos", { bugDropFetchAnswers: 1 }, "stuck", "reported stuck"],
      ["the store says everyone is a member", "chaos", { bugEveryoneIsMember: 1 }, "access", "instead of refused"],
      ["the client's full reorder buffer forgets pushes and fetches nothing for them", "group-fanout", { bugOverflowForgets: 1, pendingMax: 1 }, "shown", "its push reached the live link"],
      ["the client fetches the rest of a paged range one reorder window late", "chaos", { bugDelayPagedRest: 1 }, "pagedRest", "no fetch of the rest left at once"],
    ] as const)("%s: %s", async (_name, scenario, bug, checker, detail) => {
      const result = await run(scenario, 1, bug);
      expect(result.ok).toBe(false);
      expect(result.first?.checker).toBe(checker);
      expect(result.first?.detail).toContain(detail);
      expect(result.first?.conversationId).not.toBe("");
      expect(result.checkers.invariant.violations).toBe(0);
    });
  });

  it("pagedRest: the production client fetches the rest of every paged range at once (and the checker had answers to judge)", async () => {
    for (const seed of SEEDS) {
      const result = await run("chaos", seed);
      expect(result.checkers.pagedRest.violations).toBe(0);
      expect(result.stats.pagedRestOwed).toBeGreaterThan(50);
    }
  });

  it("turns the push checkers on only where the faults keep every push and its order", async () => {
    const fanout = await run("group-fanout", 1);
    expect([fanout.checkers.pushOrder.on, fanout.checkers.pushMissing.on]).toEqual([true, true]);
    expect(fanout.stats.fetches).toBe(0);
    const chaos = await run("chaos", 1);
    expect([chaos.checkers.pushOrder.on, chaos.checkers.pushMissing.on]).toEqual([false, false]);
    const lossy = await run("group-fanout", 1, { pushLoss: 0.01 });
    expect([lossy.checkers.pushOrder.on, lossy.checkers.pushMissing.on]).toEqual([true, false]);
    expect(lossy.ok).toBe(true);
  });
});
