import { resolve } from "node:path";
import { configOverrides, isConfigKey, scenarioConfig, SCENARIOS, type ScenarioName, type SimConfig, type Size } from "./scenarios.js";
import { formatJson, formatPerf, formatText, measure } from "./report.js";
import { runSimulation, type SimResult, type SimRun } from "./simulation.js";
import { HelpRequested } from "./sweep.js";
import { callsMain } from "./calls/calls-cli.js";

/** Where the CLI writes: stdout gets the reproducible report, stderr the wall-clock figures. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

const USAGE = `usage: npm run sim -- <${SCENARIOS.join("|")}|calls> [--seed N] [--size full|small] [--json] [--trace <conversation>] [--<config field> <number> ...]
  --seed N        the run's seed (default: a random one, printed)
  --size          full: the issue's sizes (default); small: the sizes of npm test and sweeps
  --json          the report as JSON on stdout
  --trace ID      trace conversation ID (otherwise a violation replays the seed with its conversation traced)
  --<field> N     override any field of SimConfig (sim/scenarios.ts), e.g. --users 5000 --push-loss 0.1
  --help          this text
  exit code: 0 when every checker passes, 1 on a violation, 2 on a usage mistake`;

/** A parsed command line. */
export interface CliArgs {
  readonly scenario: ScenarioName;
  readonly seed: number;
  readonly size: Size;
  readonly json: boolean;
  readonly trace: string | undefined;
  readonly overrides: Partial<SimConfig>;
}

function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** Parses the command line; throws an Error with the usage on a mistake. */
export function parseArgs(argv: readonly string[], defaultSeed: () => number): CliArgs {
  if (argv.includes("--help") || argv.includes("-h")) throw new HelpRequested(USAGE);
  const [scenario, ...rest] = argv;
  if (!SCENARIOS.includes(scenario as ScenarioName)) throw new Error(`unknown scenario ${JSON.stringify(scenario ?? "")}\n${USAGE}`);
  let seed: number | undefined;
  let size: Size = "full";
  let json = false;
  let trace: string | undefined;
  const overrides: Partial<Record<keyof SimConfig, number>> = {};
  for (let i = 0; i < rest.length; i++) {
    const flag = rest[i]!;
    if (flag === "--json") {
      json = true;
      continue;
    }
    const value = rest[++i];
    if (!flag.startsWith("--") || value === undefined) throw new Error(`expected --flag value, got ${JSON.stringify(flag)}\n${USAGE}`);
    const key = camel(flag.slice(2));
    if (key === "seed") seed = parseNumber(flag, value);
    else if (key === "size") {
      if (value !== "full" && value !== "small") throw new Error(`--size must be full or small\n${USAGE}`);
      size = value;
    } else if (key === "trace") trace = value;
    else if (isConfigKey(key)) overrides[key] = parseNumber(flag, value);
    else throw new Error(`unknown option ${flag}\n${USAGE}`);
  }
  if (seed !== undefined && (!Number.isSafeInteger(seed) || seed < 0 || seed > 0xffff_ffff)) throw new Error("--seed must be an integer in [0, 2^32)");
  return { scenario: scenario as ScenarioName, seed: seed ?? defaultSeed(), size, json, trace, overrides: overrides as Partial<SimConfig> };
}

function parseNumber(flag: string, value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n)) throw new Error(`${flag} must be a number, got ${JSON.stringify(value)}`);
  return n;
}

/**
 * Runs one simulation and, after a violation, replays the seed up to the violation with its
 * conversation traced. The result (with the trace) is a function of the arguments.
 */
export async function simulate(args: CliArgs): Promise<SimResult> {
  const config = scenarioConfig(args.scenario, args.size, args.overrides);
  const run: SimRun = { scenario: args.scenario, size: args.size, seed: args.seed, config, traceConversationId: args.trace };
  const result = await runSimulation(run);
  const first = result.first;
  if (args.trace !== undefined || first === undefined || first.conversationId === "") return result;
  const replay = await runSimulation({ ...run, traceConversationId: first.conversationId, stopAtEvent: first.event });
  return { ...result, trace: replay.trace };
}

/** The CLI; returns the exit code (0: no violation, 1: violations, 2: usage). */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  // The calls scenario has its own simulation and settings (sim/calls/).
  if (argv[0] === "calls") return callsMain(argv.slice(1), io, () => Math.floor(Math.random() * 0x1_0000_0000));
  let args: CliArgs;
  try {
    args = parseArgs(argv, () => Math.floor(Math.random() * 0x1_0000_0000));
  } catch (error) {
    if (error instanceof HelpRequested) {
      io.out(`${error.message}\n`);
      return 0;
    }
    io.err(`${(error as Error).message}\n`);
    return 2;
  }
  const { result, perf } = await measure(() => simulate(args));
  const overrides = configOverrides(args.scenario, args.size, scenarioConfig(args.scenario, args.size, args.overrides));
  if (args.json) {
    io.out(formatJson(result, overrides));
    io.err(`${JSON.stringify({ perf })}\n`);
  } else {
    io.out(formatText(result, overrides));
    io.err(formatPerf(perf));
  }
  return result.ok ? 0 : 1;
}

if (process.argv[1] !== undefined && import.meta.filename === resolve(process.argv[1])) {
  const code = await main(process.argv.slice(2), { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) });
  process.exitCode = code;
}
