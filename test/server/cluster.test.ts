import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { createClient, type Transport } from "@connectrpc/connect";
import { createWritableIterable } from "@connectrpc/connect/protocol";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ImClient } from "../../client/im-client.js";
import { DisconnectReason, GatewayService, type ConnectRequest, type Disconnect } from "../../gen/im/v1/gateway_pb.js";
import { directConversationId } from "../../server/core/conversation-id.js";
import { DEV_JWT_SECRET, mintToken } from "../../server/gateway/auth.js";
import { resolveWorkerCount } from "../../server/cluster.js";
import { openSqliteMessageStore } from "../../server/store/sqlite-message-store.js";
import { fetchStats, pinnedTransport, startNodeProcess, type NodeProcess } from "../support/node-process.js";
import { recordMessages, waitFor } from "../support/test-server.js";

const dirs: string[] = [];
function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "cluster-test-"));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function startCluster(dir: string, extra: string[] = []): Promise<NodeProcess> {
  return startNodeProcess(["--workers", "2", "--port", "0", "--data-dir", dir, "--sqlite-sync", "normal", "--drain-timeout-ms", "5000", ...extra]);
}

function workerPids(node: NodeProcess): number[] {
  const line = node.logs.find((l) => l.msg.startsWith("cluster of"));
  return (line?.workers as number[] | undefined) ?? [];
}

/** Pids that answered /stats over `connections` new TCP connections. */
async function pidsAccepting(port: number, connections = 40): Promise<Set<number>> {
  const pids = new Set<number>();
  for (let i = 0; i < connections; i++) pids.add((await fetchStats(port)).pid);
  return pids;
}

/** A transport whose connection landed on the worker with `pid` (the kernel picks per connection). */
async function transportOn(port: number, pid: number): Promise<Transport> {
  for (let attempt = 0; attempt < 64; attempt++) {
    const pinned = await pinnedTransport(port);
    if (pinned.pid === pid) return pinned.transport;
    pinned.session.abort();
  }
  throw new Error(`no connection landed on worker ${pid} in 64 attempts`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const clients: ImClient[] = [];
async function client(userId: string, transport: Transport): Promise<ImClient> {
  const c = new ImClient({ transport, token: await mintToken(DEV_JWT_SECRET, userId), heartbeatIntervalMs: 1000, backoff: { baseMs: 20, maxMs: 200 } });
  clients.push(c);
  c.start();
  return c;
}
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});

