/**
 * Start-up benchmark: `npm run bench:startup [-- --runs 7 --workers 1,2]`.
 *
 * Compares how long the server takes from process start to listening when it runs through the
 * development transpiler (`tsx server/main.ts`, what `npm start` ran before) and as compiled
 * JavaScript (`node dist/server/main.js`, what it runs now; compiled here into a temporary
 * directory by scripts/build.mjs so the figures never come from a stale dist/). For each
 * worker count, W=1 is one process and W>1 is a primary with W SO_REUSEPORT workers, measured
 * until the primary logs that every worker listens. Runs of the two variants alternate, on a
 * fresh SQLite directory each, and the process is stopped with SIGTERM after each run.
 *
 * Also reports the RSS right after listening, summed over the process tree (the tsx CLI runs
 * the server in a child process; a cluster is its primary and workers). Prints every run and the
 * medians. Not a test: nothing is asserted. Take figures under `flock /tmp/bench.lock`.
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "7" },
    workers: { type: "string", default: "1,2" },
  },
});
const RUNS = Number(values.runs);
const WORKER_COUNTS = values.workers.split(",").map(Number);

interface Variant {
  readonly name: string;
  readonly args: (buildDir: string) => string[];
}

const VARIANTS: readonly Variant[] = [
  { name: "tsx server/main.ts", args: () => [path.join(ROOT, "node_modules/tsx/dist/cli.mjs"), "server/main.ts"] },
  { name: "node dist/server/main.js", args: (buildDir) => [path.join(buildDir, "server/main.js")] },
];

interface Sample {
  readonly ms: number;
  readonly rssKb: number;
}

/** Starts one server, returns the time until it listened and its RSS then, and stops it. */
async function startOnce(args: string[], workers: number): Promise<Sample> {
  const dataDir = mkdtempSync(path.join(tmpdir(), "startup-bench-"));
  const started = process.hrtime.bigint();
  const child = spawn(process.execPath, [...args, "--port", "0", "--workers", String(workers), "--data-dir", dataDir, "--log-level", "info"], {
    cwd: ROOT,
    env: { ...process.env, IM_JWT_SECRET: "startup-bench-secret" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const ready = workers === 1 ? "listening on" : "cluster of";
  try {
    const ms = await new Promise<number>((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => reject(new Error(`no "${ready}" within 60 s:\n${out}`)), 60_000);
      child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
        out += chunk;
        if (out.includes(`"msg":"${ready}`)) {
          clearTimeout(timer);
          resolve(Number(process.hrtime.bigint() - started) / 1e6);
        }
      });
      child.once("exit", (code) => reject(new Error(`exited with ${code} before listening:\n${out}`)));
    });
    return { ms, rssKb: treeRssKb(child.pid!) };
  } finally {
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await exited;
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** RSS of a process and all its descendants (tsx runs the server in a child of its CLI). */
function treeRssKb(pid: number): number {
  let kb = 0;
  try {
    kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const children = readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim();
      for (const child of children === "" ? [] : children.split(" ")) kb += treeRssKb(Number(child));
    }
  } catch {
    // The process ended meanwhile: it holds no memory.
  }
  return kb;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

async function main(): Promise<void> {
  // Inside the project, so the compiled modules resolve its node_modules as dist/ does.
  mkdirSync(path.join(ROOT, "node_modules/.cache"), { recursive: true });
  const buildDir = mkdtempSync(path.join(ROOT, "node_modules/.cache/startup-bench-"));
  try {
    const build = spawn(process.execPath, [path.join(ROOT, "scripts/build.mjs"), "--out-dir", buildDir], { cwd: ROOT, stdio: "inherit" });
    const code = await new Promise((resolve) => build.once("exit", resolve));
    if (code !== 0) throw new Error(`build failed (${code})`);
    const cpu = cpus()[0]?.model ?? "unknown CPU";
    process.stdout.write(`start-up benchmark: ${RUNS} runs per variant; ${cpus().length} x ${cpu}, Node ${process.version}, load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}\n`);
    for (const workers of WORKER_COUNTS) {
      const samples = new Map<string, Sample[]>(VARIANTS.map((v) => [v.name, []]));
      for (let run = 0; run < RUNS; run++) {
        for (const variant of VARIANTS) {
          const sample = await startOnce(variant.args(buildDir), workers);
          samples.get(variant.name)!.push(sample);
          process.stdout.write(`  workers=${workers} run ${run + 1} ${variant.name}: ${sample.ms.toFixed(0)} ms, RSS ${Math.round(sample.rssKb / 1024)} MB\n`);
        }
      }
      process.stdout.write(`workers=${workers} medians (load average now ${loadavg()[0]!.toFixed(2)}):\n`);
      const base = median(samples.get(VARIANTS[0]!.name)!.map((s) => s.ms));
      for (const variant of VARIANTS) {
        const list = samples.get(variant.name)!;
        const ms = median(list.map((s) => s.ms));
        const rss = median(list.map((s) => s.rssKb)) / 1024;
        const range = `${Math.min(...list.map((s) => s.ms)).toFixed(0)}-${Math.max(...list.map((s) => s.ms)).toFixed(0)}`;
        process.stdout.write(`  ${variant.name.padEnd(26)} ${ms.toFixed(0).padStart(6)} ms (${range})  x${(ms / base).toFixed(2)}  RSS ${rss.toFixed(0)} MB\n`);
      }
    }
  } finally {
    rmSync(buildDir, { recursive: true, force: true });
  }
}

await main();
