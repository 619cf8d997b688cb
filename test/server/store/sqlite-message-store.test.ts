import { execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { DatabaseSync } from "node:sqlite";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { StoreUnavailableError } from "../../../server/core/result.js";
import type { AppendResult, NewMessage } from "../../../server/store/message-store.js";
import {
  openSqliteMessageStore,
  SQLITE_SCHEMA_VERSION,
  type SqliteMessageStore,
  type SqliteMessageStoreOptions,
} from "../../../server/store/sqlite-message-store.js";
import { describeMessageStoreContract } from "./message-store-contract.js";

const dir = mkdtempSync(join(tmpdir(), "sqlite-message-store-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let fileCounter = 0;
let lastPath = "";
function freshPath(): string {
  lastPath = join(dir, `nested/db-${++fileCounter}.sqlite`);
  return lastPath;
}

describeMessageStoreContract("SqliteMessageStore in memory", () => openSqliteMessageStore({ path: ":memory:" }));

describeMessageStoreContract("SqliteMessageStore on a file", () => openSqliteMessageStore({ path: freshPath() }), {
  durable: { reopen: () => openSqliteMessageStore({ path: lastPath }) },
});

// Small batches, so that every contract test also crosses transaction boundaries.
describeMessageStoreContract(
  "SqliteMessageStore on a file, 7 writes or 2 KiB per transaction",
  () => openSqliteMessageStore({ path: freshPath(), batchWritesMax: 7, batchBytesMax: 2048 }),
  { durable: { reopen: () => openSqliteMessageStore({ path: lastPath, batchWritesMax: 7, batchBytesMax: 2048 }) } },
);

function message(senderId: string, clientMsgId: string): NewMessage {
  return {
    conversationId: "g:shared",
    senderId,
    clientMsgId,
    messageId: `${senderId}-${clientMsgId}`,
    sentAtMs: 1,
    contentType: "text/plain",
    data: new TextEncoder().encode(clientMsgId),
  };
}

describe("SqliteMessageStore on a shared file", () => {
  const opened: SqliteMessageStore[] = [];
  const openOn = (path: string, busyTimeoutMs?: number): SqliteMessageStore => {
    const store = openSqliteMessageStore({ path, ...(busyTimeoutMs === undefined ? {} : { busyTimeoutMs }) });
    opened.push(store);
    return store;
  };
  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close();
  });

  it("keeps seqs unique and the chain exact when two stores (worker processes) interleave appends", async () => {
    const path = freshPath();
    const a = openOn(path);
    const b = openOn(path);
    await a.createGroup({ id: "g:shared", title: "", ownerId: "w1", createdAtMs: 1 }, ["w2"]);
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) => (i % 3 === 0 ? a : b).append(message(i % 3 === 0 ? "w1" : "w2", `c${i}`))),
    );
    // Each one retries its first ten appends through the other store: all duplicates.
    for (let i = 0; i < 10; i++) {
      const retry = await (i % 3 === 0 ? b : a).append(message(i % 3 === 0 ? "w1" : "w2", `c${i}`));
      expect(retry).toEqual({ message: results[i]!.message, duplicate: true });
    }
    expect(results.map((r) => r.message.seq).sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    for (const store of [a, b]) {
      const log = await store.readRange("g:shared", 0, undefined, 1_000);
      expect(log.map((m) => [m.seq, m.prevSeq])).toEqual(log.map((_, i) => [i + 1, i]));
      expect((await store.getConversation("g:shared"))?.lastSeq).toBe(100);
    }
  });

  it("keeps seqs unique and the chain exact when two real processes append at once", async () => {
    const path = freshPath();
    const setup = openOn(path);
    await setup.createGroup({ id: "g:shared", title: "", ownerId: "w1", createdAtMs: 1 }, ["w2"]);
    const worker = join(dir, "append-worker.mts");
    const storeUrl = new URL("../../../server/store/sqlite-message-store.ts", import.meta.url).href;
    writeFileSync(
      worker,
      `import { existsSync, writeFileSync } from "node:fs";
      import { openSqliteMessageStore } from ${JSON.stringify(storeUrl)};
      const [path, sender, count] = process.argv.slice(2);
      const store = openSqliteMessageStore({ path });
      // A barrier, so the two processes really append at the same time.
      writeFileSync(path + "." + sender + ".ready", "");
      while (!existsSync(path + ".w1.ready") || !existsSync(path + ".w2.ready")) await new Promise((r) => setTimeout(r, 2));
      for (let i = 0; i < Number(count); i++) {
        await store.append({ conversationId: "g:shared", senderId: sender, clientMsgId: "c" + i, messageId: sender + i,
          sentAtMs: 1, contentType: "text/plain", data: new Uint8Array([i & 0xff]) });
        // Like a worker between requests; without a pause SQLite's busy wait lets one writer hog the lock.
        await new Promise((r) => setTimeout(r, 1));
      }
      await store.close();`,
    );
    const run = (sender: string) => promisify(execFile)(process.execPath, ["--import", "tsx", worker, path, sender, "150"]);
    await Promise.all([run("w1"), run("w2")]);
    const log = await setup.readRange("g:shared", 0, undefined, 1_000);
    expect(log.map((m) => [m.seq, m.prevSeq])).toEqual(Array.from({ length: 300 }, (_, i) => [i + 1, i]));
    for (const sender of ["w1", "w2"]) {
      expect(log.filter((m) => m.senderId === sender).map((m) => m.clientMsgId)).toEqual(Array.from({ length: 150 }, (_, i) => `c${i}`));
    }
  });

  it("reopens a file written with the schema, which keeps its version", async () => {
    const path = freshPath();
    const first = openOn(path);
    await first.createGroup({ id: "g:shared", title: "kept", ownerId: "w1", createdAtMs: 1 }, []);
    await first.append(message("w1", "c1"));
    await first.close();
    const second = openOn(path);
    expect(await second.getConversation("g:shared")).toMatchObject({ title: "kept", lastSeq: 1, memberCount: 1 });
    await second.close();
    const raw = new DatabaseSync(path);
    try {
      expect(raw.prepare("PRAGMA user_version").get()).toEqual({ user_version: SQLITE_SCHEMA_VERSION });
      expect(raw.prepare("PRAGMA journal_mode").get()).toEqual({ journal_mode: "wal" });
    } finally {
      raw.close();
    }
  });

  it("refuses a file with a newer schema", () => {
    const path = freshPath();
    openOn(path);
    const raw = new DatabaseSync(path);
    raw.exec(`PRAGMA user_version = ${SQLITE_SCHEMA_VERSION + 1}`);
    raw.close();
    expect(() => openSqliteMessageStore({ path })).toThrow(/newer/);
  });

  it("rejects with StoreUnavailableError, keeping the cause, while another process holds the write lock", async () => {
    const path = freshPath();
    const store = openOn(path, 20);
    await store.createGroup({ id: "g:shared", title: "", ownerId: "w1", createdAtMs: 1 }, []);
    const other = new DatabaseSync(path);
    other.exec("BEGIN IMMEDIATE");
    try {
      const error: unknown = await store.append(message("w1", "c1")).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StoreUnavailableError);
      expect((error as StoreUnavailableError).cause).toMatchObject({ errcode: 5 });
    } finally {
      other.exec("ROLLBACK");
      other.close();
    }
    expect((await store.append(message("w1", "c1"))).message.seq).toBe(1);
  });
});

