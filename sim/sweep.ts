import { fork } from "node:child_process";
import { resolve } from "node:path";
import { isConfigKey, scenarioConfig, SCENARIOS, type ScenarioName, type SimConfig, type Size } from "./scenarios.js";
import { reproduceCommand } from "./report.js";
import { runSimulation } from "./simulation.js";
import type { Violation } from "./checkers.js";

export const SWEEP_USAGE = `usage: npm run sim:sweep -- [--seeds N] [--start S] [--scenario ${SCENARIOS.join("|")}|all] [--size small|full] [--jobs J] [--max-minutes M] [--<config field> <number> ...]
  runs seeds S..S+N-1 (default 1..100) of the scenario (default chaos; all: the scenarios in turn)
  at the given size (default small), in J processes (default 1), for at most M minutes (default 60);
  prints each failing seed with the command that reproduces it, exits 1 when any seed failed
  --<field> N     override any field of SimConfig (sim/scenarios.ts) in every seed, e.g. --push-loss 0.1
  --help          this text`;

/** Thrown by the parsers for --help: its message is the usage, for stdout with exit code 0. */
export class HelpRequested extends Error {}

/** A sweep's settings. */
export interface SweepArgs {
  readonly seeds: number;
  readonly start: number;
  readonly scenario: ScenarioName | "all";
  readonly size: Size;
  readonly jobs: number;
  readonly maxMinutes: number;
  readonly overrides: Partial<SimConfig>;
}

/** One seed's outcome. */
export interface SeedOutcome {
  readonly scenario: ScenarioName;
  readonly seed: number;
  readonly ok: boolean;
  readonly events: number;
  readonly first: Violation | undefined;
}

/** Parses the sweep's command line; throws with the usage on a mistake. */
export function parseSweepArgs(argv: readonly string[]): SweepArgs & { readonly worker: string | undefined } {
  if (argv.includes("--help") || argv.includes("-h")) throw new HelpRequested(SWEEP_USAGE);
  const out = { seeds: 100, start: 1, scenario: "chaos" as ScenarioName | "all", size: "small" as Size, jobs: 1, maxMinutes: 60, worker: undefined as string | undefined };
  const overrides: Partial<Record<keyof SimConfig, number>> = {};
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i]!;
    const value = argv[i + 1];
    if (!flag.startsWith("--") || value === undefined) throw new Error(`expected --flag value, got ${JSON.stringify(flag)}\n${SWEEP_USAGE}`);
    const key = flag.slice(2).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    const n = Number(value);
    if (key === "scenario") {
      if (value !== "all" && !SCENARIOS.includes(value as ScenarioName)) throw new Error(`unknown scenario ${value}\n${SWEEP_USAGE}`);
      out.scenario = value as ScenarioName | "all";
    } else if (key === "size") {
      if (value !== "small" && value !== "full") throw new Error(`--size must be small or full\n${SWEEP_USAGE}`);
      out.size = value;
    } else if (key === "worker") out.worker = value;
    else if (!Number.isFinite(n)) throw new Error(`${flag} must be a number\n${SWEEP_USAGE}`);
    else if (key === "seeds" || key === "start" || key === "jobs" || key === "maxMinutes") out[key] = n;
    else if (isConfigKey(key)) overrides[key] = n;
    else throw new Error(`unknown option ${flag}\n${SWEEP_USAGE}`);
  }
  if (out.seeds < 1 || out.jobs < 1 || out.jobs > 16) throw new Error(`--seeds must be >= 1 and --jobs in 1..16\n${SWEEP_USAGE}`);
  return { ...out, overrides: overrides as Partial<SimConfig> };
}

function scenarioOf(args: SweepArgs, seed: number): ScenarioName {
  return args.scenario === "all" ? SCENARIOS[seed % SCENARIOS.length]! : args.scenario;
}

