import { CALL_CHECKERS } from "./call-checkers.js";
import { callsConfig, callsOverrides, isCallsConfigKey, type CallsConfig, type CallsSize } from "./calls-config.js";
import { runCallsSimulation, type CallsResult } from "./calls-simulation.js";

/** Where the CLI writes: stdout gets the reproducible report, stderr the wall-clock figures. */
export interface CallsCliIo {
  out(text: string): void;
  err(text: string): void;
}

const USAGE = `usage: npm run sim -- calls [--seed N] [--size full|small] [--json] [--<config field> <number> ...]
  --seed N        the run's seed (default: a random one, printed)
  --size          full (default) or small (the size of npm test)
  --json          the report as JSON on stdout
  --<field> N     override any field of CallsConfig (sim/calls/calls-config.ts), e.g. --workers 2 --push-loss 0.2`;

/** A parsed `calls` command line. */
export interface CallsArgs {
  readonly seed: number;
  readonly size: CallsSize;
  readonly json: boolean;
  readonly overrides: Partial<CallsConfig>;
}

/** Parses the arguments after `calls`; throws an Error with the usage on a mistake. */
export function parseCallsArgs(argv: readonly string[], defaultSeed: () => number): CallsArgs {
  let seed: number | undefined;
  let size: CallsSize = "full";
  let json = false;
  const overrides: Partial<Record<keyof CallsConfig, number>> = {};
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === "--json") {
      json = true;
      continue;
    }
    const value = argv[++i];
    if (!flag.startsWith("--") || value === undefined) throw new Error(`expected --flag value, got ${JSON.stringify(flag)}\n${USAGE}`);
    const key = flag.slice(2).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (key === "seed") seed = number(flag, value);
    else if (key === "size") {
      if (value !== "full" && value !== "small") throw new Error(`--size must be full or small\n${USAGE}`);
      size = value;
    } else if (isCallsConfigKey(key)) overrides[key] = number(flag, value);
    else throw new Error(`unknown option ${flag}\n${USAGE}`);
  }
  if (seed !== undefined && (!Number.isSafeInteger(seed) || seed < 0 || seed > 0xffff_ffff)) throw new Error("--seed must be an integer in [0, 2^32)");
  return { seed: seed ?? defaultSeed(), size, json, overrides: overrides as Partial<CallsConfig> };
}

function number(flag: string, value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n)) throw new Error(`${flag} must be a number, got ${JSON.stringify(value)}`);
  return n;
}

