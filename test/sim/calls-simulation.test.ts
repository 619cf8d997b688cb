import { describe, expect, it } from "vitest";
import { main } from "../../sim/main.js";
import { callsConfig, type CallsConfig } from "../../sim/calls/calls-config.js";
import { formatCallsText } from "../../sim/calls/calls-cli.js";
import { runCallsSimulation, type CallsResult } from "../../sim/calls/calls-simulation.js";

async function run(seed: number, overrides: Partial<CallsConfig> = {}): Promise<CallsResult> {
  return (await runCallsSimulation({ size: "small", seed, config: callsConfig("small", overrides) })).result;
}

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main(argv, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

describe("calls scenario", () => {
  it.each([1, 2, 3])("seed %i: every checker passes under lost pushes, drops, reconnects and killed workers, and the run converges", async (seed) => {
    const r = await run(seed);
    expect(r.verdict.first).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(r.stats.convergedAfterMs).toBeGreaterThanOrEqual(0);
    // The faults and the behaviours the checkers judge did happen.
    expect(r.calls).toBeGreaterThan(30);
    expect(r.stats.acceptsOk).toBeGreaterThan(5);
    expect(r.stats.pushesLost).toBeGreaterThan(0);
    expect(r.stats.drops).toBeGreaterThan(0);
    expect(r.stats.kills).toBeGreaterThan(0);
    expect(r.stats.killsOnStart + r.stats.killsOnClaim).toBeGreaterThan(0);
    // Deadlines of calls whose worker had been killed were fired by another worker's tick.
    expect(r.stats.claimsOfDeadCreators).toBeGreaterThan(0);
    expect(r.verdict.glareMerged).toBeGreaterThan(0);
    expect(Object.keys(r.verdict.endReasons)).toEqual(expect.arrayContaining(["hangup", "busy", "no_answer"]));
  });

  it("two devices of one user race to answer, and one of them is told answered elsewhere", async () => {
    const r = await run(6);
    expect(r.stats.answeredElsewhere).toBeGreaterThan(0);
    expect(r.verdict.reports.answerer.violations).toBe(0);
  });

  it("a worker killed holding deadline claims: another worker fires them once the claim lease ran out", async () => {
    const r = await run(3);
    expect(r.stats.killsOnClaim).toBeGreaterThan(0);
    expect(r.stats.claimsTakenOver).toBeGreaterThan(0);
    expect(r.ok).toBe(true);
  });

  it("is deterministic: the same seed gives the same report", async () => {
    const a = formatCallsText(await run(5), {});
    const b = formatCallsText(await run(5), {});
    expect(a).toBe(b);
    expect(a).toContain("scenario calls (small), seed 5");
  });

  // Regressions: the checkers found these in the SDK's call engine (client/call-engine.ts).
  it("a lost ended push is repaired by the engine's stale check (seed 3 without it: a device shows the call for good)", async () => {
    expect((await run(3)).ok).toBe(true);
    const without = await run(3, { staleCheckMs: 1e9 });
    expect(without.verdict.reports.convergence.violations).toBeGreaterThan(0);
  });

  it("a lost hangup is sent again and the call stops being kept alive (seed 6 without leave(): the call never ends)", async () => {
    expect((await run(6)).ok).toBe(true);
    const without = await run(6, { bugHangupWithoutLeave: 1 });
    expect(without.verdict.reports["ended-once"].examples[0]?.detail).toMatch(/^never ended/);
  });
});

describe("sim CLI: calls", () => {
  it("prints the report with the seed and the reproduce line, exits 0; stdout is the same for the same seed", async () => {
    const first = await cli(["calls", "--seed", "2", "--size", "small"]);
    expect(first.code).toBe(0);
    expect(first.out).toContain("scenario calls (small), seed 2");
    expect(first.out).toContain("reproduce: npm run sim -- calls --seed 2 --size small\n");
    expect(first.out).toMatch(/glare +\d+ pairs ended as one call/);
    expect(first.out.trimEnd().endsWith("OK")).toBe(true);
    expect(first.err).toContain("events/s");
    expect((await cli(["calls", "--seed", "2", "--size", "small"])).out).toBe(first.out);
  });

  it("exits 1 naming the seed and the checker on a violation, with the override in the reproduce line", async () => {
    const { code, out } = await cli(["calls", "--seed", "3", "--size", "small", "--stale-check-ms", "1000000000"]);
    expect(code).toBe(1);
    expect(out).toMatch(/VIOLATION seed 3: convergence in call \S+, device u\d+\/d\d#\d+/);
    expect(out).toContain("--staleCheckMs 1000000000");
    // The call's story: its store writes and what its devices were told.
    const callId = /VIOLATION seed 3: convergence in call (\S+),/.exec(out)![1]!;
    expect(out).toContain(`trace of call ${callId}`);
    expect(out).toMatch(/ms {2}store create v1 ringing/);
    expect(out).toMatch(/ms {2}u\d+\/d\d#\d+ told incoming/);
    expect(out.trimEnd().endsWith("FAILED")).toBe(true);
  });

  it("writes JSON with --json and refuses unknown options with exit code 2", async () => {
    const { code, out } = await cli(["calls", "--seed", "3", "--size", "small", "--json", "--calls", "20"]);
    expect(code).toBe(0);
    expect(JSON.parse(out)).toMatchObject({ scenario: "calls", seed: 3, ok: true, overrides: { calls: 20 } });
    const help = await cli(["calls", "--help"]);
    expect(help).toMatchObject({ code: 0, out: expect.stringContaining("usage: npm run sim -- calls") });
    const bad = await cli(["calls", "--colour", "1"]);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("unknown option --colour");
  });
});
