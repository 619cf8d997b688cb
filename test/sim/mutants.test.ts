import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { applyMutant, formatMutants, MUTANTS, runMutant, type Mutant } from "../../sim/mutants.js";

describe("sim mutants", () => {
  it.each(MUTANTS.map((m) => [m.name, m] as const))("%s: its edit applies exactly once to today's source and changes it", (_name, mutant) => {
    const source = readFileSync(mutant.file, "utf8");
    const mutated = applyMutant(mutant, source);
    expect(mutated).not.toBe(source);
    expect(mutated).toContain(mutant.replace);
  });

  it("names are unique", () => {
    expect(new Set(MUTANTS.map((m) => m.name)).size).toBe(MUTANTS.length);
  });

  it("refuses an edit whose text is missing or ambiguous", () => {
    const base: Mutant = { name: "x", bug: "", file: "f.ts", find: "a;", replace: "b;", scenarios: ["chaos"] };
    expect(() => applyMutant(base, "c;")).toThrow(/is not in f.ts/);
    expect(() => applyMutant(base, "a; a;")).toThrow(/more than once/);
  });

  it("runs a mutant in a copy of the tree: the sweep fails with the checker that caught it, and the tree itself is untouched", async () => {
    const mutant = MUTANTS.find((m) => m.name === "core-fetch-without-membership")!;
    const before = readFileSync(mutant.file, "utf8");
    const outcome = await runMutant(mutant, 1);
    expect(outcome).toMatchObject({ caught: true, seeds: 1, failed: 1, checkers: { access: 1 } });
    expect(readFileSync(mutant.file, "utf8")).toBe(before);
    expect(formatMutants([outcome])).toContain("caught 1 of 1 mutants");
  });

  it("runs at least a mutant's seedsMin seeds, whatever --seeds asks for", async () => {
    const harmless: Mutant = { name: "harmless", bug: "a comment", file: "server/core/messaging.ts", find: "/** Messages of one conversation in (afterSeq, upToSeq], for gap repair and history. */", replace: "/** Messages in (afterSeq, upToSeq]. */", scenarios: ["chaos"], seedsMin: 2 };
    expect(await runMutant(harmless, 1)).toMatchObject({ caught: false, seeds: 2, failed: 0 });
  });

  it("an edit that changes nothing a checker sees is not caught (the runner reports a clean sweep as such)", async () => {
    const harmless: Mutant = { name: "harmless", bug: "a comment", file: "server/core/messaging.ts", find: "/** Messages of one conversation in (afterSeq, upToSeq], for gap repair and history. */", replace: "/** Messages in (afterSeq, upToSeq]. */", scenarios: ["chaos"] };
    const outcome = await runMutant(harmless, 1);
    expect(outcome).toMatchObject({ caught: false, failed: 0, checkers: {} });
    expect(formatMutants([outcome])).toContain("not caught");
  });
});
