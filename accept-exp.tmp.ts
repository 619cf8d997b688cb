import { fork } from "node:child_process";
import http2 from "node:http2";
import net from "node:net";
import { pino } from "pino";
import { loadConfig } from "./server/config.js";
import { startServer } from "./server/main.js";
import { DEV_JWT_SECRET, mintToken } from "./server/gateway/auth.js";
if (process.env.ROLE === "client") {
  const { LeanConnection } = await import("./loadgen/lean-connection.js");
  const { url, tokens } = await new Promise<{ url: string; tokens: string[] }>((r) => process.once("message", r as never));
  let next = 0;
  await Promise.all(Array.from({ length: 32 }, async () => { while (next < tokens.length) { const i = next++; await LeanConnection.open({ url, token: tokens[i]!, localAddress: `127.0.0.${2 + (i % 4)}`, events: {} }); } }));
  process.send!("open");
  await new Promise(() => {});
} else {
  const N = Number(process.argv[2] ?? 3000);
  const mode = process.argv[3] ?? "server";
  let port: number;
  if (mode === "bare") {
    const h2 = http2.createServer({ settings: { maxConcurrentStreams: 8 } });
    h2.on("stream", (st) => { st.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true }); });
    const tcp = net.createServer((s) => h2.emit("connection", s));
    await new Promise<void>((r) => tcp.listen(0, "127.0.0.1", () => r()));
    port = (tcp.address() as net.AddressInfo).port;
  } else {
    const config = loadConfig(["--port", "0", "--store", mode === "sqlite" ? "sqlite" : "memory", "--data-dir", "/tmp/acceptexp", "--log-level", "silent"], {});
    port = (await startServer(config, pino({ level: "silent" }))).gateway.port;
  }
  const tokens = await Promise.all(Array.from({ length: N }, (_, i) => mintToken(DEV_JWT_SECRET, `u${Math.random()}${i}`)));
  const c = fork(process.argv[1]!, [], { env: { ...process.env, ROLE: "client" }, execArgv: process.execArgv });
  c.send({ url: `http://127.0.0.1:${port}`, tokens });
  const u0 = process.cpuUsage(); const t0 = performance.now();
  await new Promise((r) => c.once("message", r));
  const u = process.cpuUsage(u0); const ms = performance.now() - t0;
  console.log(`${mode}: ${N} accepts, server CPU ${((u.user + u.system) / 1000 / N).toFixed(3)} ms/accept, wall ${(N / (ms / 1000)).toFixed(0)}/s`);
  c.kill(); process.exit(0);
}
