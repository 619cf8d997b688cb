import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { StoredMessage } from "../../../server/core/model.js";
import { StoreUnavailableError } from "../../../server/core/result.js";
import {
  CassandraMessageStore,
  openCassandraMessageStore,
  type CassandraMessageStoreOptions,
} from "../../../server/store/cassandra-message-store.js";
import { CassandraSession } from "../../../server/store/cassandra-session.js";
import { bucketOf, messageTimestamp } from "../../../server/store/cassandra-rows.js";
import { SEQS_PER_BUCKET } from "../../../server/store/cassandra-schema.js";
import type { AppendResult, NewMessage } from "../../../server/store/message-store.js";
import { dropKeyspace, rawClient, sharedCassandraContactPoint, uniqueKeyspace } from "../../support/cassandra.js";

vi.setConfig({ testTimeout: 60_000 });

const contactPoint = sharedCassandraContactPoint();
const keyspace = uniqueKeyspace("seqlog");
const raw = rawClient(contactPoint);
const opened: CassandraMessageStore[] = [];
let conversationCounter = 0;

function openStore(processId: string, extra: Partial<CassandraMessageStoreOptions> = {}): Promise<CassandraMessageStore> {
  return openCassandraMessageStore({
    contactPoints: [contactPoint],
    localDataCenter: "datacenter1",
    keyspace,
    processId,
    lease: { leaseMs: 2_000, clockSkewMaxMs: 200, blockSize: 100 },
    ...extra,
  }).then((store) => {
    opened.push(store);
    return store;
  });
}

function message(conversationId: string, senderId: string, clientMsgId: string): NewMessage {
  return { conversationId, senderId, clientMsgId, messageId: `${senderId}-${clientMsgId}`, sentAtMs: 1_000, contentType: "text/plain", data: new TextEncoder().encode(clientMsgId) };
}

/** A new group with members w1..w3 and a fresh id, so tests never share a log. */
async function newGroup(store: CassandraMessageStore): Promise<string> {
  const id = `g:log${++conversationCounter}`;
  await store.createGroup({ id, title: "", ownerId: "w1", createdAtMs: 1 }, ["w2", "w3"]);
  return id;
}

/** The log is chained: strictly increasing seqs, each prevSeq naming the message before. */
function expectChained(log: readonly StoredMessage[]): void {
  log.forEach((m, i) => {
    const before = i === 0 ? 0 : log[i - 1]!.seq;
    expect(m.seq).toBeGreaterThan(before);
    expect(m.prevSeq).toBe(before);
  });
}

async function leaseRow(id: string) {
  return (await raw.execute(`SELECT * FROM ${keyspace}.seq_leases WHERE conversation_id = ?`, [id])).first();
}

/** Rewrites the lease row as a process that died holding it, long enough ago that it has expired. */
async function markOwnerCrashed(id: string): Promise<{ generation: number; blockEnd: number }> {
  const row = await leaseRow(id);
  await raw.execute(
    `UPDATE ${keyspace}.seq_leases SET version = ?, owner = 'crashed-process', lease_until_ms = ?, clean_seq = -1 WHERE conversation_id = ? IF version = ?`,
    [BigInt(row.get("version")) + 1n, BigInt(Date.now() - 60_000), id, row.get("version")],
  );
  return { generation: Number(row.get("generation")), blockEnd: Number(row.get("block_end")) };
}

