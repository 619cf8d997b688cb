/**
 * Routing benchmark: `npm run bench:routing [-- --workers 2 --connections 400 --messages 3000
 * --rate 300 --runs 3 --modes redis,ipc]`.
 *
 * Starts the server as `npm start` does (a primary and N SO_REUSEPORT workers, SQLite with
 * synchronous=normal in a temporary directory), once per mode and run: "redis" routes through
 * a Redis started by scripts/redis.sh, "ipc" through the primary's relay. Then:
 * - connection spread: opens C long connections (one HTTP/2 connection each, Connect bidi
 *   stream) and asks each, over its own connection, which worker pid holds it (GET /stats);
 * - delivery latency: pairs up connections (2k sends to 2k+1) and sends M 1:1 messages at a
 *   fixed rate with unary Send on the sender's connection; the latency of each is the time
 *   from calling Send to the push arriving on the recipient's stream (same process, one
 *   clock), split by whether the pair sits on one worker (local) or two (cross-worker).
 * Prints the figures of every run and their medians. Loopback only; bounded in count and
 * time. Not a test: nothing is asserted.
 */
import { cpus, tmpdir } from "node:os";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createClient, type Client } from "@connectrpc/connect";
import { createWritableIterable } from "@connectrpc/connect/protocol";
import { GatewayService, type ConnectRequest } from "../gen/im/v1/gateway_pb.js";
import { DEV_JWT_SECRET, mintToken } from "../server/gateway/auth.js";
import { serverEnv } from "./support/proc.js";
import { pinnedTransport, startNodeProcess, type NodeProcess } from "../test/support/node-process.js";
import { startRedis, type RedisServer } from "../test/support/redis.js";

const { values } = parseArgs({
  options: {
    workers: { type: "string", default: "2" },
    connections: { type: "string", default: "400" },
    messages: { type: "string", default: "3000" },
    rate: { type: "string", default: "300" },
    runs: { type: "string", default: "3" },
    modes: { type: "string", default: "redis,ipc" },
    "time-limit-s": { type: "string", default: "120" },
  },
});
const WORKERS = Number(values.workers);
const CONNECTIONS = Number(values.connections) & ~1;
const MESSAGES = Number(values.messages);
const RATE = Number(values.rate);
const RUNS = Number(values.runs);
const MODES = values.modes!.split(",") as ("redis" | "ipc")[];
const TIME_LIMIT_MS = Number(values["time-limit-s"]) * 1000;

interface RunResult {
  readonly mode: string;
  readonly perWorker: number[];
  readonly local: number[];
  readonly cross: number[];
  readonly lost: number;
}

interface Conn {
  readonly userId: string;
  readonly pid: number;
  readonly gateway: Client<typeof GatewayService>;
  readonly headers: Record<string, string>;
  readonly abort: AbortController;
  readonly close: () => void;
}

/** Latency waiters by message body: resolved when the push arrives. */
const waiting = new Map<string, (arrivedMs: number) => void>();

