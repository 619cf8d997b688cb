/**
 * Overhead of metrics and traces on group fan-out: `npm run bench:observe [-- --rounds 3
 * --members 1000 --rate 32 --duration-s 5 --workers 2]`. Runs bench:fanout (one sender, one
 * group, a lean connection per member) with the server's metrics off, metrics on, and metrics
 * on with traces exported over OTLP/HTTP to a local collector that discards them; the three
 * alternate round by round so that load on the machine falls on all of them alike. Prints the
 * median server CPU per delivery and p99 latency of each, and their ratios to "metrics off".
 * Figures, not a test: run it under `flock /tmp/bench.lock`.
 */
import { execFile } from "node:child_process";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { cpus, loadavg } from "node:os";
import { parseArgs, promisify } from "node:util";

const run = promisify(execFile);
const { values: args } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    members: { type: "string", default: "1000" },
    rate: { type: "string", default: "32" },
    "duration-s": { type: "string", default: "5" },
    workers: { type: "string", default: "2" },
  },
});
const rounds = Number(args.rounds);

// The collector: accepts every export and keeps nothing (only what the server pays is measured).
let exports = 0;
const collector = createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    exports++;
    res.writeHead(200, { "content-type": "application/x-protobuf" });
    res.end();
  });
});
await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve));
const collectorUrl = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;

const modes = [
  { name: "metrics off", env: { IM_METRICS: "off", IM_OTLP_ENDPOINT: "" } },
  { name: "metrics on", env: { IM_METRICS: "on", IM_OTLP_ENDPOINT: "" } },
  { name: "metrics + traces", env: { IM_METRICS: "on", IM_OTLP_ENDPOINT: collectorUrl } },
] as const;

interface Figures {
  readonly cpuUsPerDelivery: number;
  readonly p99Ms: number;
  readonly missing: number;
}

async function fanout(env: NodeJS.ProcessEnv): Promise<Figures> {
  const { stdout } = await run(
    process.execPath,
    [...process.execArgv, "bench/fanout-bench.ts", "--members", args.members!, "--rates", args.rate!, "--duration-s", args["duration-s"]!, "--workers", args.workers!],
    { env: { ...process.env, ...env }, maxBuffer: 1 << 24 },
  );
  const row = stdout.split("\n").find((l) => l.startsWith(`| ${args.rate} |`));
  if (row === undefined) throw new Error(`no figures in bench:fanout's output:\n${stdout}`);
  const cells = row.split("|").map((c) => c.trim());
  // | messages/s | deliveries/s | p50 | p99 | p99.9 | CPU µs/delivery | cores | out of order | missing | refused |
  return { p99Ms: Number(cells[4]), cpuUsPerDelivery: Number(cells[6]), missing: Number(cells[9]) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

process.stdout.write(
  `observability overhead: bench:fanout ${args.members} members, ${args.rate} messages/s for ${args["duration-s"]} s, ${args.workers} workers, ${rounds} rounds; ` +
    `${cpus().length} x ${cpus()[0]?.model ?? "?"}, Node ${process.version}, load average at start ${loadavg().map((l) => l.toFixed(2)).join(" ")}\n`,
);
const results = modes.map(() => [] as Figures[]);
try {
  for (let round = 0; round < rounds; round++) {
    for (const [i, mode] of modes.entries()) {
      const figures = await fanout(mode.env);
      results[i]!.push(figures);
      process.stdout.write(`round ${round + 1} ${mode.name}: ${figures.cpuUsPerDelivery} µs CPU/delivery, p99 ${figures.p99Ms} ms, ${figures.missing} missing\n`);
    }
  }
} finally {
  collector.close();
}
const base = median(results[0]!.map((f) => f.cpuUsPerDelivery));
process.stdout.write(`\n| mode | server CPU µs/delivery (median) | ratio to metrics off | p99 ms (median) | missing (sum) |\n| --- | --- | --- | --- | --- |\n`);
for (const [i, mode] of modes.entries()) {
  const cpu = median(results[i]!.map((f) => f.cpuUsPerDelivery));
  process.stdout.write(
    `| ${mode.name} | ${cpu.toFixed(1)} | ${(cpu / base).toFixed(3)} | ${median(results[i]!.map((f) => f.p99Ms)).toFixed(1)} | ${results[i]!.reduce((s, f) => s + f.missing, 0)} |\n`,
  );
}
process.stdout.write(`trace exports received by the collector: ${exports}; load average at end ${loadavg().map((l) => l.toFixed(2)).join(" ")}\n`);
