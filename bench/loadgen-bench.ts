/**
 * The load generator's benchmark runs: `flock /tmp/bench.lock npm run bench:loadgen -- <run>
 * [--runs 3] [--max-load 4 --load-wait-s 600]`. Each named run starts its own server (fresh
 * data directory; several workers, or two nodes sharing a Redis started by scripts/redis.sh),
 * runs `npm run loadgen` against it (the exact command is printed), stops it, and repeats;
 * then prints the median (and range) of each headline figure over the runs, with the load
 * average at the start of each. Before a run it waits (bounded) for the machine's load
 * average to drop below --max-load, and says what it was. Reports go to
 * loadgen-results/bench-<run>-<time>/. Figures, not a test. `--list` names the runs.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { startNodeProcess, type NodeProcess } from "../test/support/node-process.js";
import type { RunReport } from "../loadgen/run-report.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** How the server runs: one node with N workers, or N nodes (one worker each) sharing a Redis. */
interface ServerShape {
  readonly workers: number;
  readonly nodes?: number;
  readonly args?: readonly string[];
}

interface BenchRun {
  readonly about: string;
  readonly server: ServerShape;
  /** `npm run loadgen --` arguments, without --target and --out. */
  readonly loadgen: readonly string[];
  /** Figures to summarise (report figure names), and step-table columns for group-fanout. */
  readonly figures: readonly string[];
}

const CONNECTION_FIGURES = [
  "connections live after ramp",
  "connect failures",
  "connections lost (ramp and hold)",
  "connect rate achieved",
  "server processes (/proc: workers and primary)",
  "server RSS per connection, all server processes (/proc, after ramp)",
  "server RSS per connection, all server processes (/proc, end of hold)",
  "server CPU per accepted connection (ramp)",
  "server CPU per heartbeat (hold, all server CPU over heartbeats)",
  "heartbeats per second (hold)",
  "server cores while holding",
  "load generator RSS growth per connection (all client processes, end of hold)",
  "load generator CPU per connection opened (ramp)",
  "load generator CPU per heartbeat (hold)",
];
const FANOUT_FIGURES = [
  "devices live",
  "messages sent (acknowledged)",
  "pushes out of order (delivery checker)",
  "highest deliveries per second with p99 < 100 ms (steps)",
  "at messages per second",
];

/** Fan-out steps send faster than one user may (default rate limits): measure the server, not its limits. */
const NO_RATE_LIMITS = ["--rate-user-sends-per-s", "0", "--rate-connection-sends-per-s", "0", "--rate-user-bytes-per-s", "0", "--rate-connection-bytes-per-s", "0"];

const fanout = (members: number, rate: number, steps: number): string[] => [
  "group-fanout", "--groups", "1", "--members", String(members), "--senders", "1",
  "--rate", String(rate), "--rate-step", String(rate), "--steps", String(steps), "--duration-s", "8", "--max-p99-ms", "1000",
  "--body-bytes", "100", "--connect-rate", "2000", "--heartbeat-ms", "15000",
];