describe("startCluster() through server/main.ts --workers 2", () => {
  let node: NodeProcess;
  beforeAll(async () => {
    node = await startCluster(dataDir());
  });
  afterAll(async () => {
    node?.kill("SIGTERM");
    await node?.exited;
  });

  it("runs two workers that each hold a listening socket on the one port, and both accept connections", async () => {
    const pids = workerPids(node);
    expect(pids).toHaveLength(2);
    expect(pids).not.toContain(node.child.pid);
    // The kernel's view: two LISTEN sockets on the port (SO_REUSEPORT), one per worker, none in the primary.
    const portHex = node.port.toString(16).toUpperCase().padStart(4, "0");
    const listening = readFileSync("/proc/net/tcp", "utf8")
      .split("\n")
      .filter((line) => line.trim().split(/\s+/)[1]?.endsWith(`:${portHex}`) && line.trim().split(/\s+/)[3] === "0A");
    expect(listening).toHaveLength(2);
    const ss = spawnSync("ss", ["-ltnpH", `sport = :${node.port}`], { encoding: "utf8" });
    if (ss.status === 0) {
      const owners = ss.stdout.trim().split("\n").map((l) => Number(/pid=(\d+)/.exec(l)?.[1]));
      expect(new Set(owners)).toEqual(new Set(pids));
    }
    // Connections spread over both (40 connections all on one worker: odds 2^-39).
    expect(await pidsAccepting(node.port)).toEqual(new Set(pids));
  });

  it("relays 1:1 and group messages between users on different workers, in order (no Redis)", async () => {
    const [w0, w1] = workerPids(node) as [number, number];
    const alice = await client("alice", await transportOn(node.port, w0));
    const bob = await client("bob", await transportOn(node.port, w1));
    const carol = await client("carol", await transportOn(node.port, w1));
    const seen = new Map([alice, bob, carol].map((c) => [c, recordMessages(c)]));
    await waitFor(() => alice.idle() && bob.idle() && carol.idle(), "clients live");
    const direct = directConversationId("alice", "bob");
    for (let i = 1; i <= 5; i++) {
      await alice.send({ toUserId: "bob", body: `a${i}` });
      await bob.send({ toUserId: "alice", body: `b${i}` });
    }
    const { conversation } = await alice.conversations.createGroup({ title: "trio", memberUserIds: ["bob", "carol"] });
    const group = conversation!.conversationId;
    for (let i = 1; i <= 5; i++) await [alice, bob, carol][i % 3]!.send({ conversationId: group, body: `g${i}` });
    const expectedDirect = [1, 2, 3, 4, 5].flatMap((i) => [`${direct}:${2 * i - 1}:a${i}`, `${direct}:${2 * i}:b${i}`]);
    const expectedGroup = [1, 2, 3, 4, 5].map((i) => `${group}:${i}:g${i}`);
    await waitFor(() => seen.get(bob)!.length === 15 && seen.get(alice)!.length === 15 && seen.get(carol)!.length === 5, "every push", 15_000);
    for (const c of [alice, bob]) {
      expect(seen.get(c)!.filter((s) => s.startsWith(direct))).toEqual(expectedDirect);
      expect(seen.get(c)!.filter((s) => s.startsWith(group))).toEqual(expectedGroup);
    }
    expect(seen.get(carol)).toEqual(expectedGroup);
    // The pushes crossed workers through the primary, not through a shared process.
    const stats = await Promise.all([0, 1, 2, 3, 4, 5].map(() => fetchStats(node.port)));
    expect(stats.some((s) => Number(s.routing?.broker?.received) > 0)).toBe(true);
    expect(stats.every((s) => s.routing?.kind === "ipc")).toBe(true);
  });

  it("pushes a group's messages to every device in seq order while members on both workers send at once", async () => {
    const [w0, w1] = workerPids(node) as [number, number];
    const senders = await Promise.all(["s0", "s1", "s2", "s3"].map(async (u, i) => client(u, await transportOn(node.port, i % 2 === 0 ? w0 : w1))));
    await waitFor(() => senders.every((c) => c.idle()), "senders live");
    const { conversation } = await senders[0]!.conversations.createGroup({ title: "order", memberUserIds: ["s1", "s2", "s3", "r0", "r1"] });
    const group = conversation!.conversationId;
    // Raw streams: the frames in the order the server pushed them, before any client reorders.
    const raw = await Promise.all(
      ["r0", "r1"].map(async (u, i) => {
        const gateway = createClient(GatewayService, await transportOn(node.port, i === 0 ? w0 : w1));
        const abort = new AbortController();
        const seqs: number[] = [];
        const headers = { authorization: `Bearer ${await mintToken(DEV_JWT_SECRET, u)}` };
        const requests = createWritableIterable<ConnectRequest>();
        void (async () => {
          for await (const response of gateway.connect(requests, { headers, signal: abort.signal })) {
            if (response.frame.case === "message" && response.frame.value.conversationId === group) seqs.push(Number(response.frame.value.seq));
          }
        })().catch(() => {});
        return { seqs, stop: () => abort.abort() };
      }),
    );
    await new Promise((r) => setTimeout(r, 300));
    const perSender = 50;
    await Promise.all(senders.map((c, k) => Promise.all(Array.from({ length: perSender }, (_, i) => c.send({ conversationId: group, body: `${k}.${i}` })))));
    await waitFor(() => raw.every((r) => r.seqs.length === senders.length * perSender), "every push at both receivers", 20_000);
    for (const r of raw) {
      r.stop();
      expect(r.seqs).toEqual([...r.seqs].sort((a, b) => a - b));
      expect(new Set(r.seqs).size).toBe(r.seqs.length);
    }
  });
});