/** Writes a message row (and dedup row) as the owner of `generation` would: the raw bytes of a late or half-done append. */
async function writeAsOwner(generation: number, m: StoredMessage, withHead: boolean): Promise<void> {
  const ts = messageTimestamp(generation, m.seq);
  await raw.execute(
    `INSERT INTO ${keyspace}.messages (conversation_id, bucket, seq, prev_seq, message_id, sender_id, sent_at_ms, content_type, data, client_msg_id)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?`,
    [m.conversationId, BigInt(bucketOf(m.seq, SEQS_PER_BUCKET)), BigInt(m.seq), BigInt(m.prevSeq), m.messageId, m.senderId, BigInt(m.sentAtMs), m.contentType, Buffer.from(m.data), m.clientMsgId, ts],
  );
  await raw.execute(`INSERT INTO ${keyspace}.client_msg_ids (conversation_id, sender_id, client_msg_id, seq) VALUES (?, ?, ?, ?) USING TIMESTAMP ?`, [
    m.conversationId, m.senderId, m.clientMsgId, BigInt(m.seq), ts,
  ]);
  if (withHead) {
    await raw.execute(
      `UPDATE ${keyspace}.conversations USING TIMESTAMP ? SET last_seq = ?, last_prev_seq = ?, last_message_id = ?, last_sender_id = ?, last_sent_at_ms = ?,
       last_content_type = ?, last_data = ?, last_client_msg_id = ? WHERE conversation_id = ?`,
      [ts, BigInt(m.seq), BigInt(m.prevSeq), m.messageId, m.senderId, BigInt(m.sentAtMs), m.contentType, Buffer.from(m.data), m.clientMsgId, m.conversationId],
    );
  }
}

function rawMessage(conversationId: string, seq: number, prevSeq: number, clientMsgId: string): StoredMessage {
  return { ...message(conversationId, "w1", clientMsgId), seq, prevSeq };
}

beforeAll(async () => {
  await (await openCassandraMessageStore({ contactPoints: [contactPoint], localDataCenter: "datacenter1", keyspace })).close();
  await raw.connect();
});
afterEach(async () => {
  for (const store of opened.splice(0)) await store.close();
});
afterAll(async () => {
  await raw.shutdown();
  await dropKeyspace(contactPoint, keyspace);
});

