/**
 * Call benchmark: `npm run bench:calls [-- --calls 100 --runs 5 --fanout-calls 50]`.
 *
 * Starts the server as `npm start` does with one worker (embedded SQLite for messages and call
 * state, synchronous=normal, in a temporary directory), then measures with SDK clients
 * (ImClient + CallClient, call operations as frames on the long connection), all in this
 * process on one clock:
 * - set-up latency under N concurrent calls: N callers each call their own callee at once;
 *   each callee's device rings (Ring) and accepts as soon as the invitation arrives; the
 *   latency of a call is from StartCall to the caller's "accepted" event (the pushed
 *   snapshot with the callee's answer): StartCall, the started message, two pushes, Ring,
 *   Accept;
 * - ring fan-out: one caller calls a user with 4 devices (4 long connections), F calls one
 *   after another; the latency is from StartCall to the invitation reaching each device, and
 *   to the last of the 4.
 * Prints every run's p50/p99 and the medians over the runs. Loopback only, bounded in count
 * and time. Not a test: nothing is asserted.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { CallClient } from "../client/call-client.js";
import { ImClient } from "../client/im-client.js";
import { DEV_JWT_SECRET, mintToken } from "../server/gateway/auth.js";
import { startNodeProcess } from "../test/support/node-process.js";

const { values } = parseArgs({
  options: {
    calls: { type: "string", default: "100" },
    runs: { type: "string", default: "5" },
    "fanout-calls": { type: "string", default: "50" },
    "time-limit-s": { type: "string", default: "300" },
  },
});
const CALLS = Number(values.calls);
const RUNS = Number(values.runs);
const FANOUT_CALLS = Number(values["fanout-calls"]);
const DEADLINE = Date.now() + Number(values["time-limit-s"]) * 1000;

interface Device {
  readonly im: ImClient;
  readonly calls: CallClient;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function summary(values: number[]): { p50: number; p99: number } {
  const sorted = [...values].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "calls-bench-"));
  const load = loadavg().map((l) => l.toFixed(2)).join(" ");
  console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? "?"}, load average at start: ${load}`);
  const node = await startNodeProcess(["--workers", "1", "--port", "0", "--data-dir", dir, "--sqlite-sync", "normal", "--call-ring-timeout-ms", "60000"]);
  const devices: Device[] = [];
  const device = async (userId: string, deviceId: string): Promise<Device> => {
    // One HTTP/2 connection per device, as real devices hold them (and within the server's stream bound).
    const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${node.port}` });
    const im = new ImClient({ transport, token: await mintToken(DEV_JWT_SECRET, userId), heartbeatIntervalMs: 5000 });
    const calls = new CallClient({ im, userId, deviceId, tickMs: 1000 });
    im.start();
    await new Promise<void>((resolve) => {
      if (im.state === "live") return resolve();
      const off = im.on("state", (s) => s === "live" && (off(), resolve()));
    });
    const d = { im, calls };
    devices.push(d);
    return d;
  };
  try {
    const setupP50: number[] = [];
    const setupP99: number[] = [];
    for (let run = 1; run <= RUNS && Date.now() < DEADLINE; run++) {
      const pairs = await Promise.all(
        Array.from({ length: CALLS }, async (_, i) => {
          const caller = await device(`r${run}-a${i}`, `a${i}`);
          const callee = await device(`r${run}-b${i}`, `b${i}`);
          callee.calls.on("incoming", (c) => void callee.calls.accept(c.callId).catch(() => {}));
          return { caller, callee, i };
        }),
      );
      const latencies = await Promise.all(
        pairs.map(
          ({ caller, i }) =>
            new Promise<number>((resolve, reject) => {
              const t0 = performance.now();
              caller.calls.on("accepted", () => resolve(performance.now() - t0));
              caller.calls.start({ toUserId: `r${run}-b${i}` }, { video: false }).catch(reject);
            }),
        ),
      );
      const s = summary(latencies);
      setupP50.push(s.p50);
      setupP99.push(s.p99);
      console.log(`set-up, run ${run}: ${CALLS} concurrent calls, p50 ${s.p50.toFixed(1)} ms, p99 ${s.p99.toFixed(1)} ms`);
      for (const d of devices.splice(0)) {
        d.calls.close();
        await d.im.close();
      }
    }
    console.log(`set-up under ${CALLS} concurrent calls, median of ${setupP50.length} runs: p50 ${median(setupP50).toFixed(1)} ms, p99 ${median(setupP99).toFixed(1)} ms`);

    const allP50: number[] = [];
    const allP99: number[] = [];
    const lastP50: number[] = [];
    const lastP99: number[] = [];
    for (let run = 1; run <= RUNS && Date.now() < DEADLINE; run++) {
      const caller = await device(`f${run}-caller`, "c1");
      const callee = await Promise.all([1, 2, 3, 4].map((k) => device(`f${run}-callee`, `d${k}`)));
      const perDevice: number[] = [];
      const last: number[] = [];
      for (let c = 0; c < FANOUT_CALLS; c++) {
        const t0 = performance.now();
        const arrived = callee.map(
          (d) =>
            new Promise<number>((resolve) => {
              const off = d.calls.on("incoming", () => {
                off();
                resolve(performance.now() - t0);
              });
            }),
        );
        const { call } = await caller.calls.start({ toUserId: `f${run}-callee` }, { video: false, clientCallId: `f${run}-${c}` });
        const times = await Promise.all(arrived);
        perDevice.push(...times);
        last.push(Math.max(...times));
        await caller.calls.hangup(call.callId);
      }
      const a = summary(perDevice);
      const l = summary(last);
      allP50.push(a.p50);
      allP99.push(a.p99);
      lastP50.push(l.p50);
      lastP99.push(l.p99);
      console.log(`ring fan-out, run ${run}: ${FANOUT_CALLS} calls to 4 devices, per device p50 ${a.p50.toFixed(1)} ms p99 ${a.p99.toFixed(1)} ms, last device p50 ${l.p50.toFixed(1)} ms p99 ${l.p99.toFixed(1)} ms`);
      for (const d of devices.splice(0)) {
        d.calls.close();
        await d.im.close();
      }
    }
    console.log(
      `ring fan-out to 4 devices, median of ${allP50.length} runs: per device p50 ${median(allP50).toFixed(1)} ms p99 ${median(allP99).toFixed(1)} ms, last device p50 ${median(lastP50).toFixed(1)} ms p99 ${median(lastP99).toFixed(1)} ms`,
    );
    console.log(`load average at end: ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  } finally {
    for (const d of devices) {
      d.calls.close();
      await d.im.close();
    }
    node.kill("SIGTERM");
    await node.exited;
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
