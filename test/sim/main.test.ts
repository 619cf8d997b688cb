import { describe, expect, it } from "vitest";
import { main, parseArgs } from "../../sim/main.js";

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main(argv, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

describe("sim CLI", () => {
  it("prints the seed and the reproduce line, exits 0 when every checker passes; stdout is identical for the same seed", async () => {
    const first = await cli(["offline-sync", "--seed", "5", "--size", "small"]);
    expect(first.code).toBe(0);
    expect(first.out).toContain("scenario offline-sync (small), seed 5");
    expect(first.out).toContain("reproduce: npm run sim -- offline-sync --seed 5 --size small\n");
    expect(first.err).toContain("events/s");
    const again = await cli(["offline-sync", "--seed", "5", "--size", "small"]);
    expect(again.out).toBe(first.out);
  });

  it("on a violation: exits 1 and names the seed, the checker, the conversation, and traces it", async () => {
    const { code, out } = await cli(["chaos", "--seed", "1", "--size", "small", "--bug-skip-gap-repair", "1"]);
    expect(code).toBe(1);
    const violation = /VIOLATION seed 1: order in conversation (\S+), device (\S+)/.exec(out);
    expect(violation).not.toBeNull();
    expect(out).toContain(`trace of ${violation![1]} up to the violation`);
    expect(out).toContain("--bugSkipGapRepair 1");
    expect(out.trimEnd().endsWith("FAILED")).toBe(true);
  });

  it("--help: the usage on stdout, exit code 0, nothing run", async () => {
    const { code, out, err } = await cli(["--help"]);
    expect(code).toBe(0);
    expect(out).toMatch(/^usage: npm run sim -- <million\|/);
    expect(out).toContain("--seed N");
    expect(err).toBe("");
    expect((await cli(["chaos", "--help"])).code).toBe(0);
  });

  it("writes JSON with --json", async () => {
    const { code, out } = await cli(["chaos", "--seed", "3", "--size", "small", "--json", "--users", "40"]);
    expect(code).toBe(0);
    const parsed = JSON.parse(out) as { seed: number; ok: boolean; overrides: Record<string, number>; stats: { events?: number; deliveries: number } };
    expect(parsed).toMatchObject({ seed: 3, ok: true, overrides: { users: 40 } });
    expect(parsed.stats.deliveries).toBeGreaterThan(0);
  });

  it.each([
    [["nope"], "unknown scenario"],
    [["chaos", "--colour", "1"], "unknown option --colour"],
    [["chaos", "--users", "many"], "must be a number"],
    [["chaos", "--size", "huge"], "--size must be full or small"],
  ])("refuses %j with exit code 2", async (argv, message) => {
    const { code, err } = await cli(argv);
    expect(code).toBe(2);
    expect(err).toContain(message);
  });

  it("takes config fields in camelCase or kebab-case, and draws a seed when none is given", () => {
    const args = parseArgs(["chaos", "--push-loss", "0.5", "--pushDuplicate", "0.25"], () => 42);
    expect(args).toMatchObject({ scenario: "chaos", seed: 42, size: "full", overrides: { pushLoss: 0.5, pushDuplicate: 0.25 } });
  });
});
