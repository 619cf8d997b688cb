import { fork } from "node:child_process";
import { loadConfig } from "./server/config.js";
import { startServer } from "./server/main.js";
import { pino } from "pino";
import { DEV_JWT_SECRET, mintToken } from "./server/gateway/auth.js";
if (process.env.ROLE === "client") {
  const { LeanConnection } = await import("./loadgen/lean-connection.js");
  const { url, tokens } = await new Promise<{ url: string; tokens: string[] }>((r) => process.once("message", r as never));
  const cs = [];
  for (let i = 0; i < tokens.length; i++) { cs.push(await LeanConnection.open({ url, token: tokens[i]!, localAddress: `127.0.0.${2 + (i % 4)}`, events: {} })); }
  process.send!("open");
  await new Promise(() => {});
} else {
  const N = Number(process.argv[2] ?? 5000);
  const config = loadConfig(["--port", "0", "--store", process.argv[3] ?? "memory", "--data-dir", "/tmp/memexp", "--log-level", "silent"], {});
  const server = await startServer(config, pino({ level: "silent" }));
  const tokens = await Promise.all(Array.from({ length: N }, (_, i) => mintToken(DEV_JWT_SECRET, `u${i}`)));
  const m = () => { (globalThis as { gc?: () => void }).gc?.(); const u = process.memoryUsage(); return u; };
  await new Promise((r) => setTimeout(r, 500));
  const b = m();
  const { aggregateSync } = await import("./heap-agg2.tmp.js");
  const h0 = aggregateSync();
  const c = fork(process.argv[1]!, [], { env: { ...process.env, ROLE: "client" }, execArgv: process.execArgv });
  c.send({ url: `http://127.0.0.1:${server.gateway.port}`, tokens });
  await new Promise((r) => c.once("message", r));
  await new Promise((r) => setTimeout(r, 2000));
  const a = m();
  const h1 = aggregateSync();
  const rows = [...h1].map(([k, v]) => [k, (v.count - (h0.get(k)?.count ?? 0)) / N, (v.size - (h0.get(k)?.size ?? 0)) / N] as const).filter((r) => r[2] > 16).sort((x, y) => y[2] - x[2]).slice(0, 40);
  for (const r of rows) console.log(r[0].padEnd(60), r[1].toFixed(2).padStart(8), r[2].toFixed(0).padStart(8));
  const k = (x: number, y: number) => ((x - y) / N / 1024).toFixed(2);
  console.log(`N=${N} rss ${k(a.rss, b.rss)} heapUsed ${k(a.heapUsed, b.heapUsed)} heapTotal ${k(a.heapTotal, b.heapTotal)} external ${k(a.external, b.external)} arrayBuffers ${k(a.arrayBuffers, b.arrayBuffers)} KiB/conn; connections ${server.gateway.connectionCount()}`);
  c.kill();
  process.exit(0);
}