describe("CassandraConversationLog: sequence ownership", () => {
  it("hands a conversation back and forth between two stores without skipping a seq", async () => {
    const a = await openStore("a");
    const b = await openStore("b");
    const id = await newGroup(a);
    const results = [];
    for (let i = 0; i < 12; i++) results.push(await (i % 2 === 0 ? a : b).append(message(id, i % 2 === 0 ? "w1" : "w2", `c${i}`)));
    // Both at once, too: one waits for the other's handover.
    results.push(...(await Promise.all([a.append(message(id, "w1", "x1")), b.append(message(id, "w2", "x2")), a.append(message(id, "w1", "x3"))])));
    const log = await a.readRange(id, 0, undefined, 100);
    expect(log.map((m) => m.seq)).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
    expectChained(log);
    expect(log).toEqual(results.map((r) => r.message).sort((x, y) => x.seq - y.seq));
  });

  it("takes over from a crashed owner after its lease, skips the reserved block and links prevSeq to the last message", async () => {
    const a = await openStore("a");
    const id = await newGroup(a);
    for (let i = 0; i < 3; i++) await a.append(message(id, "w1", `a${i}`));
    await a.close();
    const { blockEnd } = await markOwnerCrashed(id);
    const b = await openStore("b");
    const next = await b.append(message(id, "w2", "b0"));
    expect(next.message).toMatchObject({ seq: blockEnd + 1, prevSeq: 3 });
    const log = await b.readRange(id, 0, undefined, 100);
    expect(log.map((m) => m.seq)).toEqual([1, 2, 3, blockEnd + 1]);
    expectChained(log);
    expect((await leaseRow(id)).get("generation")).toBe(2n);
  });

  it("makes a message written just before the owner crashed visible, and answers its retry as a duplicate", async () => {
    const a = await openStore("a");
    const id = await newGroup(a);
    await a.append(message(id, "w1", "a0"));
    await a.append(message(id, "w1", "a1"));
    await a.close();
    const { generation, blockEnd } = await markOwnerCrashed(id);
    // The crashed owner wrote seq 3 (and its dedup row) but died before moving the head.
    await writeAsOwner(generation, rawMessage(id, 3, 2, "half-done"), false);
    const b = await openStore("b");
    expect((await b.getConversation(id))?.lastSeq).toBe(2);
    const retry = await b.append(message(id, "w1", "half-done"));
    expect(retry.duplicate).toBe(true);
    expect(retry.message).toMatchObject({ seq: 3, prevSeq: 2, clientMsgId: "half-done" });
    expect((await b.getConversation(id))?.lastSeq).toBe(3);
    const next = await b.append(message(id, "w2", "b0"));
    expect(next.message).toMatchObject({ seq: blockEnd + 1, prevSeq: 3 });
    expectChained(await b.readRange(id, 0, undefined, 100));
  });

  it("fences writes of a deposed owner that arrive after the takeover: message, head and dedup row stay invisible", async () => {
    const a = await openStore("a");
    const id = await newGroup(a);
    await a.append(message(id, "w1", "a0"));
    await a.close();
    const { generation, blockEnd } = await markOwnerCrashed(id);
    const b = await openStore("b");
    const first = await b.append(message(id, "w2", "b0"));
    expect(first.message).toMatchObject({ seq: blockEnd + 1, prevSeq: 1 });
    // The old owner's append of seq 2 was delayed and lands only now, head and all.
    await writeAsOwner(generation, rawMessage(id, 2, 1, "late"), true);
    expect((await b.readRange(id, 0, undefined, 100)).map((m) => m.seq)).toEqual([1, blockEnd + 1]);
    expect((await b.getConversation(id))?.lastSeq).toBe(blockEnd + 1);
    // Its dedup row points at a fenced message: the client's retry is a new message.
    const retry = await b.append(message(id, "w1", "late"));
    expect(retry.duplicate).toBe(false);
    expect(retry.message).toMatchObject({ seq: blockEnd + 2, prevSeq: blockEnd + 1 });
    expectChained(await b.readRange(id, 0, undefined, 100));
  });

  it("hides a late write that lands before the new owner's first append", async () => {
    const a = await openStore("a");
    const id = await newGroup(a);
    await a.append(message(id, "w1", "a0"));
    await a.close();
    const { generation } = await markOwnerCrashed(id);
    const b = await openStore("b");
    await b.append(message(id, "w2", "b0"));
    const blockEnd = Number((await leaseRow(id)).get("block_end"));
    await b.close();
    // b released cleanly; a write of generation 1 (older than b's takeover) must still lose.
    await writeAsOwner(generation, rawMessage(id, 5, 1, "late"), true);
    const c = await openStore("c");
    expect((await c.getConversation(id))?.lastSeq).toBe(blockEnd - 99);
    const next = await c.append(message(id, "w3", "c0"));
    expect(next.message.prevSeq).toBe(blockEnd - 99);
    const log = await c.readRange(id, 0, undefined, 100);
    expect(log.map((m) => m.clientMsgId)).toEqual(["a0", "b0", "c0"]);
    expectChained(log);
  });

  it("fails with StoreUnavailableError, not forever, while a live owner never lets go", async () => {
    const a = await openStore("a");
    const id = await newGroup(a);
    await raw.execute(
      `INSERT INTO ${keyspace}.seq_leases (conversation_id, version, generation, owner, lease_until_ms, block_end, clean_seq, handoff_to, handoff_until_ms)
       VALUES (?, 1, 1, 'stuck-process', ?, 100, -1, '', 0)`,
      [id, BigInt(Date.now() + 600_000)],
    );
    const b = await openStore("b", { lease: { leaseMs: 2_000, clockSkewMaxMs: 200, acquireTimeoutMs: 500 } });
    const error: unknown = await b.append(message(id, "w2", "b0")).catch((e: unknown) => e);
    // It gave up at its own acquire bound, not at some later timeout.
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect((error as Error).message).toContain("did not hand it over within 500 ms");
    expect(await b.readRange(id, 0, undefined, 10)).toEqual([]);
  });

  it("releases an idle conversation cleanly, so the next owner continues without a gap", async () => {
    const a = await openStore("a", { log: { holdIdleMs: 50, wantCheckMs: 20 } });
    const id = await newGroup(a);
    await a.append(message(id, "w1", "a0"));
    await expect.poll(() => a.ownedConversationCount(), { timeout: 5_000 }).toBe(0);
    const row = await leaseRow(id);
    expect({ owner: row.get("owner"), clean: row.get("clean_seq") }).toEqual({ owner: "", clean: 1n });
    const b = await openStore("b");
    expect((await b.append(message(id, "w2", "b0"))).message).toMatchObject({ seq: 2, prevSeq: 1 });
  });
});

