import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { formatSweep, HelpRequested, parseSweepArgs, sweep, SWEEP_USAGE } from "../../sim/sweep.js";

describe("sim sweep", () => {
  it("runs the seeds in turn and reports each failing one with the command that reproduces it", async () => {
    const args = { ...parseSweepArgs(["--seeds", "3", "--start", "4", "--users", "40", "--bug-redeliver-seen", "1"]), worker: undefined };
    const progress: number[] = [];
    const outcomes = await sweep(args, (done) => progress.push(done));
    expect(outcomes.map((o) => o.seed)).toEqual([4, 5, 6]);
    expect(progress).toEqual([1, 2, 3]);
    const failed = outcomes.filter((o) => !o.ok);
    expect(failed.length).toBeGreaterThan(0);
    const report = formatSweep(args, outcomes);
    expect(report).toContain(`${failed.length} failed`);
    expect(report).toContain(`npm run sim -- chaos --seed ${failed[0]!.seed} --size small --users 40 --bugRedeliverSeen 1`);
  });

  it("passes clean seeds and rotates scenarios with --scenario all", async () => {
    const args = { ...parseSweepArgs(["--seeds", "2", "--scenario", "all", "--users", "60"]), worker: undefined };
    const outcomes = await sweep(args, () => {});
    expect(outcomes.map((o) => [o.seed, o.scenario, o.ok])).toEqual([
      [1, "group-fanout", true],
      [2, "offline-sync", true],
    ]);
    expect(formatSweep(args, outcomes)).toContain("2 of 2 seeds run (all, small), 0 failed");
  });

  it("--help: the usage on stdout, exit code 0, no seed run", async () => {
    expect(() => parseSweepArgs(["--seeds", "3", "--help"])).toThrow(HelpRequested);
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ["--import", "tsx", "sim/sweep.ts", "--help"], { cwd: process.cwd() });
    expect(stdout).toBe(`${SWEEP_USAGE}\n`);
    expect(stdout).toContain("--seeds N");
    expect(stderr).toBe("");
  });

  it("refuses unknown options", () => {
    expect(() => parseSweepArgs(["--frobnicate", "1"])).toThrow(/unknown option/);
  });
});
