/**
 * Store benchmark: appends per second and sync latency (p50/p99) of the embedded SQLite store
 * and the Cassandra store on this machine. Not a test: it prints figures and asserts nothing
 * about time.
 *
 *   npm run bench:store [-- --runs 5 --warmup 1 --appends 3000 --concurrency 32 --syncs 300 --stores sqlite,sqlite-normal,cassandra]
 *
 * Cassandra: IM_TEST_CASSANDRA=host:port uses a running node; otherwise a private single node is
 * started with deploy/cassandra/cassandra.sh in a temporary directory and removed afterwards.
 *
 * Each store first does `warmup` runs that are reported but not counted (the JVM of a fresh
 * Cassandra node needs one to compile its hot paths; the SQLite runs are counted the same way).
 *
 * Workload per run, on a fresh database:
 * - 100 users; 20 groups of 10 members; 40 direct conversations: 60 conversations, every user
 *   in about 3 of them.
 * - Appends: `appends` messages of 200 bytes, `concurrency` writers each appending one at a
 *   time, writer i to conversations i, i + concurrency, ... in turn. appends/s = appends / wall
 *   time; the per-append latency is reported too.
 * - Syncs: `syncs` reconnect syncs run one after another through the real Messaging core: a
 *   user whose cursors are 5 messages behind in each of its conversations, so each sync reads
 *   the user's session list, the group records and one message range per conversation.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_LIMITS } from "../server/core/limits.js";
import { createMessageIdGenerator } from "../server/core/message-id.js";
import { Messaging, type Cursor } from "../server/core/messaging.js";
import { discardEvents } from "../server/core/events.js";
import { openCassandraMessageStore } from "../server/store/cassandra-message-store.js";
import type { MessageStore } from "../server/store/message-store.js";
import { openSqliteMessageStore } from "../server/store/sqlite-message-store.js";
import { systemClock, systemRandom } from "../server/system.js";
import { externalCassandraNode, rawClient, startCassandraNode, type CassandraNode } from "../test/support/cassandra.js";

const { values: args } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    warmup: { type: "string", default: "1" },
    appends: { type: "string", default: "3000" },
    concurrency: { type: "string", default: "32" },
    syncs: { type: "string", default: "300" },
    stores: { type: "string", default: "sqlite,sqlite-normal,cassandra" },
  },
});
const RUNS = Number(args.runs);
const WARMUP = Number(args.warmup);
const APPENDS = Number(args.appends);
const CONCURRENCY = Number(args.concurrency);
const SYNCS = Number(args.syncs);
const BODY = new Uint8Array(200).fill(97);

interface RunResult {
  readonly appendsPerS: number;
  readonly appendP50Ms: number;
  readonly appendP99Ms: number;
  readonly syncP50Ms: number;
  readonly syncP99Ms: number;
}

/** Opens a fresh, empty store for one run and says how to dispose of it. */
interface StoreKind {
  readonly name: string;
  open(run: number): Promise<{ store: MessageStore; dispose(): Promise<void> }>;
  close(): Promise<void>;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const users = Array.from({ length: 100 }, (_, i) => `u${String(i).padStart(3, "0")}`);

async function runOnce(store: MessageStore): Promise<RunResult> {
  // Setup (not timed).
  const conversations: string[] = [];
  for (let g = 0; g < 20; g++) {
    const members = Array.from({ length: 10 }, (_, k) => users[(g * 5 + k) % users.length]!);
    await store.createGroup({ id: `g:bench${g}`, title: `group ${g}`, ownerId: members[0]!, createdAtMs: systemClock.nowMs() }, members);
    conversations.push(`g:bench${g}`);
  }
  for (let d = 0; d < 40; d++) {
    const [a, b] = [users[(d * 2) % users.length]!, users[(d * 2 + 1 + (d % 3)) % users.length]!].sort();
    const id = `d:${a}:${b}`;
    if (conversations.includes(id)) continue;
    await store.ensureDirect(id, a!, b!, systemClock.nowMs());
    conversations.push(id);
  }
  const senderOf = (id: string) => (id.startsWith("d:") ? id.split(":")[1]! : users[(Number(id.slice(7)) * 5) % users.length]!);

  // Appends.
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, writer) => {
      for (let turn = 0; ; turn++) {
        const n = next++;
        if (n >= APPENDS) return;
        const id = conversations[(writer + turn * CONCURRENCY) % conversations.length]!;
        const t0 = performance.now();
        await store.append({
          conversationId: id,
          senderId: senderOf(id),
          clientMsgId: `c${n}`,
          messageId: `m${n}`,
          sentAtMs: systemClock.nowMs(),
          contentType: "text/plain",
          data: BODY,
        });
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const appendsPerS = APPENDS / ((performance.now() - started) / 1000);
  latencies.sort((a, b) => a - b);

  // Syncs through the core, cursors 5 messages behind everywhere.
  const messaging = new Messaging({
    store,
    events: discardEvents,
    clock: systemClock,
    ids: createMessageIdGenerator(systemClock, systemRandom),
    limits: DEFAULT_LIMITS,
  });
  const cursorsOf = new Map<string, Cursor[]>();
  for (const user of users) {
    const sessions = await store.listSessions(user, DEFAULT_LIMITS.sessionsScanMax);
    cursorsOf.set(user, sessions.map((s) => ({ conversationId: s.conversationId, lastSeq: Math.max(0, s.lastSeq - 5), readSeq: s.readSeq })));
  }
  const syncs: number[] = [];
  for (let i = 0; i < SYNCS; i++) {
    const user = users[(i * 37) % users.length]!;
    const t0 = performance.now();
    const result = await messaging.sync(user, { cursors: cursorsOf.get(user)!, maxMessagesPerConversation: 0, maxSessions: 0 });
    syncs.push(performance.now() - t0);
    if (!result.ok) throw new Error(`sync failed: ${result.message}`);
  }
  syncs.sort((a, b) => a - b);
  return {
    appendsPerS,
    appendP50Ms: percentile(latencies, 50),
    appendP99Ms: percentile(latencies, 99),
    syncP50Ms: percentile(syncs, 50),
    syncP99Ms: percentile(syncs, 99),
  };
}

function sqliteKind(synchronous: "full" | "normal"): StoreKind {
  const dir = mkdtempSync(join(tmpdir(), "store-bench-sqlite-"));
  return {
    name: `SQLite (file, WAL, synchronous=${synchronous.toUpperCase()})`,
    async open(run) {
      const store = openSqliteMessageStore({ path: join(dir, `run-${run}.sqlite`), synchronous });
      return { store, dispose: () => store.close() };
    },
    async close() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function cassandraKind(): Promise<StoreKind> {
  const node: CassandraNode = externalCassandraNode() ?? (await startCassandraNode());
  const keyspaces: string[] = [];
  return {
    name: `Cassandra 5.0 (1 node, RF 1, LOCAL_QUORUM${node.dir === undefined ? ", external" : ", loopback"})`,
    async open(run) {
      const keyspace = `store_bench_${process.pid}_${run}`;
      keyspaces.push(keyspace);
      const store = await openCassandraMessageStore({ contactPoints: [node.contactPoint], localDataCenter: "datacenter1", keyspace });
      return { store, dispose: () => store.close() };
    },
    async close() {
      const client = rawClient(node.contactPoint);
      for (const ks of keyspaces) await client.execute(`DROP KEYSPACE IF EXISTS ${ks}`).catch(() => {});
      await client.shutdown();
      await node.destroy();
    },
  };
}

function fmt(n: number, digits = 1): string {
  return n.toFixed(digits);
}

async function main(): Promise<void> {
  const cpu = cpus();
  process.stdout.write(
    `store benchmark: ${cpu.length} x ${cpu[0]?.model ?? "cpu"}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}; ` +
      `${WARMUP} warm-up + ${RUNS} rounds, ${APPENDS} appends of ${BODY.length} B by ${CONCURRENCY} writers over 60 conversations, ${SYNCS} syncs\n\n`,
  );
  const kinds: StoreKind[] = [];
  try {
    for (const which of String(args.stores).split(",")) {
      const kind =
        which === "sqlite" ? sqliteKind("full") : which === "sqlite-normal" ? sqliteKind("normal") : which === "cassandra" ? await cassandraKind() : undefined;
      if (kind === undefined) throw new Error(`unknown store ${which}`);
      kinds.push(kind);
    }
    // Rounds interleave the stores, so a ratio within one round compares them under the same
    // background load (this machine is shared).
    const results = kinds.map((): RunResult[] => []);
    for (let round = 0; round < WARMUP + RUNS; round++) {
      const label = round < WARMUP ? `warm-up ${round + 1}` : `round ${round + 1 - WARMUP}`;
      for (const [i, kind] of kinds.entries()) {
        const { store, dispose } = await kind.open(round);
        try {
          const r = await runOnce(store);
          if (round >= WARMUP) results[i]!.push(r);
          process.stdout.write(
            `${label} ${kind.name}: ${fmt(r.appendsPerS, 0)} appends/s (append p50 ${fmt(r.appendP50Ms)} ms, p99 ${fmt(r.appendP99Ms)} ms), ` +
              `sync p50 ${fmt(r.syncP50Ms)} ms, p99 ${fmt(r.syncP99Ms)} ms\n`,
          );
        } finally {
          await dispose();
        }
      }
    }
    const rows = kinds.map((kind, i) => {
      const rs = results[i]!;
      const m = (f: (r: RunResult) => number, digits = 1) => fmt(median(rs.map(f)), digits);
      const ratio = median(rs.map((r, round) => r.appendsPerS / results[0]![round]!.appendsPerS));
      return `| ${kind.name} | ${m((r) => r.appendsPerS, 0)} | ${fmt(ratio, 2)} | ${m((r) => r.appendP50Ms)} | ${m((r) => r.appendP99Ms)} | ${m((r) => r.syncP50Ms, 2)} | ${m((r) => r.syncP99Ms)} |`;
    });
    process.stdout.write(
      `\nmedians of ${RUNS} rounds (ratio: appends/s over the first store's in the same round)\n` +
        `| store | appends/s | ratio | append p50 ms | append p99 ms | sync p50 ms | sync p99 ms |\n| --- | --- | --- | --- | --- | --- | --- |\n${rows.join("\n")}\n`,
    );
  } finally {
    for (const kind of kinds) await kind.close();
  }
}

await main();
