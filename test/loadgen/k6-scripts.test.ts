import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runK6Script, type K6RunResult } from "./k6-harness/k6-runner.js";
import { NO_RATE_LIMITS, startTestServer, type TestServer } from "../support/test-server.js";

const K6_DIR = fileURLToPath(new URL("../../loadgen/k6/", import.meta.url));
const script = (name: string) => path.join(K6_DIR, name);

/**
 * The scripts' latency thresholds are performance targets for real load runs; on a shared test
 * machine their outcome is a figure, not a verdict. They must be evaluated; every other
 * threshold (counts, rates) must pass.
 */
const TIMING_METRICS = new Set(["heartbeat_rtt", "connect_time", "delivery_latency", "time_to_synced"]);

function expectClean(r: K6RunResult): void {
  expect(r.errors).toEqual([]);
  expect(r.thresholds.filter((t) => !t.ok && !TIMING_METRICS.has(t.metric))).toEqual([]);
  for (const t of r.thresholds.filter((x) => TIMING_METRICS.has(x.metric))) expect(Number.isFinite(t.actual)).toBe(true);
  expect(r.thresholds.length).toBeGreaterThan(0);
  const checks = r.summary.root_group.checks;
  expect(checks.length).toBeGreaterThan(0);
  for (const c of checks) expect({ name: c.name, fails: c.fails }).toEqual({ name: c.name, fails: 0 });
}

const count = (r: K6RunResult, metric: string) => r.summary.metrics[metric]?.values.count ?? 0;

/**
 * The k6 scripts, run for a few iterations through the smoke harness (k6 modules provided on
 * @grpc/grpc-js) against a live server: a smoke test of the scripts, not a load test.
 */
describe("k6 scripts (smoke harness)", () => {
  let t: TestServer;
  let dir: string;
  let env: Record<string, string>;
  beforeAll(async () => {
    // The scripts send faster per connection than the default rate limits allow.
    t = await startTestServer([...NO_RATE_LIMITS]);
    dir = await mkdtemp(path.join(tmpdir(), "k6-smoke-"));
    env = { TARGET: `127.0.0.1:${t.port}`, SUMMARY_DIR: dir };
  });
  afterAll(async () => {
    await t.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("type-check against @types/k6", async () => {
    const tsc = fileURLToPath(new URL("../../node_modules/typescript/bin/tsc", import.meta.url));
    const r = await promisify(execFile)(process.execPath, [tsc, "-p", path.join(K6_DIR, "tsconfig.json")]).catch((e: { stdout: string }) => e);
    expect(r.stdout).toBe("");
  }, 60_000);

  it("connections.js holds connections with answered heartbeats (server reflection)", async () => {
    const r = await runK6Script(script("connections.js"), { vus: 3, iterations: 1, cwd: dir, env: { ...env, VUS: "3", RAMP_S: "0", HOLD_S: "2", HEARTBEAT_MS: "200", RUN_ID: "smoke1" } });
    expectClean(r);
    expect(r.summary.metrics.connect_time?.values).toBeDefined();
    // 3 VUs pinging every 200 ms for 2 s.
    expect(count(r, "pongs")).toBeGreaterThanOrEqual(3 * 6);
    expect(r.summary.metrics.heartbeat_rtt?.thresholds?.["p(99)<100"]).toBeDefined();
    expect(r.stdout).toContain("heartbeat_rtt");
    const saved = JSON.parse(await readFile(path.join(dir, "k6-connections-summary.json"), "utf8")) as { metrics: Record<string, unknown> };
    expect(Object.keys(saved.metrics)).toContain("pongs");
  }, 60_000);

  it("group-fanout.js delivers every message to every member (protos loaded from files)", async () => {
    const r = await runK6Script(script("group-fanout.js"), {
      vus: 6,
      iterations: 1,
      cwd: dir,
      env: { ...env, PROTO_MODE: "files", GROUPS: "2", MEMBERS: "3", SENDERS_PER_GROUP: "1", RATE_PER_SENDER: "20", DURATION_S: "1", CONNECT_S: "1", GRACE_S: "1", RUN_ID: "smoke2" },
    });
    expectClean(r);
    // 2 senders x ~20 messages, each to 2 other members.
    expect(count(r, "deliveries")).toBeGreaterThanOrEqual(2 * 15 * 2);
    expect(count(r, "missing_messages")).toBe(0);
    expect(r.summary.metrics.delivery_latency?.values["p(90)"]).toBeGreaterThanOrEqual(0);
  }, 60_000);

  it("offline-sync.js catches up from the cursor across sync pages", async () => {
    // 150 messages while offline: more than one sync page (100), so FetchRange follows.
    const r = await runK6Script(script("offline-sync.js"), { vus: 4, iterations: 1, cwd: dir, env: { ...env, USERS: "4", MESSAGES: "150", HISTORY: "2", SENDERS: "2", RUN_ID: "smoke3" } });
    expectClean(r);
    expect(count(r, "messages_synced")).toBe(4 * 150);
    expect(count(r, "gap_left")).toBe(0);
    expect(count(r, "chain_violations")).toBe(0);
  }, 60_000);

  it("reports failed thresholds and checks", async () => {
    const r = await runK6Script(fileURLToPath(new URL("./k6-harness/fixtures/threshold-fails.js", import.meta.url)), { vus: 1, iterations: 2, cwd: dir, env: {} });
    expect(r.thresholds.map((x) => [x.metric, x.ok, x.actual])).toEqual([
      ["bad_things", false, 2],
      ["wait_ms", false, 5],
    ]);
    expect(r.summary.root_group.checks).toEqual([expect.objectContaining({ name: "one is two", passes: 0, fails: 2 })]);
  }, 30_000);
});