/** The named runs (docs/benchmarks/loadgen.md gives their figures). */
const RUNS: Readonly<Record<string, BenchRun>> = {
  "connections-100k": {
    about: "100,000 lean long connections on 7 workers, 7 client processes, 10 loopback source addresses; 60 s idle; probe",
    server: { workers: 7, args: ["--sqlite-sync", "normal"] },
    loadgen: ["connections", "--connections", "100000", "--hold-s", "60", "--heartbeat-ms", "15000", "--connect-rate", "2000", "--connect-parallel", "128", "--connect-timeout-s", "60", "--processes", "7", "--source-addresses", "10", "--probe-rate", "1000", "--settle-timeout-s", "120"],
    figures: [...CONNECTION_FIGURES, "heartbeats late (the previous one unanswered)"],
  },
  "accept-1": {
    about: "15,000 lean long connections opened as fast as one server process accepts them (3 client processes, at most 200 opening at once each); 60 s idle",
    server: { workers: 1, args: ["--sqlite-sync", "normal"] },
    loadgen: ["connections", "--connections", "15000", "--hold-s", "60", "--heartbeat-ms", "15000", "--connect-rate", "10000", "--connect-parallel", "200", "--connect-timeout-s", "60", "--processes", "3", "--source-addresses", "3", "--probe-rate", "1000"],
    figures: CONNECTION_FIGURES,
  },
  "fanout-1k-1": { about: "group of 1,000 on one server process, 16..128 msg/s", server: { workers: 1, args: NO_RATE_LIMITS }, loadgen: [...fanout(1000, 16, 8), "--processes", "2"], figures: FANOUT_FIGURES },
  "fanout-1k-1-low": { about: "group of 1,000 on one server process, 2..16 msg/s (where 16 msg/s is already past 100 ms p99)", server: { workers: 1, args: NO_RATE_LIMITS }, loadgen: [...fanout(1000, 2, 8), "--processes", "2"], figures: FANOUT_FIGURES },
  "fanout-1k-2w-low": { about: "group of 1,000 on one node with 2 workers, 2..16 msg/s", server: { workers: 2, args: NO_RATE_LIMITS }, loadgen: [...fanout(1000, 2, 8), "--processes", "2"], figures: FANOUT_FIGURES },
  "fanout-5k-1": { about: "group of 5,000 on one server process, 4..32 msg/s", server: { workers: 1, args: NO_RATE_LIMITS }, loadgen: [...fanout(5000, 4, 8), "--processes", "2"], figures: FANOUT_FIGURES },
  "fanout-1k-2w": { about: "group of 1,000 on one node with 2 workers, 16..128 msg/s", server: { workers: 2, args: NO_RATE_LIMITS }, loadgen: [...fanout(1000, 16, 8), "--processes", "2"], figures: FANOUT_FIGURES },
  "fanout-5k-2w": { about: "group of 5,000 on one node with 2 workers, 4..32 msg/s", server: { workers: 2, args: NO_RATE_LIMITS }, loadgen: [...fanout(5000, 4, 8), "--processes", "2"], figures: FANOUT_FIGURES },
  "fanout-1k-2n": { about: "group of 1,000 over 2 nodes + Redis, 16..128 msg/s", server: { workers: 1, nodes: 2, args: NO_RATE_LIMITS }, loadgen: [...fanout(1000, 16, 8), "--processes", "2"], figures: FANOUT_FIGURES },
  "fanout-5k-2n": { about: "group of 5,000 over 2 nodes + Redis, 4..32 msg/s", server: { workers: 1, nodes: 2, args: NO_RATE_LIMITS }, loadgen: [...fanout(5000, 4, 8), "--processes", "2"], figures: FANOUT_FIGURES },
  "fanout-10k-2n": { about: "group of 10,000 over 2 nodes + Redis, 2..16 msg/s", server: { workers: 1, nodes: 2, args: NO_RATE_LIMITS }, loadgen: [...fanout(10_000, 2, 8), "--processes", "2"], figures: FANOUT_FIGURES },
};

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    runs: { type: "string", default: "3" },
    "max-load": { type: "string", default: "4" },
    "load-wait-s": { type: "string", default: "600" },
    list: { type: "boolean" },
  },
});

if (args.list === true || positionals.length === 0) {
  for (const [name, run] of Object.entries(RUNS)) process.stdout.write(`${name.padEnd(18)} ${run.about}\n`);
  process.exit(positionals.length === 0 && args.list !== true ? 2 : 0);
}


async function waitForQuiet(): Promise<number> {
  const maxLoad = Number(args["max-load"]);
  const deadline = performance.now() + Number(args["load-wait-s"]) * 1000;
  while (loadavg()[0]! > maxLoad && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10_000));
  return loadavg()[0]!;
}

/** Runs a command to its end, its output passed through; resolves with its exit code. */
function run(command: string, argv: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, [...argv], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "inherit"] });
    let stdout = "";
    child.stdout!.setEncoding("utf8").on("data", (s: string) => (stdout += s));
    child.once("exit", (code) => resolve({ code, stdout }));
  });
}

interface Started {
  readonly targets: readonly string[];
  readonly commands: readonly string[];
  readonly redisUrl?: string;
  stop(): Promise<void>;
}

