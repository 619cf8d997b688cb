import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Transport } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ImClient } from "../../../client/im-client.js";
import { DEV_JWT_SECRET, mintToken } from "../../../server/gateway/auth.js";
import { pinnedTransport, startNodeProcess, type NodeProcess } from "../../support/node-process.js";
import { recordMessages, waitFor } from "../../support/test-server.js";
import { parseMetrics, sample, scrape, type Sample } from "./prometheus-text.js";

/** A transport whose connection landed on the worker with `pid` (the kernel picks per connection). */
async function transportOn(port: number, pid: number): Promise<Transport> {
  for (let attempt = 0; attempt < 64; attempt++) {
    const pinned = await pinnedTransport(port);
    if (pinned.pid === pid) return pinned.transport;
    pinned.session.abort();
  }
  throw new Error(`no connection landed on worker ${pid} in 64 attempts`);
}

describe("GET /metrics of a node with 2 workers", () => {
  let node: NodeProcess;
  let dir: string;
  const clients: ImClient[] = [];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "metrics-test-"));
    node = await startNodeProcess(["--workers", "2", "--port", "0", "--data-dir", dir, "--sqlite-sync", "normal", "--drain-timeout-ms", "2000"]);
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    node?.kill("SIGTERM");
    await node?.exited;
    rmSync(dir, { recursive: true, force: true });
  });

  async function client(userId: string, transport: Transport): Promise<ImClient> {
    const c = new ImClient({ transport, token: await mintToken(DEV_JWT_SECRET, userId), heartbeatIntervalMs: 1000, backoff: { baseMs: 20, maxMs: 200 } });
    clients.push(c);
    c.start();
    return c;
  }

  it("counts every worker's connections, sends, appends and deliveries in one scrape", async () => {
    const pids = (node.logs.find((l) => l.msg.startsWith("cluster of"))?.workers as number[] | undefined) ?? [];
    expect(pids).toHaveLength(2);
    const before = parseMetrics(await scrape(node.port));
    expect(sample(before, "microchat_connections")).toBe(0);
    expect(sample(before, "microchat_scrape_workers", { worker: "primary" })).toBe(2);
    // Each worker's process metrics are kept apart by a worker label.
    for (const worker of ["0", "1", "primary"]) expect(sample(before, "process_resident_memory_bytes", { worker })).toBeGreaterThan(0);

    // alice on one worker, bob and carol on the other: the group's pushes cross the primary.
    const alice = await client("alice", await transportOn(node.port, pids[0]!));
    const bob = await client("bob", await transportOn(node.port, pids[1]!));
    const carol = await client("carol", await transportOn(node.port, pids[1]!));
    const seen = [alice, bob, carol].map((c) => recordMessages(c));
    await waitFor(() => alice.idle() && bob.idle() && carol.idle(), "clients live");
    const { conversation } = await alice.conversations.createGroup({ title: "metrics", memberUserIds: ["bob", "carol"] });
    const sends = 7;
    for (let i = 0; i < sends; i++) await alice.send({ conversationId: conversation!.conversationId, body: `m${i}` });
    await waitFor(() => seen[1]!.length === sends && seen[2]!.length === sends, "every push");

    const after = parseMetrics(await scrape(node.port));
    expect(sample(after, "microchat_connections")).toBe(3);
    const live = (s: readonly Sample[]) => s.filter((x) => x.name === "microchat_live_connections").reduce((sum, x) => sum + x.value, 0);
    expect(live(after)).toBe(3);
    expect(sample(after, "microchat_connects_total", { protocol: "grpc" })).toBe(3);
    expect(sample(after, "microchat_requests_total", { method: "Connect/send", code: "ok" })).toBe(sends);
    expect(sample(after, "microchat_send_duration_seconds_count")).toBe(sends);
    // Appends happen at the group's owner, whichever worker that is: one per send.
    expect(sample(after, "microchat_append_duration_seconds_count")).toBe(sends);
    // Every send reaches bob and carol (alice's own device is its origin, skipped).
    expect(sample(after, "microchat_deliveries_total")).toBeGreaterThanOrEqual(2 * sends);
    expect(sample(after, "microchat_publications_dropped_total")).toBe(0);
    expect(sample(after, "microchat_ipc_relay_forwarded_total")).toBeGreaterThan(0);

    await bob.close();
    let closed: Sample[] = [];
    for (let i = 0; i < 100; i++) {
      closed = parseMetrics(await scrape(node.port));
      if (sample(closed, "microchat_connections") === 2) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(sample(closed, "microchat_connections")).toBe(2);
    expect(closed.filter((s) => s.name === "microchat_disconnects_total").reduce((sum, s) => sum + s.value, 0)).toBe(1);
  });

  it("serves every metric the Grafana dashboard queries (deploy/grafana/microchat.json)", async () => {
    const text = await scrape(node.port);
    // Samples, and metrics declared with none yet (a labelled counter before its first count).
    const served = new Set([...parseMetrics(text).map((s) => s.name), ...[...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!)]);
    const dashboard = JSON.parse(readFileSync("deploy/grafana/microchat.json", "utf8")) as { panels: { title: string; targets: { expr: string }[] }[] };
    const queried = new Set<string>();
    for (const panel of dashboard.panels) {
      expect(panel.targets.length, panel.title).toBeGreaterThan(0);
      for (const { expr } of panel.targets) {
        // Metric names, outside label matchers and quoted strings; every one of ours has one of these prefixes.
        const names = expr.replace(/\{[^}]*\}/g, "").replace(/"[^"]*"/g, "").match(/\b(?:microchat|process|nodejs)_[a-zA-Z0-9_]+/g) ?? [];
        expect(names.length, expr).toBeGreaterThan(0);
        for (const name of names) queried.add(name);
      }
    }
    expect([...queried].filter((name) => !served.has(name))).toEqual([]);
    expect(queried.has("microchat_connections")).toBe(true);
  });

  it("answers another method than GET with 405", async () => {
    const response = await fetch(`http://127.0.0.1:${node.port}/metrics`, { method: "POST" });
    expect(response.status).toBe(405);
  });
});

describe("GET /metrics of a single process", () => {
  it("serves the process's own metrics with one worker, and nothing with --metrics off", async () => {
    const common = ["--workers", "1", "--port", "0", "--store", "memory", "--drain-timeout-ms", "1000"];
    const on = await startNodeProcess(common);
    const off = await startNodeProcess([...common, "--metrics", "off"]);
    try {
      const token = await mintToken(DEV_JWT_SECRET, "solo");
      const solo = new ImClient({ transport: (await pinnedTransport(on.port)).transport, token, heartbeatIntervalMs: 1000 });
      solo.start();
      await waitFor(() => solo.idle(), "solo live");
      await solo.send({ toUserId: "other", body: "hi" });
      const samples = parseMetrics(await scrape(on.port));
      expect(sample(samples, "microchat_connections")).toBe(1);
      expect(sample(samples, "microchat_requests_total", { method: "Connect/send", code: "ok" })).toBe(1);
      await solo.close();
      const response = await fetch(`http://127.0.0.1:${off.port}/metrics`);
      expect(response.status).toBe(404);
    } finally {
      on.kill("SIGTERM");
      off.kill("SIGTERM");
      await Promise.all([on.exited, off.exited]);
    }
  });
});
