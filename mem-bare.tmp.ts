import { fork } from "node:child_process";
import http2 from "node:http2";
import net from "node:net";
import { aggregateSync } from "./heap-agg2.tmp.js";
if (process.env.ROLE === "client") {
  const { LeanConnection } = await import("./loadgen/lean-connection.js");
  const { url, n } = await new Promise<{ url: string; n: number }>((r) => process.once("message", r as never));
  const cs = [];
  for (let i = 0; i < n; i++) cs.push(await LeanConnection.open({ url, token: "x", localAddress: `127.0.0.${2 + (i % 4)}`, events: {} }));
  process.send!("open");
  await new Promise(() => {});
} else {
  const N = Number(process.argv[2] ?? 2000);
  const h2 = http2.createServer(JSON.parse(process.env.H2OPTS ?? "{}"));
  h2.on("stream", (st) => { st.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true }); });
  const tcp = net.createServer((s) => h2.emit("connection", s));
  await new Promise<void>((r) => tcp.listen(0, "127.0.0.1", () => r()));
  const h0 = aggregateSync();
  const c = fork(process.argv[1]!, [], { env: { ...process.env, ROLE: "client" }, execArgv: process.execArgv });
  c.send({ url: `http://127.0.0.1:${(tcp.address() as net.AddressInfo).port}`, n: N });
  await new Promise((r) => c.once("message", r));
  await new Promise((r) => setTimeout(r, 1000));
  const h1 = aggregateSync();
  const rows = [...h1].map(([k, v]) => [k, (v.count - (h0.get(k)?.count ?? 0)) / N, (v.size - (h0.get(k)?.size ?? 0)) / N] as const).filter((r) => r[2] > 16).sort((x, y) => y[2] - x[2]).slice(0, 30);
  for (const r of rows) console.log(r[0].padEnd(60), r[1].toFixed(2).padStart(8), r[2].toFixed(0).padStart(8));
  c.kill(); process.exit(0);
}