/** A session that counts the writes in flight per kind and lets a test delay or fail one. */
class ObservedSession extends CassandraSession {
  readonly inFlight = { message: 0, head: 0 };
  readonly maxInFlight = { message: 0, head: 0 };
  readonly count = { message: 0, head: 0 };
  /** Runs before each write; what it throws or rejects with, the write does. */
  beforeWrite: (query: string, params: readonly unknown[]) => Promise<void> | void = () => {};

  override async write(query: string, params: readonly unknown[], idempotent: boolean): Promise<void> {
    const kind = query.includes(`INSERT INTO ${keyspace}.messages `) ? "message" : /UPDATE \S+\.conversations USING TIMESTAMP \? SET last_seq = \?, /.test(query) ? "head" : undefined;
    if (kind !== undefined) {
      this.count[kind]++;
      this.inFlight[kind]++;
      this.maxInFlight[kind] = Math.max(this.maxInFlight[kind], this.inFlight[kind]);
    }
    try {
      await this.beforeWrite(query, params);
      await super.write(query, params, idempotent);
    } finally {
      if (kind !== undefined) this.inFlight[kind]--;
    }
  }
}

async function openObserved(processId: string): Promise<{ store: CassandraMessageStore; session: ObservedSession }> {
  const options: CassandraMessageStoreOptions = {
    contactPoints: [contactPoint],
    localDataCenter: "datacenter1",
    keyspace,
    processId,
    lease: { leaseMs: 2_000, clockSkewMaxMs: 200, blockSize: 100 },
  };
  const session = new ObservedSession(options);
  await session.connect();
  const store = new CassandraMessageStore(session, options);
  opened.push(store);
  return { store, session };
}

