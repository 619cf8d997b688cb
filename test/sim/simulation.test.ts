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
    for (const counter of [s.pushesLost, s.pushesDuplicated, s.pushesReordered, s.pushesPartitioned, s.drops, s.refused, s.storms, s.partitions, s.crashes, s.storeTimeoutsAfterWrite, s.storeFailuresBeforeWrite, s.storeReadFailures, s.storeCutFailures, s.slowConsumerDisconnects, s.gapsFound, s.resends]) {
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
      ["the engine skips gap repair", { bugSkipGapRepair: 1 }, "order", "skipped or reordered"],
      ["the engine delivers a message again when it arrives again", { bugRedeliverSeen: 1 }, "duplicate", "again"],
      ["the store loses a write after acknowledging it", { bugLoseAckedWrite: 0.02 }, "loss", "is not in the log"],
      ["the client retries a send under a new clientMsgId", { bugFreshIdOnRetry: 1 }, "duplicate", "stored twice"],
    ] as const)("%s: %s", async (_name, bug, checker, detail) => {
      const result = await run("chaos", 1, bug);
      expect(result.ok).toBe(false);
      expect(result.first?.checker).toBe(checker);
      expect(result.first?.detail).toContain(detail);
      expect(result.first?.conversationId).not.toBe("");
      expect(result.checkers.invariant.violations).toBe(0);
    });
  });
});