function table(rows: readonly (readonly [string, string])[]): string {
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`).join("\n");
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** The command line that reproduces a run. */
export function callsReproduce(result: Pick<CallsResult, "seed" | "size">, overrides: Partial<CallsConfig>): string {
  const extra = Object.entries(overrides).map(([k, v]) => ` --${k} ${String(v)}`).join("");
  return `npm run sim -- calls --seed ${result.seed} --size ${result.size}${extra}`;
}

/** The human report (deterministic: only seed-determined figures). */
export function formatCallsText(result: CallsResult, overrides: Partial<CallsConfig>): string {
  const s = result.stats;
  const v = result.verdict;
  const lines: string[] = [];
  lines.push(`microchat simulator: scenario calls (${result.size}), seed ${result.seed}`);
  lines.push(`reproduce: ${callsReproduce(result, overrides)}`);
  lines.push("");
  const converged = s.convergedAfterMs >= 0 ? `converged ${seconds(s.convergedAfterMs)} after` : "never converged";
  const reasons = Object.entries(v.endReasons).sort(([a], [b]) => a.localeCompare(b)).map(([k, n]) => `${k} ${n}`).join(", ");
  lines.push(
    table([
      ["events", String(result.events)],
      ["virtual time", `${seconds(result.virtualMs)} (faults healed at ${seconds(result.healAtMs)}, ${converged})`],
      ["calls", `${result.calls} created; ended: ${reasons || "none"}`],
      ["starts", `${s.starts} made, ${s.startsSkipped} skipped (offline or in a call), ${s.startRetries} retried, ${s.startsDuplicate} duplicate answers, ${s.startsRefusedInCall} refused (in a call)`],
      ["glare", `${v.glareMerged} pairs ended as one call, ${s.glareAnswers} starts answered the other's call`],
      ["answers", `${s.acceptsOk} accepted, ${s.answeredElsewhere} answered elsewhere, ${s.acceptsRefused} refused, ${s.declines} declines, ${s.cancels} cancels, ${s.hangups} hangups (${s.hangupRetries} sent again)`],
      ["signals", `${s.signals} sent, ${s.renegotiations} renegotiations, ${s.iceRestarts} ICE restarts, ${s.getCalls} GetCalls, ${s.keepalives} keepalives, ${s.requestsFailed} requests failed`],
      ["pushes", `${s.pushes} (${s.pushesLost} lost, ${s.pushesDuplicated} duplicated, ${s.pushesReordered} reordered)`],
      ["connections", `${s.connects} connects, ${s.refused} refused, ${s.drops} dropped, ${s.appCloses} apps closed`],
      ["workers", `${s.kills} kills (${s.killsOnStart} right after a StartCall, ${s.killsOnClaim} holding deadline claims), ${s.claims} deadline claims, ${s.claimsOfDeadCreators} of calls whose worker had died, ${s.claimsTakenOver} taken over from a dead claimer, ${s.deadlineChanges} calls changed by ticks`],
      ["store faults", `${s.backgroundStoreFailures} background / ${s.tickStoreFailures} tick store failures`],
    ]),
  );
  lines.push("");
  lines.push("checkers");
  lines.push(table(CALL_CHECKERS.map((name) => [name, v.reports[name].violations === 0 ? "ok" : `${v.reports[name].violations} violations`])));
  for (const name of CALL_CHECKERS) {
    for (const x of v.reports[name].examples) lines.push(`  - ${name}: call ${x.callId || "-"} device ${x.device || "-"} at ${x.atMs} ms: ${x.detail}`);
  }
  const first = v.first;
  if (first !== undefined) {
    lines.push("");
    lines.push(`VIOLATION seed ${result.seed}: ${first.checker} in call ${first.callId || "-"}, device ${first.device || "-"}, at ${first.atMs} ms`);
    lines.push(`  ${first.detail}`);
    if (result.trace.length > 0) {
      lines.push(`trace of call ${first.callId} (last ${result.trace.length} events):`);
      for (const line of result.trace) lines.push(`  ${line}`);
    }
  }
  lines.push("");
  lines.push(result.ok ? "OK" : "FAILED");
  return lines.join("\n") + "\n";
}

/** `npm run sim -- calls ...`; returns the exit code (0: no violation, 1: violations, 2: usage). */
export async function callsMain(argv: readonly string[], io: CallsCliIo, defaultSeed: () => number): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    io.out(`${USAGE}\n`);
    return 0;
  }
  let args: CallsArgs;
  let config: CallsConfig;
  try {
    args = parseCallsArgs(argv, defaultSeed);
    config = callsConfig(args.size, args.overrides);
  } catch (error) {
    io.err(`${(error as Error).message}\n`);
    return 2;
  }
  const started = performance.now();
  const { result } = await runCallsSimulation({ size: args.size, seed: args.seed, config });
  const wallMs = performance.now() - started;
  const overrides = callsOverrides(args.size, config);
  if (args.json) io.out(`${JSON.stringify({ ...result, overrides, reproduce: callsReproduce(result, overrides) }, null, 2)}\n`);
  else io.out(formatCallsText(result, overrides));
  const rssMb = Math.round(process.resourceUsage().maxRSS / 1024);
  io.err(`${table([["wall time", seconds(wallMs)], ["events/s", String(Math.round(result.events / Math.max(wallMs / 1000, 1e-9)))], ["max RSS", `${rssMb} MB`]])}\n`);
  return result.ok ? 0 : 1;
}