describe("CassandraConversationLog: pipelined appends", () => {
  it("has the writes of concurrent appends to one conversation in flight at once and moves the head once per written prefix", async () => {
    const { store, session } = await openObserved("p");
    const id = await newGroup(store);
    const results = await Promise.all(Array.from({ length: 64 }, (_, i) => store.append(message(id, "w1", `c${i}`))));
    expect(results.map((r) => r.message.seq)).toEqual(Array.from({ length: 64 }, (_, i) => i + 1));
    // One at a time, there would be one message write in flight and one head write per append.
    expect(session.count.message).toBe(64);
    expect(session.maxInFlight.message).toBeGreaterThanOrEqual(4);
    expect(session.count.head).toBeLessThanOrEqual(32);
    expect(session.maxInFlight.head).toBe(1);
    const log = await store.readRange(id, 0, undefined, 100);
    expect(log).toEqual(results.map((r) => r.message));
    expect((await store.getConversation(id))?.lastSeq).toBe(64);
  });

  it("answers the written prefix when a write in the middle fails, fails the rest, and the next owner recovers a chain without the hole", async () => {
    const { store, session } = await openObserved("p");
    const id = await newGroup(store);
    // The message write of c4 fails, after the writes issued with it have landed.
    session.beforeWrite = async (query, params) => {
      if (query.includes(`INSERT INTO ${keyspace}.messages `) && params.includes("c4")) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        throw new StoreUnavailableError("injected write failure");
      }
    };
    const order: number[] = [];
    const outcomes = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => {
        const p = store.append(message(id, "w1", `c${i}`));
        p.then(() => order.push(i), () => order.push(i));
        return p;
      }),
    );
    expect(order).toEqual(Array.from({ length: 10 }, (_, i) => i));
    expect(outcomes.slice(0, 4).map((o) => o.status)).toEqual(["fulfilled", "fulfilled", "fulfilled", "fulfilled"]);
    expect((outcomes[4] as PromiseRejectedResult).reason).toBeInstanceOf(StoreUnavailableError);
    // Issued with c4, the later ones were in flight behind it (rejected: their outcome is
    // unknown) or waited for the next lease (answered).
    for (const o of outcomes.slice(5)) if (o.status === "rejected") expect(o.reason).toBeInstanceOf(StoreUnavailableError);
    // (c5 at least was written and waiting behind it: c4's write took 500 ms to fail.)
    expect(outcomes[5]!.status).toBe("rejected");
    expect((outcomes.slice(0, 4) as PromiseFulfilledResult<AppendResult>[]).map((o) => o.value.message.seq)).toEqual([1, 2, 3, 4]);

    // Clients retry what failed, through the same store.
    session.beforeWrite = () => {};
    const retried = await Promise.all(
      outcomes.map((o, i) => (o.status === "fulfilled" ? o.value : store.append(message(id, "w1", `c${i}`)))),
    );
    const log = await store.readRange(id, 0, undefined, 1_000);
    expectChained(log);
    expect(log.map((m) => m.clientMsgId).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `c${i}`).sort());
    for (const r of retried) expect(log.find((m) => m.seq === r.message.seq)?.clientMsgId).toBe(r.message.clientMsgId);
    // The failed lease was given up unclean: the next one recovered under a new generation.
    expect(Number((await leaseRow(id)).get("generation"))).toBe(2);
  });

  it("takes over from an owner that crashed with appends in flight: the chain above the head up to its first hole becomes visible, the rest is fenced", async () => {
    const a = await openStore("a");
    const id = await newGroup(a);
    await a.append(message(id, "w1", "a0"));
    await a.append(message(id, "w1", "a1"));
    await a.close();
    const { generation, blockEnd } = await markOwnerCrashed(id);
    // The crashed owner had seqs 3-7 in flight: 3 and 4 landed, 5 never did, 6 and 7 did; the head stayed at 2.
    for (const [seq, key] of [[3, "p3"], [4, "p4"], [6, "p6"], [7, "p7"]] as const) {
      await writeAsOwner(generation, rawMessage(id, seq, seq - 1, key), false);
    }
    const b = await openStore("b");
    const next = await b.append(message(id, "w2", "b0"));
    expect(next.message).toMatchObject({ seq: blockEnd + 1, prevSeq: 4 });
    const log = await b.readRange(id, 0, undefined, 100);
    expect(log.map((m) => m.clientMsgId)).toEqual(["a0", "a1", "p3", "p4", "b0"]);
    expectChained(log);
    // p4 became visible: its retry is a duplicate. p6 was fenced: its retry is a new message.
    expect((await b.append(message(id, "w1", "p4"))).duplicate).toBe(true);
    const p6 = await b.append(message(id, "w1", "p6"));
    expect(p6.duplicate).toBe(false);
    expect(p6.message).toMatchObject({ seq: blockEnd + 2, prevSeq: blockEnd + 1 });
    expectChained(await b.readRange(id, 0, undefined, 100));
  });
});