describe("resolveWorkerCount()", () => {
  it.each([
    [0, "sqlite", availableParallelism()],
    [3, "sqlite", 3],
    [1, "cassandra", 1],
    [0, "memory", 1],
    [1, "memory", 1],
  ])("runs %i requested on %s as %i workers", (requested, store, expected) => {
    expect(resolveWorkerCount(requested, store)).toBe(expected);
  });

  it("refuses several workers on the memory store", () => {
    expect(() => resolveWorkerCount(2, "memory")).toThrow(/memory store is per process/);
  });
});

describe("supervision", () => {
  it("restarts a worker that crashes, and the new one shares the port", async () => {
    const node = await startCluster(dataDir());
    try {
      const [w0, w1] = workerPids(node) as [number, number];
      const bob = await client("bob", await transportOn(node.port, w1));
      await waitFor(() => bob.idle(), "bob live");
      process.kill(w1, "SIGKILL");
      await node.waitForLog((l) => l.msg === "worker exited unexpectedly" && l.workerPid === w1, "the crash to be noticed");
      const restarted = await node.waitForLog((l) => l.msg === "worker listening" && l.worker === 1 && l.workerPid !== w1, "the restart");
      const w2 = restarted.workerPid as number;
      await waitFor(() => bob.idle(), "bob back after reconnecting", 15_000);
      expect(await pidsAccepting(node.port)).toEqual(new Set([w0, w2]));
      expect(alive(node.child.pid!)).toBe(true);
    } finally {
      node.kill("SIGTERM");
      await node.exited;
    }
  });

  it("drains every worker on SIGTERM: SERVER_SHUTDOWN with a jittered delay, acknowledged sends stored, exit 0", async () => {
    const dir = dataDir();
    const node = await startCluster(dir, ["--reconnect-spread-ms", "3000"]);
    const acked: bigint[] = [];
    const disconnects: Disconnect[] = [];
    let sends: Promise<void>[] = [];
    const [w0, w1] = workerPids(node) as [number, number];
    try {
      const alice = await client("alice", await transportOn(node.port, w0));
      const bob = await client("bob", await transportOn(node.port, w1));
      for (const c of [alice, bob]) c.on("disconnect", (d) => disconnects.push(d));
      await waitFor(() => alice.idle() && bob.idle(), "clients live");
      // Sends in flight when the signal arrives either finish (and are stored) or stay unacknowledged.
      sends = Array.from({ length: 30 }, (_, i) => alice.send({ toUserId: "bob", body: `m${i}` }).then((r) => void acked.push(r.seq), () => {}));
      await waitFor(() => acked.length > 0, "a first acknowledgement");
    } finally {
      node.kill("SIGTERM");
    }
    const exit = await node.exited;
    expect(exit).toEqual({ code: 0, signal: null });
    expect([w0, w1].some(alive)).toBe(false);
    expect(disconnects.map((d) => d.reason)).toEqual([DisconnectReason.SERVER_SHUTDOWN, DisconnectReason.SERVER_SHUTDOWN]);
    for (const d of disconnects) expect(d.reconnectAfterMs).toBeLessThanOrEqual(3000);
    expect(node.logs.filter((l) => l.msg === "stopped").length).toBe(3);
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await Promise.all(sends);
    const store = openSqliteMessageStore({ path: join(dir, "im.sqlite") });
    try {
      const stored = await store.readRange(directConversationId("alice", "bob"), 0, undefined, 100);
      const storedSeqs = new Set(stored.map((m) => BigInt(m.seq)));
      for (const seq of acked) expect(storedSeqs.has(seq)).toBe(true);
    } finally {
      await store.close();
    }
  });

  it("workers exit when the primary dies (no orphans holding the port)", async () => {
    const node = await startCluster(dataDir());
    const pids = workerPids(node);
    expect(pids).toHaveLength(2);
    node.kill("SIGKILL");
    await node.exited;
    await waitFor(() => !pids.some(alive), "workers to exit", 15_000);
  });

  it("refuses several workers on the per-process memory store", async () => {
    const error = await startNodeProcess(["--workers", "2", "--store", "memory", "--port", "0"]).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.message).toMatch(/memory store is per process/);
  });
});