/**
 * Commit records in the file's WAL: one per committed transaction since the WAL last restarted
 * (the files here stay far below the auto-checkpoint size, so it never does). Read from the
 * file itself, independent of the store's own onCommit hook.
 */
function walCommits(path: string): number {
  const wal = readFileSync(`${path}-wal`);
  if (wal.length < 32) return 0;
  const pageSize = wal.readUInt32BE(8);
  const salt = wal.subarray(16, 24);
  let commits = 0;
  for (let at = 32; at + 24 + pageSize <= wal.length; at += 24 + pageSize) {
    if (!wal.subarray(at + 8, at + 16).equals(salt)) break;
    if (wal.readUInt32BE(at + 4) !== 0) commits++;
  }
  return commits;
}

describe("SqliteMessageStore group commit", () => {
  const opened: SqliteMessageStore[] = [];
  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close();
  });

  /** A store on a fresh file with g:shared (members w1, w2) and d:w1:w2; `commits` lists each transaction's writes from then on. */
  async function setup(options: Partial<SqliteMessageStoreOptions> = {}) {
    const path = freshPath();
    const commits: number[] = [];
    const store = openSqliteMessageStore({ path, ...options, onCommit: (writes) => commits.push(writes) });
    opened.push(store);
    await store.createGroup({ id: "g:shared", title: "", ownerId: "w1", createdAtMs: 1 }, ["w2"]);
    await store.ensureDirect("d:w1:w2", "w1", "w2", 1);
    commits.length = 0;
    return { path, store, commits, walBefore: walCommits(path) };
  }

  const inDirect = (clientMsgId: string): NewMessage => ({ ...message("w1", clientMsgId), conversationId: "d:w1:w2" });

  it.each([
    { batchWritesMax: undefined, transactions: [105] },
    { batchWritesMax: 40, transactions: [40, 40, 25] },
    { batchWritesMax: 1, transactions: Array.from({ length: 105 }, () => 1) },
  ])("commits the writes issued in one turn in $transactions.length transaction(s) with batchWritesMax=$batchWritesMax", async ({ batchWritesMax, transactions }) => {
    const { path, store, commits, walBefore } = await setup(batchWritesMax === undefined ? {} : { batchWritesMax });
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < 100; i++) writes.push(store.append(i % 4 === 0 ? inDirect(`c${i}`) : message("w2", `c${i}`)));
    for (let i = 0; i < 5; i++) writes.push(store.markRead("w2", "g:shared", i + 1));
    await Promise.all(writes);
    expect(commits).toEqual(transactions);
    expect(walCommits(path) - walBefore).toBe(transactions.length);
    const log = await store.readRange("g:shared", 0, undefined, 1_000);
    expect(log.map((m) => [m.seq, m.prevSeq])).toEqual(log.map((_, i) => [i + 1, i]));
    expect(log).toHaveLength(75);
    expect((await store.listSessions("w2", 10)).find((s) => s.conversationId === "g:shared")?.readSeq).toBe(5);
  });

  it("bounds a transaction by bytes, and commits a single larger write alone", async () => {
    const { store, commits } = await setup({ batchBytesMax: 10_000 });
    const big = (i: number, length: number): NewMessage => ({ ...message("w1", `c${i}`), data: new Uint8Array(length).fill(i) });
    const results = await Promise.all([
      ...Array.from({ length: 30 }, (_, i) => store.append(big(i, 1_000))),
      store.append(big(30, 20_000)),
      store.append(big(31, 1_000)),
    ]);
    expect(commits.reduce((a, b) => a + b, 0)).toBe(32);
    // At most 9 bodies of 1000 bytes fit in 10 000 bytes with their ids; the 20 000-byte one is alone.
    expect(Math.max(...commits)).toBeLessThanOrEqual(9);
    expect(commits.length).toBeGreaterThanOrEqual(5);
    expect(commits).toContain(1);
    expect(results.map((r) => r.message.seq)).toEqual(Array.from({ length: 32 }, (_, i) => i + 1));
  });

  it("answers a clientMsgId repeated within one transaction with the first result and writes it once", async () => {
    const { store, commits } = await setup();
    const results = await Promise.all([
      store.append(message("w1", "k")),
      store.append(message("w2", "x")),
      store.append({ ...message("w1", "k"), data: new Uint8Array([9]) }),
      store.append(message("w1", "k")),
    ]);
    expect(commits).toEqual([4]);
    expect(results.map((r) => r.duplicate)).toEqual([false, false, true, true]);
    expect(results[2]!.message).toEqual(results[0]!.message);
    expect(results[3]!.message).toEqual(results[0]!.message);
    expect((await store.readRange("g:shared", 0, undefined, 10)).map((m) => m.clientMsgId)).toEqual(["k", "x"]);
  });

  it("moves heads once per transaction to the last append, and lets a write after appends in the same transaction see them", async () => {
    const { store, commits } = await setup();
    const at = (clientMsgId: string, sentAtMs: number): NewMessage => ({ ...inDirect(clientMsgId), sentAtMs });
    const [, , record, , , last] = await Promise.all([
      store.append(at("a", 5_000)),
      store.append(at("b", 9_000)),
      // ensureDirect of an existing conversation returns its record: with the two appends before it.
      store.ensureDirect("d:w1:w2", "w1", "w2", 1),
      store.append(at("c", 7_000)),
      store.append(at("d", 6_000)),
      store.append(message("w2", "g1")),
    ]);
    expect(commits).toEqual([6]);
    expect(record).toMatchObject({ lastSeq: 2, lastMessage: { clientMsgId: "b", seq: 2 } });
    for (const user of ["w1", "w2"]) {
      const session = (await store.listSessions(user, 10)).find((s) => s.conversationId === "d:w1:w2");
      // The newest activity among the four, not the last one's.
      expect(session).toMatchObject({ lastSeq: 4, updatedAtMs: 9_000, lastMessage: { clientMsgId: "d", seq: 4, prevSeq: 3 } });
    }
    expect(await store.getConversation("d:w1:w2")).toMatchObject({ lastSeq: 4, lastMessage: { clientMsgId: "d" } });
    expect(await store.getConversation("g:shared")).toMatchObject({ lastSeq: last!.message.seq, lastMessage: { clientMsgId: "g1" } });
  });

  it("commits the other writes of a transaction when one throws a bug's error, and rejects that one alone", async () => {
    const { path, store, commits, walBefore } = await setup();
    const outcomes = await Promise.allSettled([
      store.append(message("w1", "a")),
      store.append({ ...message("w1", "b"), conversationId: "g:nowhere" }),
      store.append(message("w2", "c")),
      store.createGroup({ id: "g:shared", title: "again", ownerId: "w1", createdAtMs: 2 }, []),
      store.markRead("w2", "g:shared", 1),
      store.append(message("w1", "d")),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(["fulfilled", "rejected", "fulfilled", "rejected", "fulfilled", "fulfilled"]);
    for (const i of [1, 3]) expect((outcomes[i] as PromiseRejectedResult).reason).not.toBeInstanceOf(StoreUnavailableError);
    expect(((outcomes[3] as PromiseRejectedResult).reason as Error).message).toMatch(/exists/);
    // The batch ran again without the failed writes: one transaction committed.
    expect(commits).toEqual([6]);
    expect(walCommits(path) - walBefore).toBe(1);
    const log = await store.readRange("g:shared", 0, undefined, 10);
    expect(log.map((m) => [m.clientMsgId, m.seq, m.prevSeq])).toEqual([["a", 1, 0], ["c", 2, 1], ["d", 3, 2]]);
    expect((await store.getConversation("g:shared"))?.title).toBe("");
  });

  it("rejects every write of a transaction that cannot start with StoreUnavailableError; their retries then commit once", async () => {
    const { path, store } = await setup({ busyTimeoutMs: 20 });
    const other = new DatabaseSync(path);
    other.exec("BEGIN IMMEDIATE");
    let outcomes: PromiseSettledResult<unknown>[];
    try {
      outcomes = await Promise.allSettled([
        store.append(message("w1", "a")),
        store.append(inDirect("b")),
        store.markRead("w2", "g:shared", 1),
      ]);
    } finally {
      other.exec("ROLLBACK");
      other.close();
    }
    for (const o of outcomes) expect((o as PromiseRejectedResult).reason).toBeInstanceOf(StoreUnavailableError);
    const retried = await Promise.all([store.append(message("w1", "a")), store.append(inDirect("b"))]);
    expect(retried.map((r) => [r.duplicate, r.message.seq])).toEqual([[false, 1], [false, 1]]);
  });

  it("bounds the writes waiting for a transaction: one more rejects with StoreUnavailableError, after the earlier ones settled", async () => {
    const { store } = await setup({ writeQueueMax: 5 });
    const order: string[] = [];
    const writes = Array.from({ length: 7 }, (_, i) =>
      store.append(message("w1", `c${i}`)).then(
        (r) => order.push(`ok ${r.message.seq}`),
        (e: unknown) => order.push(e instanceof StoreUnavailableError ? `unavailable ${i}` : `error ${i}`),
      ),
    );
    await Promise.all(writes);
    expect(order).toEqual(["ok 1", "ok 2", "ok 3", "ok 4", "ok 5", "unavailable 5", "unavailable 6"]);
  });

  it("commits the writes still queued when it closes; they survive a reopen", async () => {
    const { path, store } = await setup();
    const pending: Promise<AppendResult>[] = Array.from({ length: 50 }, (_, i) => store.append(message("w1", `c${i}`)));
    await store.close();
    const results = await Promise.all(pending);
    const reopened = openSqliteMessageStore({ path });
    opened.push(reopened);
    expect(await reopened.readRange("g:shared", 0, undefined, 100)).toEqual(results.map((r) => r.message));
    await expect(store.append(message("w1", "late"))).rejects.toThrow(/closed/);
  });
});