async function startServers(shape: ServerShape): Promise<Started> {
  const dir = mkdtempSync(join(tmpdir(), "loadgen-bench-"));
  const env = process.env.BENCH_SERVER_NODE_OPTIONS === undefined ? {} : { NODE_OPTIONS: process.env.BENCH_SERVER_NODE_OPTIONS };
  const nodes: NodeProcess[] = [];
  const commands: string[] = [];
  let redis: { port: number; dir: string } | undefined;
  const stop = async () => {
    for (const n of nodes) n.kill("SIGTERM");
    await Promise.all(nodes.map((n) => Promise.race([n.exited, new Promise((r) => setTimeout(r, 30_000))])));
    for (const n of nodes) if (n.child.exitCode === null && n.child.signalCode === null) n.kill("SIGKILL");
    if (redis !== undefined) await run("bash", ["scripts/redis.sh", "stop", "--dir", redis.dir]);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const base = ["--workers", String(shape.workers), "--port", "0", "--data-dir", join(dir, "data"), ...(shape.args ?? [])];
    if ((shape.nodes ?? 1) > 1) {
      const started = await run("bash", ["scripts/redis.sh", "start", "--dir", join(dir, "redis")]);
      const port = Number(/^REDIS_PORT=(\d+)$/m.exec(started.stdout)?.[1]);
      if (!(port > 0)) throw new Error(`scripts/redis.sh start failed: ${started.stdout}`);
      redis = { port, dir: join(dir, "redis") };
      commands.push(`bash scripts/redis.sh start   # REDIS_PORT=${port}`);
      for (let i = 1; i <= shape.nodes!; i++) {
        const nodeArgs = [...base, "--redis-url", `redis://127.0.0.1:${port}`, "--node-id", `n${i}`];
        commands.push(`npx tsx server/main.ts ${nodeArgs.join(" ")}`);
        nodes.push(await startNodeProcess(nodeArgs, env));
      }
    } else {
      commands.push(`npx tsx server/main.ts ${base.join(" ")}`);
      nodes.push(await startNodeProcess(base, env));
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { targets: nodes.map((n) => `127.0.0.1:${n.port}`), commands, ...(redis === undefined ? {} : { redisUrl: `redis://127.0.0.1:${redis.port}` }), stop };
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const fmt = (v: number) => (Math.abs(v) >= 100 ? Math.round(v).toLocaleString("en-US") : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(3));

async function bench(name: string, spec: BenchRun, runs: number): Promise<void> {
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*$/, "").replace("T", "-");
  const outDir = join(ROOT, "loadgen-results", `bench-${name}-${stamp}`);
  mkdirSync(outDir, { recursive: true });
  process.stdout.write(`\n## ${name}: ${spec.about}\n\n`);
  const reports: RunReport[] = [];
  const loads: number[] = [];
  for (let k = 1; k <= runs; k++) {
    const load = await waitForQuiet();
    loads.push(load);
    const servers = await startServers(spec.server);
    const out = join(outDir, `run-${k}`);
    const argv = [...spec.loadgen, "--target", servers.targets.join(","), ...(servers.redisUrl === undefined ? [] : ["--redis-url", servers.redisUrl]), "--out", out, "--quiet"];
    process.stdout.write(`run ${k}/${runs}, load average ${load.toFixed(2)} at the start:\n${servers.commands.map((c) => `  ${c}`).join("\n")}\n  npm run loadgen -- ${argv.join(" ")}\n`);
    try {
      const result = await run(process.execPath, ["--import", "tsx", "loadgen/main.ts", ...argv]);
      mkdirSync(out, { recursive: true });
      writeFileSync(join(out, "stdout.md"), result.stdout);
      if (!existsSync(join(out, "report.json"))) {
        process.stdout.write(`  -> no report (exit code ${result.code})\n`);
        continue;
      }
      const report = JSON.parse(readFileSync(join(out, "report.json"), "utf8")) as RunReport;
      reports.push(report);
      process.stdout.write(`  -> ${report.passed ? "passed" : `FAILED: ${report.failures.join("; ")}`}\n`);
      const steps = report.tables.find((t) => t.title === "Rate steps");
      if (steps !== undefined) process.stdout.write(`${[`| ${steps.columns.join(" | ")} |`, ...steps.rows.map((r) => `| ${r.map((v) => (typeof v === "number" ? fmt(v) : v)).join(" | ")} |`)].map((l) => `  ${l}`).join("\n")}\n`);
    } finally {
      await servers.stop();
    }
  }
  const lines = [`| figure | median | range | runs |`, `| --- | ---: | ---: | --- |`];
  for (const figure of spec.figures) {
    const values = reports.map((r) => r.figures.find((f) => f.name === figure)?.value).filter((v): v is number => v !== undefined);
    if (values.length === 0) continue;
    lines.push(`| ${figure} | ${fmt(median(values))} | ${fmt(Math.min(...values))}-${fmt(Math.max(...values))} | ${values.map(fmt).join(", ")} |`);
  }
  for (const label of ["heartbeat round trip, hold only", "probe message delivery"]) {
    const ls = reports.map((r) => r.latencies.find((l) => l.label.startsWith(label))?.summary).filter((s) => s !== undefined);
    if (ls.length > 0) lines.push(`| ${label} p50 / p99 / p99.9 ms | ${fmt(median(ls.map((s) => s.p50Ms)))} / ${fmt(median(ls.map((s) => s.p99Ms)))} / ${fmt(median(ls.map((s) => s.p999Ms)))} | | ${ls.map((s) => fmt(s.p99Ms)).join(", ")} (p99) |`);
  }
  lines.push(`| runs passed | ${reports.filter((r) => r.passed).length} of ${runs} (${reports.length} reported) | | load average at the start: ${loads.map((l) => l.toFixed(1)).join(", ")} |`);
  const summary = lines.join("\n");
  writeFileSync(join(outDir, "summary.md"), `${spec.about}\n\n${summary}\n`);
  process.stdout.write(`\n${summary}\n\nreports: ${outDir}\n`);
}

for (const name of positionals) {
  const run = RUNS[name];
  if (run === undefined) throw new Error(`unknown run ${name} (--list names them)`);
  await bench(name, run, Number(args.runs));
}