/** Runs the seeds ≡ part (mod parts) in this process, reporting each outcome; stops at the deadline. */
export async function sweepPart(args: SweepArgs, part: number, parts: number, deadlineMs: number, report: (o: SeedOutcome) => void): Promise<void> {
  for (let seed = args.start + part; seed < args.start + args.seeds; seed += parts) {
    if (Date.now() > deadlineMs) return;
    const scenario = scenarioOf(args, seed);
    const config = scenarioConfig(scenario, args.size, args.overrides);
    const result = await runSimulation({ scenario, size: args.size, seed, config });
    report({ scenario, seed, ok: result.ok, events: result.events, first: result.first });
  }
}

/** Runs a sweep (in `jobs` child processes when more than one); returns the outcomes in seed order. */
export async function sweep(args: SweepArgs, progress: (done: number, failed: number) => void): Promise<SeedOutcome[]> {
  const deadlineMs = Date.now() + args.maxMinutes * 60_000;
  const outcomes: SeedOutcome[] = [];
  let failed = 0;
  const collect = (o: SeedOutcome): void => {
    outcomes.push(o);
    if (!o.ok) failed++;
    progress(outcomes.length, failed);
  };
  if (args.jobs === 1) {
    await sweepPart(args, 0, 1, deadlineMs, collect);
  } else {
    const forward = process.argv.slice(2).filter((_, i, all) => all[i] !== "--jobs" && all[i - 1] !== "--jobs");
    await Promise.all(
      Array.from({ length: args.jobs }, (_, part) => {
        const child = fork(import.meta.filename, [...forward, "--worker", `${part}/${args.jobs}/${deadlineMs}`], { execArgv: process.execArgv, stdio: ["ignore", "inherit", "inherit", "ipc"] });
        child.on("message", (o: SeedOutcome) => collect(o));
        return new Promise<void>((done, fail) => child.on("exit", (code) => (code === 0 ? done() : fail(new Error(`sweep worker ${part} exited with ${code}`)))));
      }),
    );
  }
  return outcomes.sort((a, b) => a.seed - b.seed);
}

/** The sweep's report: counts, failures per checker, and how to reproduce each failing seed. */
export function formatSweep(args: SweepArgs, outcomes: readonly SeedOutcome[]): string {
  const failures = outcomes.filter((o) => !o.ok);
  const byChecker = new Map<string, number>();
  for (const f of failures) byChecker.set(f.first!.checker, (byChecker.get(f.first!.checker) ?? 0) + 1);
  const lines = [`sweep: ${outcomes.length} of ${args.seeds} seeds run (${args.scenario}, ${args.size}), ${failures.length} failed`];
  if (outcomes.length < args.seeds) lines.push(`stopped at the ${args.maxMinutes}-minute budget`);
  for (const [checker, n] of byChecker) lines.push(`  ${checker}: ${n} seeds`);
  for (const f of failures) {
    const v = f.first!;
    lines.push(`  seed ${f.seed} ${f.scenario}: ${v.checker} in ${v.conversationId || "-"} (${v.device || "-"}) at ${v.atMs} ms: ${v.detail}`);
    lines.push(`    ${reproduceCommand({ scenario: f.scenario, seed: f.seed, size: args.size }, args.overrides)}`);
  }
  return lines.join("\n") + "\n";
}

if (process.argv[1] !== undefined && import.meta.filename === resolve(process.argv[1])) {
  let args: ReturnType<typeof parseSweepArgs>;
  try {
    args = parseSweepArgs(process.argv.slice(2));
  } catch (error) {
    if (error instanceof HelpRequested) {
      process.stdout.write(`${error.message}\n`);
      process.exit(0);
    }
    process.stderr.write(`${(error as Error).message}\n`);
    process.exit(2);
  }
  if (args.worker !== undefined) {
    const [part, parts, deadline] = args.worker.split("/").map(Number) as [number, number, number];
    await sweepPart(args, part, parts, deadline, (o) => process.send!(o));
  } else {
    const started = Date.now();
    const outcomes = await sweep(args, (done, failed) => {
      if (done % 50 === 0) process.stderr.write(`${done} seeds, ${failed} failed, ${Math.round((Date.now() - started) / 1000)} s\n`);
    });
    process.stdout.write(formatSweep(args, outcomes));
    process.exitCode = outcomes.some((o) => !o.ok) ? 1 : 0;
  }
}
