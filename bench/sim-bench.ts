/**
 * Simulator benchmark: `npm run bench:sim [-- --scenario million --runs 3 --seed 1 --size full]`
 * (`--sim-flags="--users 200000"`: any sim flags; `--node-flags=""`: the run's Node flags,
 * SIM_NODE_FLAGS by default).
 *
 * Runs one scenario several times, each in a fresh process (`sim/main.ts --json`, so a run's
 * heap and peak RSS are its own), and prints per run: wall time, user CPU, peak RSS, events,
 * the load average before and after, and range fetches per stored message (the simulated
 * clients' gap repairs: `fetches / stored`); then the medians. The seed fixes the run, so
 * every run does the same work and only the machine's load moves the times. Not a test:
 * nothing is asserted. Take figures under `flock /tmp/bench.lock`.
 */
import { spawn } from "node:child_process";
import { cpus, loadavg, totalmem } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { values } = parseArgs({
  options: {
    scenario: { type: "string", default: "million" },
    runs: { type: "string", default: "3" },
    seed: { type: "string", default: "1" },
    size: { type: "string", default: "full" },
    "sim-flags": { type: "string", default: "" },
    "node-flags": { type: "string" },
  },
});
/**
 * Node flags of the simulator's process: none by default. (64 MB semi-spaces were tried
 * against V8's default young generation, interleaved at 150,000 users: no difference in wall
 * or CPU time; the collector's share grows with the old generation, the live devices and
 * connections, not with short-lived garbage.)
 */
export const SIM_NODE_FLAGS = "";
const words = (text: string): string[] => text.split(" ").filter((w) => w !== "");
const NODE_FLAGS = words(values["node-flags"] ?? SIM_NODE_FLAGS);
const SIM_FLAGS = words(values["sim-flags"]);
const RUNS = Number(values.runs);
if (!Number.isInteger(RUNS) || RUNS < 1 || RUNS > 20) throw new Error("--runs must be an integer in 1..20");

interface RunFigures {
  readonly wallMs: number;
  readonly userCpuMs: number;
  readonly maxRssMb: number;
  readonly events: number;
  readonly stored: number;
  readonly fetches: number;
  readonly ok: boolean;
  readonly load: readonly [number, number];
}

function runOnce(): Promise<RunFigures> {
  const args = [...NODE_FLAGS, path.join(ROOT, "node_modules/tsx/dist/cli.mjs"), "sim/main.ts", values.scenario, "--seed", values.seed, "--size", values.size, ...SIM_FLAGS, "--json"];
  const loadBefore = loadavg()[0]!;
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.setEncoding("utf8").on("data", (t: string) => (out += t));
  child.stderr.setEncoding("utf8").on("data", (t: string) => (err += t));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("exit", (code) => {
      if (code !== 0 && code !== 1) return reject(new Error(`sim exited with ${code}: ${err}`));
      const report = JSON.parse(out) as { ok: boolean; events: number; stats: { stored: number; fetches: number } };
      const perfLine = err.split("\n").find((l) => l.startsWith('{"perf"'));
      if (perfLine === undefined) return reject(new Error(`no perf line on stderr: ${err}`));
      const perf = (JSON.parse(perfLine) as { perf: { wallMs: number; maxRssMb: number; userCpuMs: number } }).perf;
      resolve({
        wallMs: perf.wallMs,
        userCpuMs: perf.userCpuMs,
        maxRssMb: perf.maxRssMb,
        events: report.events,
        stored: report.stats.stored,
        fetches: report.stats.fetches,
        ok: report.ok,
        load: [loadBefore, loadavg()[0]!],
      });
    });
  });
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

process.stdout.write(`machine: ${cpus().length} cores (${cpus()[0]?.model ?? "?"}), ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.versions.node}\n`);
process.stdout.write(`scenario ${values.scenario} (${values.size})${SIM_FLAGS.length > 0 ? ` ${SIM_FLAGS.join(" ")}` : ""}, seed ${values.seed}, ${RUNS} runs, each in its own process (node ${NODE_FLAGS.join(" ") || "with no flags"})\n`);
const runs: RunFigures[] = [];
for (let i = 0; i < RUNS; i++) {
  const r = await runOnce();
  runs.push(r);
  process.stdout.write(
    `run ${i + 1}: wall ${seconds(r.wallMs)}, user CPU ${seconds(r.userCpuMs)}, peak RSS ${r.maxRssMb} MB, ${r.events} events, ${r.stored} messages stored, ${r.fetches} range fetches (${(r.fetches / Math.max(r.stored, 1)).toFixed(4)} per message), ${r.ok ? "checkers passed" : "VIOLATION"}, load average ${r.load[0].toFixed(2)} -> ${r.load[1].toFixed(2)}\n`,
  );
}
process.stdout.write(
  `median: wall ${seconds(median(runs.map((r) => r.wallMs)))}, user CPU ${seconds(median(runs.map((r) => r.userCpuMs)))}, peak RSS ${median(runs.map((r) => r.maxRssMb))} MB, range fetches per message ${median(runs.map((r) => r.fetches / Math.max(r.stored, 1))).toFixed(4)}\n`,
);
