import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseLoadgenArgs, type LoadgenOptions } from "../../loadgen/options.js";
import { runLoadgen } from "../../loadgen/run-loadgen.js";
import { renderSummary, writeRunReport, type RunReport } from "../../loadgen/run-report.js";
import { NO_RATE_LIMITS, startTestServer, type TestServer } from "../support/test-server.js";

const quiet = { log: () => {}, progress: () => {} };
const figure = (r: RunReport, name: string) => r.figures.find((f) => f.name === name)?.value;

/** Tiny runs of every scenario against a live in-process server: checks pass, reports are written. */
describe("runLoadgen()", () => {
  let t: TestServer;
  let dir: string;
  beforeAll(async () => {
    // The scenarios send faster per connection than the default rate limits allow (offline-sync
    // here: 1,000 messages per second per sender): they measure the server, not its limits.
    t = await startTestServer([...NO_RATE_LIMITS]);
    dir = await mkdtemp(path.join(tmpdir(), "loadgen-"));
  });
  afterAll(async () => {
    await t.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const options = (args: string) => parseLoadgenArgs([...args.split(" "), "--target", `127.0.0.1:${t.port}`, "--out", "none", "--progress-ms", "200"], {}) as LoadgenOptions;

  it.each(["lean", "sdk"])("connections (%s devices): holds connections in two client processes, measures heartbeats and server memory, probes delivery", async (device) => {
    const r = await runLoadgen(options(`connections --connections 12 --hold-s 1 --heartbeat-ms 200 --processes 2 --connect-parallel 3 --device ${device}`), quiet);
    expect(r.failures).toEqual([]);
    expect(r.passed).toBe(true);
    expect(r.options.device).toBe(device);
    expect(r.clientProcesses).toHaveLength(2);
    expect(new Set(r.clientProcesses.map((p) => p.pid)).size).toBe(2);
    expect(figure(r, "connections live after ramp")).toBe(12);
    expect(figure(r, "server connections (end of hold)")).toBe(12);
    // The server shares this process with the test runner: its RSS is read, not meaningful here.
    expect(Number.isFinite(figure(r, "server RSS per connection"))).toBe(true);
    // The server runs in this process: /proc reads it too.
    expect(figure(r, "server processes (/proc: workers and primary)")).toBeGreaterThanOrEqual(1);
    expect(figure(r, "server CPU per heartbeat (hold, all server CPU over heartbeats)")).toBeGreaterThan(0);
    const rtt = r.latencies.find((l) => l.name === "rtt")!;
    // Heartbeats from both processes, merged: 12 devices x ~5 pings each.
    expect(rtt.summary.count).toBeGreaterThan(12);
    const hold = r.latencies.find((l) => l.name === "rttHold")!;
    expect(hold.summary.count).toBeGreaterThan(12);
    expect(hold.summary.count).toBe(figure(r, "heartbeats answered during the hold"));
    expect(r.check.pairsChecked).toBe(12);
    expect(r.check.deliveries).toBe(24);
    const files = await writeRunReport(path.join(dir, `connections-${device}`), r);
    expect(files.map((f) => path.basename(f))).toEqual(["report.json", "summary.md", "latency.svg"]);
    expect(JSON.parse(await readFile(files[0]!, "utf8"))).toMatchObject({ scenario: "connections", passed: true });
    expect(await readFile(files[1]!, "utf8")).toMatch(/^# loadgen connections: PASSED/);
  }, 90_000);

  it.each(["lean", "sdk"])("group-fanout (%s devices): every member receives every message, in order, with latency recorded", async (device) => {
    const r = await runLoadgen(options(`group-fanout --groups 3 --members 4 --senders 6 --rate 150 --duration-s 1 --processes 0 --device ${device}`), quiet);
    expect(r.failures).toEqual([]);
    const sent = figure(r, "messages sent (acknowledged)")!;
    expect(sent).toBeGreaterThan(100);
    expect(figure(r, "deliveries to other members")).toBe(sent * 3);
    expect(r.latencies.find((l) => l.name === "delivery")!.summary.count).toBe(sent * 3);
    expect(r.check).toMatchObject({ pairsChecked: 12, missingMessages: 0 });
    expect(r.timeline.length).toBeGreaterThan(0);
  }, 90_000);

  it("group-fanout in rate steps: one row per step, each settled, with the server's CPU per delivery", async () => {
    const r = await runLoadgen(options("group-fanout --groups 1 --members 5 --senders 2 --rate 40 --steps 3 --rate-step 40 --duration-s 1 --processes 1"), quiet);
    expect(r.failures).toEqual([]);
    const steps = r.tables.find((t) => t.title === "Rate steps")!;
    expect(steps.rows.map((row) => row[0])).toEqual([40, 80, 120]);
    const col = (name: string) => steps.columns.indexOf(name);
    for (const row of steps.rows) {
      // Each step's deliveries are its own: four other members per message sent in it.
      expect(row[col("deliveries")]).toBe((row[col("sent")] as number) * 4);
      expect(row[col("server µs/delivery")]).toBeGreaterThan(0);
      expect(row[col("out of order")]).toBe(0);
    }
    expect(steps.rows.reduce((n, row) => n + (row[col("sent")] as number), 0)).toBe(figure(r, "messages sent (acknowledged)"));
    expect(await Promise.resolve(renderSummary(r))).toMatch(/## Rate steps/);
  }, 90_000);

  it("offline-sync: users reconnect at once and catch up across sync pages with no gap", async () => {
    // 120 messages per conversation while offline: more than one sync page (100).
    const r = await runLoadgen(options("offline-sync --users 6 --messages 240 --conversations 2 --senders 3 --history 2 --send-rate 3000 --processes 1"), quiet);
    expect(r.failures).toEqual([]);
    expect(figure(r, "messages stored while offline")).toBe(6 * 240);
    expect(figure(r, "users fully synced")).toBe(6);
    expect(figure(r, "gap left (messages not delivered)")).toBe(0);
    expect(r.latencies.find((l) => l.name === "sync")!.summary.count).toBe(6);
    // 6 users x 2 conversations, 3 senders x 4 conversations.
    expect(r.check.pairsChecked).toBe(24);
  }, 90_000);

  it("reports a run that cannot reach its target as failed, with the reason", async () => {
    const o = parseLoadgenArgs(["connections", "--target", "127.0.0.1:9", "--connections", "2", "--hold-s", "0", "--processes", "0", "--out", "none"], {}) as LoadgenOptions;
    const r = await runLoadgen(o, quiet);
    expect(r.passed).toBe(false);
    expect(r.failures.join("\n")).toMatch(/ECONNREFUSED/);
    await expect(stat(path.join(dir, "never"))).rejects.toThrow();
  }, 60_000);
});