async function openConnection(port: number, userId: string): Promise<Conn> {
  const { transport, pid, session } = await pinnedTransport(port);
  const gateway = createClient(GatewayService, transport);
  const headers = { authorization: `Bearer ${await mintToken(DEV_JWT_SECRET, userId, 3600)}` };
  const abort = new AbortController();
  const outgoing = createWritableIterable<ConnectRequest>();
  const responses = gateway.connect(outgoing, { headers, signal: abort.signal });
  void (async () => {
    try {
      for await (const response of responses) {
        if (response.frame.case !== "message") continue;
        const body = new TextDecoder().decode(response.frame.value.body?.data);
        waiting.get(`${userId}|${body}`)?.(performance.now());
      }
    } catch {
      // Closed at the end of the run.
    }
  })();
  return {
    userId,
    pid,
    gateway,
    headers,
    abort,
    close: () => {
      outgoing.close();
      abort.abort();
      session.abort();
    },
  };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function median(xs: number[]): number {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s[Math.floor(s.length / 2)]!;
}

async function runOnce(mode: "redis" | "ipc", redis: RedisServer | undefined, run: number): Promise<RunResult> {
  const dir = mkdtempSync(join(tmpdir(), "routing-bench-"));
  const args = ["--workers", String(WORKERS), "--port", "0", "--data-dir", dir, "--sqlite-sync", "normal"];
  if (mode === "redis") args.push("--redis-url", redis!.url, "--node-id", `bench-${run}`);
  const node: NodeProcess = await startNodeProcess(args, serverEnv());
  const deadline = Date.now() + TIME_LIMIT_MS;
  const conns: Conn[] = [];
  try {
    for (let i = 0; i < CONNECTIONS && Date.now() < deadline; i++) conns.push(await openConnection(node.port, `r${run}-u${i}`));
    const pids = [...new Set(conns.map((c) => c.pid))].sort();
    const perWorker = pids.map((pid) => conns.filter((c) => c.pid === pid).length);
    // Presence settles, and every pair's direct conversation exists before measuring.
    await new Promise((r) => setTimeout(r, 500));
    const pairs = Array.from({ length: conns.length / 2 }, (_, k) => [conns[2 * k]!, conns[2 * k + 1]!] as const);
    await Promise.all(pairs.map(([from, to]) => from.gateway.send({ target: { case: "toUserId", value: to.userId }, clientMsgId: "warmup", body: { contentType: "text/plain", data: new TextEncoder().encode("warmup") } }, { headers: from.headers })));
    const local: number[] = [];
    const cross: number[] = [];
    let lost = 0;
    const inFlight: Promise<void>[] = [];
    const intervalMs = 1000 / RATE;
    const started = performance.now();
    for (let i = 0; i < MESSAGES && Date.now() < deadline; i++) {
      const due = started + i * intervalMs;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      const [from, to] = pairs[i % pairs.length]!;
      const body = `m${i}`;
      const sentMs = performance.now();
      const arrived = new Promise<number | undefined>((resolve) => {
        const timer = setTimeout(() => resolve(undefined), 10_000);
        waiting.set(`${to.userId}|${body}`, (t) => {
          clearTimeout(timer);
          resolve(t);
        });
      });
      const send = from.gateway.send({ target: { case: "toUserId", value: to.userId }, clientMsgId: body, body: { contentType: "text/plain", data: new TextEncoder().encode(body) } }, { headers: from.headers });
      inFlight.push(
        Promise.all([arrived, send.catch(() => undefined)]).then(([t]) => {
          waiting.delete(`${to.userId}|${body}`);
          if (t === undefined) lost++;
          else (from.pid === to.pid ? local : cross).push(t - sentMs);
        }),
      );
    }
    await Promise.all(inFlight);
    local.sort((a, b) => a - b);
    cross.sort((a, b) => a - b);
    return { mode, perWorker, local, cross, lost };
  } finally {
    for (const c of conns) c.close();
    node.kill("SIGTERM");
    await node.exited;
    rmSync(dir, { recursive: true, force: true });
  }
}

function fmt(ms: number): string {
  return Number.isNaN(ms) ? "-" : ms.toFixed(2);
}

async function main(): Promise<void> {
  const cpu = cpus()[0]?.model ?? "unknown CPU";
  process.stdout.write(`routing benchmark: ${WORKERS} workers, ${CONNECTIONS} connections, ${MESSAGES} messages at ${RATE}/s, ${RUNS} runs; ${cpus().length} x ${cpu}, Node ${process.version}\n`);
  const redis = MODES.includes("redis") ? await startRedis() : undefined;
  try {
    const results: RunResult[] = [];
    for (let run = 1; run <= RUNS; run++) {
      for (const mode of MODES) {
        const r = await runOnce(mode, redis, run);
        results.push(r);
        process.stdout.write(
          `run ${run} ${mode.padEnd(5)} spread ${r.perWorker.join("/")}  local n=${r.local.length} p50 ${fmt(percentile(r.local, 50))} p99 ${fmt(percentile(r.local, 99))} ms` +
            `  cross n=${r.cross.length} p50 ${fmt(percentile(r.cross, 50))} p99 ${fmt(percentile(r.cross, 99))} ms  lost ${r.lost}\n`,
        );
      }
    }
    process.stdout.write("\nmedians over runs (ms):\n| routing | spread (connections per worker) | local p50 | local p99 | cross-worker p50 | cross-worker p99 | cross/local p50 | lost |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (const mode of MODES) {
      const rs = results.filter((r) => r.mode === mode);
      const lp50 = median(rs.map((r) => percentile(r.local, 50)));
      const cp50 = median(rs.map((r) => percentile(r.cross, 50)));
      const ratios = rs.map((r) => percentile(r.cross, 50) / percentile(r.local, 50));
      process.stdout.write(
        `| ${mode} | ${rs.map((r) => r.perWorker.join("/")).join(", ")} | ${fmt(lp50)} | ${fmt(median(rs.map((r) => percentile(r.local, 99))))} | ${fmt(cp50)} | ${fmt(median(rs.map((r) => percentile(r.cross, 99))))} | ${median(ratios).toFixed(2)} | ${rs.map((r) => r.lost).join(", ")} |\n`,
      );
    }
  } finally {
    await redis?.destroy();
  }
}

await main();