describe("CassandraConversationLog: writer processes", () => {
  const dir = mkdtempSync(join(tmpdir(), "cassandra-writers-"));
  const worker = join(dir, "append-worker.mts");
  const storeUrl = new URL("../../../server/store/cassandra-message-store.ts", import.meta.url).href;
  const resultUrl = new URL("../../../server/core/result.ts", import.meta.url).href;
  // Each worker is a gateway process with its own store: two clients in it append `count`
  // messages each (`inFlight` at a time, default 1), retrying a failed append with the same
  // clientMsgId like the SDK does, and print one line per acknowledged append. Options: JSON
  // in argv.
  writeFileSync(
    worker,
    `import { existsSync } from "node:fs";
    import { openCassandraMessageStore } from ${JSON.stringify(storeUrl)};
    import { StoreUnavailableError } from ${JSON.stringify(resultUrl)};
    const o = JSON.parse(process.argv[2]);
    const store = await openCassandraMessageStore({ contactPoints: [o.contactPoint], localDataCenter: "datacenter1", keyspace: o.keyspace,
      processId: o.name, lease: { leaseMs: 1500, clockSkewMaxMs: 200 }, log: o.log });
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    process.stdout.write("READY\\n");
    if (o.waitFor) while (!existsSync(o.waitFor)) await sleep(5);
    const client = async (sender) => {
      let next = 0;
      await Promise.all(Array.from({ length: o.inFlight ?? 1 }, () => one(sender, () => next++)));
    };
    const one = async (sender, take) => {
      for (let i = take(); i < o.count; i = take()) {
        const clientMsgId = sender + "-" + i;
        for (let attempt = 0; ; attempt++) {
          try {
            const r = await store.append({ conversationId: o.conversationId, senderId: sender, clientMsgId, messageId: clientMsgId,
              sentAtMs: Date.now(), contentType: "text/plain", data: new TextEncoder().encode(clientMsgId) });
            process.stdout.write("ACK " + clientMsgId + " " + r.message.seq + "\\n");
            break;
          } catch (e) {
            if (!(e instanceof StoreUnavailableError) || attempt >= 100) throw e;
            process.stdout.write("RETRY " + clientMsgId + " " + e.message + "\\n");
            await sleep(20);
          }
        }
      }
    };
    await Promise.all([client(o.name + "a"), client(o.name + "b")]);
    if (o.thenHang) { process.stdout.write("HANGING\\n"); await sleep(600_000); }
    await store.close();
    process.stdout.write("DONE\\n");`,
  );
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  interface Worker {
    readonly acks: Map<string, number>;
    readonly output: string[];
    readonly exit: Promise<number | null>;
    readonly child: ChildProcess;
  }

  function startWorker(options: Record<string, unknown>): Worker {
    const child = spawn(process.execPath, ["--import", "tsx", worker, JSON.stringify({ contactPoint, keyspace, ...options })], { stdio: ["ignore", "pipe", "pipe"] });
    const acks = new Map<string, number>();
    const output: string[] = [];
    let buffered = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const line of lines) {
        output.push(line);
        const [kind, id, seq] = line.split(" ");
        if (kind === "ACK") acks.set(id!, Number(seq));
      }
    });
    child.stderr!.on("data", (chunk: Buffer) => output.push(chunk.toString()));
    const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    return { acks, output, exit, child };
  }

  /** Every acknowledged append is in the log at its acknowledged seq, and no clientMsgId is there twice. */
  function expectAcksInLog(log: readonly StoredMessage[], workers: readonly Worker[]): void {
    const bySeq = new Map(log.map((m) => [m.seq, m.clientMsgId]));
    for (const w of workers) for (const [clientMsgId, seq] of w.acks) expect(bySeq.get(seq), clientMsgId).toBe(clientMsgId);
    expect(new Set(log.map((m) => `${m.senderId}/${m.clientMsgId}`)).size).toBe(log.length);
  }

  it("keeps seqs unique and the chain unbroken with three processes appending to one conversation at once", async () => {
    const setup = await openStore("setup");
    const conversationId = await newGroup(setup);
    const count = 40;
    const go = join(dir, `go-${conversationId.slice(2)}`);
    const workers = ["w1", "w2", "w3"].map((name) => startWorker({ name, conversationId, count, waitFor: go }));
    // A barrier, so the three really append at the same time.
    await expect.poll(() => workers.every((w) => w.output.includes("READY")), { timeout: 30_000 }).toBe(true);
    writeFileSync(go, "");
    const codes = await Promise.all(workers.map((w) => w.exit));
    expect(codes, workers.map((w) => w.output.slice(-5).join("\n")).join("\n---\n")).toEqual([0, 0, 0]);
    const log = await setup.readRange(conversationId, 0, undefined, 1_000);
    expect(log).toHaveLength(3 * 2 * count);
    expectChained(log);
    expectAcksInLog(log, workers);
    // Clean handovers only: no seq was skipped.
    expect(log.map((m) => m.seq)).toEqual(log.map((_, i) => i + 1));
  }, 120_000);

  it("keeps every acknowledged append when a writer with many appends in flight is killed mid-stream", async () => {
    const setup = await openStore("setup");
    const conversationId = await newGroup(setup);
    const go = join(dir, `go-${conversationId.slice(2)}`);
    const victim = startWorker({ name: "v", conversationId, count: 100_000, inFlight: 32 });
    await expect.poll(() => victim.acks.size, { timeout: 60_000, interval: 5 }).toBeGreaterThanOrEqual(300);
    victim.child.kill("SIGKILL");
    await victim.exit;
    const survivor = startWorker({ name: "s", conversationId, count: 10, inFlight: 4, waitFor: go });
    writeFileSync(go, "");
    expect(await survivor.exit, survivor.output.slice(-5).join("\n")).toBe(0);
    const log = await setup.readRange(conversationId, 0, undefined, 100_000);
    expectChained(log);
    expectAcksInLog(log, [victim, survivor]);
    expect(log.filter((m) => m.senderId.startsWith("s"))).toHaveLength(20);
    expect(Number((await leaseRow(conversationId)).get("generation"))).toBeGreaterThanOrEqual(2);
  }, 120_000);

  it("lets the others take over when a writer process is killed while it owns the conversation", async () => {
    const setup = await openStore("setup");
    const conversationId = await newGroup(setup);
    const go = join(dir, `go-${conversationId.slice(2)}`);
    // The victim appends first and then hangs on to the conversation (it never looks for waiters).
    const victim = startWorker({ name: "v", conversationId, count: 10, thenHang: true, log: { holdIdleMs: 600_000, wantCheckMs: 600_000 } });
    const survivors = ["s1", "s2"].map((name) => startWorker({ name, conversationId, count: 15, waitFor: go }));
    await expect.poll(() => victim.output.includes("HANGING"), { timeout: 30_000 }).toBe(true);
    expect((await leaseRow(conversationId)).get("owner")).toBe("v");
    victim.child.kill("SIGKILL");
    await victim.exit;
    writeFileSync(go, "");
    // They waited for the lease (1.5 s + 0.2 s skew), not forever: a survivor that gave up
    // would exit non-zero, and one waiting forever would hold the test past its timeout.
    const codes = await Promise.all(survivors.map((w) => w.exit));
    expect(codes, survivors.map((w) => w.output.slice(-5).join("\n")).join("\n---\n")).toEqual([0, 0]);
    const log = await setup.readRange(conversationId, 0, undefined, 1_000);
    expect(log).toHaveLength(2 * 10 + 2 * 2 * 15);
    expectChained(log);
    expectAcksInLog(log, [victim, ...survivors]);
    // The takeover started after the victim's reserved block: one gap, right after its messages.
    const gaps = log.filter((m, i) => i > 0 && m.seq !== log[i - 1]!.seq + 1);
    expect(gaps).toHaveLength(1);
    expect(gaps[0]!.prevSeq).toBe(20);
    expect(Number((await leaseRow(conversationId)).get("generation"))).toBeGreaterThanOrEqual(2);
  }, 120_000);
});
