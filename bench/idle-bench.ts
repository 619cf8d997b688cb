/**
 * Idle long-connection benchmark: `npm run bench:idle [-- --connections 10000 --idle-s 60
 * --ping-s 15 --workers 1 --clients 2 --server gateway|bare]`. Opens N lean long connections (raw HTTP/2 gRPC
 * streams from `clients` processes over four loopback source addresses), each of its own user,
 * as fast as the server accepts them; then lets them idle while every client sends an HTTP/2
 * PING every `ping-s` seconds (the keepalive gRPC clients use; the server's HTTP/2 stack
 * answers it). Prints the accept rate, server RSS per connection after the ramp and after the
 * idle period (over every server process), server CPU per heartbeat while idle, and the PING
 * round trip (p50/p99). `--server bare` measures the floor instead: a bare node:http2 server
 * with the gateway's HTTP/2 settings that only answers each stream's headers
 * (bench/support/bare-h2-server.ts). Figures, not a test.
 */
import { fork } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import * as hdr from "hdr-histogram-js";
import { DEV_JWT_SECRET, mintToken } from "../server/gateway/auth.js";
import { LeanConnection } from "../loadgen/lean-connection.js";
import { fetchStats, startNodeProcess } from "../test/support/node-process.js";
import { cpuSeconds, rssBytes, serverEnv } from "./support/proc.js";

if (process.env.IDLE_BENCH_ROLE === "client") await client();
else await coordinator();

/** A client process: opens its connections (at most `parallel` opening at once), then pings them. */
async function client(): Promise<void> {
  const { url, tokens, pingS, parallel } = JSON.parse(await new Promise<string>((resolve) => process.once("message", (m: { args: string }) => resolve(m.args)))) as { url: string; tokens: string[]; pingS: number; parallel: number };
  const connections: LeanConnection[] = [];
  let closed = 0;
  let failed = 0;
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < tokens.length) {
        const i = next++;
        try {
          connections.push(await LeanConnection.open({ url, token: tokens[i]!, localAddress: `127.0.0.${2 + (i % 4)}`, events: { onClose: () => closed++ } }));
        } catch {
          failed++;
        }
      }
    }),
  );
  process.send!({ type: "open", opened: connections.length, failed, ms: performance.now() - started });
  let histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
  let pings = 0;
  let pingFailures = 0;
  // Each connection pings every pingS seconds, spread evenly over the interval.
  const perTick = (connections.length * 20) / (pingS * 1000);
  let credit = 0;
  let at = 0;
  const timer = setInterval(() => {
    credit += perTick;
    for (; credit >= 1 && connections.length > 0; credit--) {
      const c = connections[at++ % connections.length]!;
      if (c.closed) continue;
      pings++;
      c.ping().then(
        (ms) => histogram.recordValue(Math.max(1, Math.round(ms * 1000))),
        () => pingFailures++,
      );
    }
  }, 20);
  process.on("message", (m: { type: string }) => {
    if (m.type === "report") {
      process.send!({ type: "report", pings, pingFailures, closed, histogram: hdr.encodeIntoCompressedBase64(histogram) });
      histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
      pings = 0;
      pingFailures = 0;
    } else if (m.type === "stop") {
      clearInterval(timer);
      for (const c of connections) c.destroy();
      setTimeout(() => process.exit(0), 200);
    }
  });
}