describe("SqliteMessageStore group commit across processes", () => {
  const storeUrl = new URL("../../../server/store/sqlite-message-store.ts", import.meta.url).href;
  const worker = join(dir, "batch-worker.mts");
  // A gateway process: keeps `inFlight` appends to g:shared in flight (each acknowledgement
  // issues the next) until it has issued `count`, printing "ACK <clientMsgId> <seq>" for each
  // acknowledged append and "COMMIT <writes>" for each transaction. Then waits `thenWaitMs`.
  writeFileSync(
    worker,
    `import { existsSync, writeFileSync } from "node:fs";
    import { openSqliteMessageStore } from ${JSON.stringify(storeUrl)};
    const o = JSON.parse(process.argv[2]);
    const store = openSqliteMessageStore({ path: o.path, onCommit: (n) => process.stdout.write("COMMIT " + n + "\\n") });
    writeFileSync(o.path + "." + o.sender + ".ready", "");
    for (const other of o.barrier ?? []) while (!existsSync(o.path + "." + other + ".ready")) await new Promise((r) => setTimeout(r, 2));
    let issued = 0;
    const writer = async () => {
      while (issued < o.count) {
        const clientMsgId = "c" + issued++;
        const r = await store.append({ conversationId: "g:shared", senderId: o.sender, clientMsgId, messageId: o.sender + clientMsgId,
          sentAtMs: 1, contentType: "text/plain", data: new TextEncoder().encode(clientMsgId) });
        process.stdout.write("ACK " + clientMsgId + " " + r.message.seq + "\\n");
      }
    };
    await Promise.all(Array.from({ length: o.inFlight }, writer));
    if (o.thenWaitMs) await new Promise((r) => setTimeout(r, o.thenWaitMs));
    await store.close();`,
  );

  interface Writer {
    readonly acks: Map<string, number>;
    readonly commits: number[];
    readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
    readonly stderr: string[];
    kill(): void;
  }

  function startWriter(options: Record<string, unknown>): Writer {
    const child = spawn(process.execPath, ["--import", "tsx", worker, JSON.stringify(options)], { stdio: ["ignore", "pipe", "pipe"] });
    const acks = new Map<string, number>();
    const commits: number[] = [];
    const stderr: string[] = [];
    let buffered = "";
    child.stdout.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const line of lines) {
        const [kind, a, b] = line.split(" ");
        if (kind === "ACK") acks.set(a!, Number(b));
        if (kind === "COMMIT") commits.push(Number(a));
      }
    });
    child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk.toString()));
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once("exit", (code, signal) => resolve({ code, signal })),
    );
    return { acks, commits, exit, stderr, kill: () => child.kill("SIGKILL") };
  }

  async function sharedFile(): Promise<string> {
    const path = freshPath();
    const setup = openSqliteMessageStore({ path });
    await setup.createGroup({ id: "g:shared", title: "", ownerId: "w1", createdAtMs: 1 }, ["w2"]);
    await setup.close();
    return path;
  }

  it("keeps every acknowledged append of a batch across SIGKILL of the writer process", async () => {
    const path = await sharedFile();
    const writer = startWriter({ path, sender: "w1", count: 1_000_000, inFlight: 64 });
    await expect.poll(() => writer.acks.size, { timeout: 60_000, interval: 5 }).toBeGreaterThanOrEqual(2_000);
    writer.kill();
    expect(await writer.exit).toEqual({ code: null, signal: "SIGKILL" });
    // It wrote in batches: far fewer transactions than acknowledged appends.
    expect(Math.max(...writer.commits)).toBeGreaterThan(1);
    expect(writer.commits.length).toBeLessThan(writer.acks.size / 4);

    const store = openSqliteMessageStore({ path });
    try {
      const log = await store.readRange("g:shared", 0, undefined, 1_000_000);
      expect(log.map((m) => [m.seq, m.prevSeq])).toEqual(log.map((_, i) => [i + 1, i]));
      const bySeq = new Map(log.map((m) => [m.seq, m.clientMsgId]));
      const lost = [...writer.acks].filter(([clientMsgId, seq]) => bySeq.get(seq) !== clientMsgId);
      expect(lost).toEqual([]);
      expect((await store.getConversation("g:shared"))?.lastSeq).toBe(log.length);
      const [someAck] = writer.acks;
      expect((await store.append(message("w1", someAck![0]))).duplicate).toBe(true);
    } finally {
      await store.close();
    }
  }, 90_000);

  it("keeps seqs unique, the chain exact and each process's issue order when two processes commit batches at once", async () => {
    const path = await sharedFile();
    const count = 600;
    const writers = ["w1", "w2"].map((sender) => startWriter({ path, sender, count, inFlight: 32, barrier: ["w1", "w2"] }));
    const exits = await Promise.all(writers.map((w) => w.exit));
    expect(exits, writers.map((w) => w.stderr.join("")).join("\n")).toEqual([{ code: 0, signal: null }, { code: 0, signal: null }]);
    for (const w of writers) expect(Math.max(...w.commits)).toBeGreaterThan(1);

    const store = openSqliteMessageStore({ path });
    try {
      const log = await store.readRange("g:shared", 0, undefined, 10_000);
      expect(log.map((m) => [m.seq, m.prevSeq])).toEqual(Array.from({ length: 2 * count }, (_, i) => [i + 1, i]));
      for (const [i, sender] of ["w1", "w2"].entries()) {
        // Each process issued c0, c1, ... in order: the log holds them in that order.
        expect(log.filter((m) => m.senderId === sender).map((m) => m.clientMsgId)).toEqual(Array.from({ length: count }, (_, k) => `c${k}`));
        for (const [clientMsgId, seq] of writers[i]!.acks) expect(log[seq - 1]?.clientMsgId).toBe(clientMsgId);
      }
    } finally {
      await store.close();
    }
  }, 90_000);
});