async function coordinator(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      connections: { type: "string", default: "10000" },
      "idle-s": { type: "string", default: "60" },
      "ping-s": { type: "string", default: "15" },
      workers: { type: "string", default: "1" },
      clients: { type: "string", default: "2" },
      parallel: { type: "string", default: "64" },
      server: { type: "string", default: "gateway" },
    },
  });
  if (args.server !== "gateway" && args.server !== "bare") throw new Error(`--server must be gateway or bare, not ${args.server}`);
  const n = Number(args.connections);
  const workers = Number(args.workers);
  const clients = Number(args.clients);
  const pingS = Number(args["ping-s"]);
  const idleS = Number(args["idle-s"]);
  const run = Math.random().toString(36).slice(2, 8);
  const dir = mkdtempSync(join(tmpdir(), "idle-bench-"));
  const server = args.server === "bare" ? await startBareServer() : await startGateway(workers, dir);
  const url = `http://127.0.0.1:${server.port}`;
  const pids = server.pids;
  process.stdout.write(
    `idle benchmark: ${n} connections, ${args.server === "bare" ? "bare node:http2 server (the floor)" : `${workers} worker(s)`}, ${clients} client processes, PING every ${pingS} s, ${idleS} s idle; ` +
      `${cpus().length} x ${cpus()[0]?.model ?? "?"}, Node ${process.version}, load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}\n`,
  );
  const tokens = await Promise.all(Array.from({ length: n }, (_, i) => mintToken(DEV_JWT_SECRET, `ib${run}-u${i}`)));
  await new Promise((r) => setTimeout(r, 1000));
  const rss = () => [...pids].reduce((s, p) => s + rssBytes(p), 0);
  const cpu = () => [...pids].reduce((s, p) => s + cpuSeconds(p), 0);
  const rss0 = rss();
  const parallel = Math.max(1, Math.round(Number(args.parallel) / clients));
  const children = Array.from({ length: clients }, (_, c) =>
    fork(process.argv[1]!, [], {
      execArgv: process.execArgv,
      env: { ...process.env, IDLE_BENCH_ROLE: "client" },
    }),
  );
  children.forEach((c, k) => c.send({ args: JSON.stringify({ url, tokens: tokens.filter((_, i) => i % clients === k), pingS, parallel }) }));
  const cpuRamp0 = cpu();
  const rampStart = performance.now();
  const opened = await Promise.all(children.map((c) => new Promise<{ opened: number; failed: number; ms: number }>((resolve) => c.once("message", resolve))));
  const rampMs = performance.now() - rampStart;
  const cpuRamp = cpu() - cpuRamp0;
  const live = opened.reduce((s, o) => s + o.opened, 0);
  const failed = opened.reduce((s, o) => s + o.failed, 0);
  await new Promise((r) => setTimeout(r, 2000));
  const rssRamp = rss();
  const report = () =>
    Promise.all(children.map((c) => new Promise<{ pings: number; pingFailures: number; closed: number; histogram: string }>((resolve) => {
      c.once("message", resolve);
      c.send({ type: "report" });
    })));
  await report();
  const cpuIdle0 = cpu();
  const idleStart = performance.now();
  await new Promise((r) => setTimeout(r, idleS * 1000));
  const idleCpu = cpu() - cpuIdle0;
  const idleWall = (performance.now() - idleStart) / 1000;
  const reports = await report();
  const rssIdle = rss();
  const merged = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
  for (const r of reports) merged.add(hdr.decodeFromCompressedBase64(r.histogram));
  const pings = reports.reduce((s, r) => s + r.pings, 0);
  const kib = (bytes: number) => (bytes / live / 1024).toFixed(1);
  process.stdout.write(
    `\n| connections | accepted/s | server CPU per accept ms | KiB/conn after ramp | KiB/conn after idle | idle server cores | heartbeats/s | server CPU per heartbeat ms | PING p50 ms | PING p99 ms | failed | dropped |\n` +
      `| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n` +
      `| ${live} | ${Math.round(live / (rampMs / 1000))} | ${((cpuRamp * 1000) / live).toFixed(3)} | ${kib(rssRamp - rss0)} | ${kib(rssIdle - rss0)} | ${(idleCpu / idleWall).toFixed(3)} | ${Math.round(pings / idleWall)} | ${((idleCpu * 1000) / Math.max(1, pings)).toFixed(3)} | ${(merged.getValueAtPercentile(50) / 1000).toFixed(2)} | ${(merged.getValueAtPercentile(99) / 1000).toFixed(2)} | ${failed} | ${reports.reduce((s, r) => s + r.closed, 0)} |\n`,
  );
  for (const c of children) c.send({ type: "stop" });
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}

interface BenchServer {
  readonly port: number;
  /** The processes whose CPU and memory count. */
  readonly pids: ReadonlySet<number>;
  stop(): Promise<void>;
}

async function startGateway(workers: number, dir: string): Promise<BenchServer> {
  const node = await startNodeProcess(["--workers", String(workers), "--port", "0", "--data-dir", dir, "--sqlite-sync", "normal"], serverEnv());
  const pids = new Set<number>();
  for (let i = 0; i < 400 && pids.size < workers; i++) pids.add((await fetchStats(node.port)).pid);
  return {
    port: node.port,
    pids,
    async stop() {
      node.kill("SIGTERM");
      await node.exited;
    },
  };
}

async function startBareServer(): Promise<BenchServer> {
  const child = fork(fileURLToPath(new URL("./support/bare-h2-server.ts", import.meta.url)), [], { execArgv: ["--import", "tsx"], env: serverEnv() });
  const { port, pid } = await new Promise<{ port: number; pid: number }>((resolve, reject) => {
    child.once("message", resolve);
    child.once("exit", (code) => reject(new Error(`the bare server exited (${code})`)));
  });
  return {
    port,
    pids: new Set([pid]),
    async stop() {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    },
  };
}

