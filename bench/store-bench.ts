/**
 * Store benchmark: acknowledged appends per second of the embedded SQLite store and the
 * Cassandra store with 1 to 256 appends in flight, spread over conversations or all into one
 * hot group, plus the latency of a reconnect sync. Not a test: it prints figures and asserts
 * nothing about time.
 *
 *   npm run bench:store [-- --runs 5 --warmup 1 --in-flight 1,16,64,256 --shapes spread,hot
 *     --appends 40000 --cell-ms 2000 --syncs 300
 *     --stores sqlite,sqlite-unbatched,sqlite-normal,cassandra,cassandra-unpipelined]
 *
 * Stores: "sqlite" is the default (WAL, synchronous=FULL, group commit); "sqlite-unbatched"
 * the same with batchWritesMax=1 (one transaction and fsync per write, as before group commit);
 * "sqlite-normal" synchronous=NORMAL with group commit; "cassandra" the default (appends of a
 * conversation pipelined); "cassandra-unpipelined" with pipelineMax=1 (one append of a
 * conversation in flight at a time, as before pipelining).
 *
 * Cassandra: IM_TEST_CASSANDRA=host:port uses a running node; otherwise a private single node is
 * started with deploy/cassandra/cassandra.sh in a temporary directory and removed afterwards.
 *
 * Per round and store, on a fresh database (a new SQLite file, a new Cassandra keyspace):
 * - 100 users; 20 groups of 10 members; 40 direct conversations ("spread": 60 conversations)
 *   and one more group of 10 ("hot").
 * - One cell per shape and in-flight count N: N appenders, each appending one 200-byte message
 *   at a time and the next once it is acknowledged; "spread" sends append k to conversation
 *   k mod 60, "hot" sends all to the hot group. A cell stops after `appends` appends or
 *   `cell-ms`, whichever comes first: appends/s = acknowledged appends / wall time.
 * - Syncs: `syncs` reconnect syncs one after another through the real Messaging core: a user
 *   whose cursors are 5 messages behind in each of its conversations.
 * Warm-up rounds are printed, not counted; rounds interleave the stores, so ratios within a
 * round compare them under the same background load (this machine is shared).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
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
    "in-flight": { type: "string", default: "1,16,64,256" },
    shapes: { type: "string", default: "spread,hot" },
    appends: { type: "string", default: "40000" },
    "cell-ms": { type: "string", default: "2000" },
    syncs: { type: "string", default: "300" },
    stores: { type: "string", default: "sqlite,sqlite-unbatched,sqlite-normal,cassandra,cassandra-unpipelined" },
  },
});
const RUNS = Number(args.runs);
const WARMUP = Number(args.warmup);
const IN_FLIGHT = String(args["in-flight"]).split(",").map(Number);
const SHAPES = String(args.shapes).split(",") as Shape[];
const APPENDS = Number(args.appends);
const CELL_MS = Number(args["cell-ms"]);
const SYNCS = Number(args.syncs);
const BODY = new Uint8Array(200).fill(97);
const HOT = "g:hot";

type Shape = "spread" | "hot";

interface Cell {
  readonly appendsPerS: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

interface RoundResult {
  /** By `${shape} ${inFlight}`. */
  readonly cells: Map<string, Cell>;
  readonly syncP50Ms: number;
  readonly syncP99Ms: number;
}

/** Opens a fresh, empty store for one round and says how to dispose of it. */
interface StoreKind {
  readonly name: string;
  open(round: number): Promise<{ store: MessageStore; dispose(): Promise<void> }>;
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

/** The spread conversations and the hot group; returns the spread ids. */
async function setup(store: MessageStore): Promise<string[]> {
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
  await store.createGroup({ id: HOT, title: "hot", ownerId: users[0]!, createdAtMs: systemClock.nowMs() }, users.slice(0, 10));
  return conversations;
}

function senderOf(id: string): string {
  if (id === HOT) return users[0]!;
  return id.startsWith("d:") ? id.split(":")[1]! : users[(Number(id.slice(7)) * 5) % users.length]!;
}

/** One cell: `inFlight` appenders until APPENDS appends or CELL_MS. */
async function appendCell(store: MessageStore, conversations: readonly string[], shape: Shape, inFlight: number, tag: string): Promise<Cell> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  const deadline = started + CELL_MS;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      for (;;) {
        const n = next++;
        if (n >= APPENDS || performance.now() >= deadline) return;
        const id = shape === "hot" ? HOT : conversations[n % conversations.length]!;
        const t0 = performance.now();
        await store.append({
          conversationId: id,
          senderId: senderOf(id),
          clientMsgId: `${tag}-${n}`,
          messageId: `${tag}-m${n}`,
          sentAtMs: systemClock.nowMs(),
          contentType: "text/plain",
          data: BODY,
        });
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const elapsedS = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { appendsPerS: latencies.length / elapsedS, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99) };
}

/** Reconnect syncs through the core, cursors 5 messages behind everywhere. */
async function syncs(store: MessageStore): Promise<{ p50Ms: number; p99Ms: number }> {
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
  const times: number[] = [];
  for (let i = 0; i < SYNCS; i++) {
    const user = users[(i * 37) % users.length]!;
    const t0 = performance.now();
    const result = await messaging.sync(user, { cursors: cursorsOf.get(user)!, maxMessagesPerConversation: 0, maxSessions: 0 });
    times.push(performance.now() - t0);
    if (!result.ok) throw new Error(`sync failed: ${result.message}`);
  }
  times.sort((a, b) => a - b);
  return { p50Ms: percentile(times, 50), p99Ms: percentile(times, 99) };
}

async function runRound(store: MessageStore, round: number, label: string, name: string): Promise<RoundResult> {
  const conversations = await setup(store);
  const cells = new Map<string, Cell>();
  for (const shape of SHAPES) {
    for (const inFlight of IN_FLIGHT) {
      const cell = await appendCell(store, conversations, shape, inFlight, `r${round}-${shape}-${inFlight}`);
      cells.set(`${shape} ${inFlight}`, cell);
      process.stdout.write(
        `${label} ${name} ${shape} x${inFlight}: ${fmt(cell.appendsPerS, 0)} appends/s (p50 ${fmt(cell.p50Ms)} ms, p99 ${fmt(cell.p99Ms)} ms)\n`,
      );
    }
  }
  const sync = SYNCS > 0 ? await syncs(store) : { p50Ms: Number.NaN, p99Ms: Number.NaN };
  process.stdout.write(`${label} ${name} sync: p50 ${fmt(sync.p50Ms, 2)} ms, p99 ${fmt(sync.p99Ms)} ms\n`);
  return { cells, syncP50Ms: sync.p50Ms, syncP99Ms: sync.p99Ms };
}

function sqliteKind(name: string, synchronous: "full" | "normal", batchWritesMax?: number): StoreKind {
  const dir = mkdtempSync(join(tmpdir(), "store-bench-sqlite-"));
  return {
    name,
    async open(round) {
      const store = openSqliteMessageStore({ path: join(dir, `round-${round}.sqlite`), synchronous, ...(batchWritesMax === undefined ? {} : { batchWritesMax }) });
      return { store, dispose: () => store.close() };
    },
    async close() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function cassandraKind(node: CassandraNode, name: string, tag: string, pipelineMax?: number): StoreKind {
  const keyspaces: string[] = [];
  return {
    name,
    async open(round) {
      const keyspace = `store_bench_${process.pid}_${tag}_${round}`;
      keyspaces.push(keyspace);
      const store = await openCassandraMessageStore({
        contactPoints: [node.contactPoint],
        localDataCenter: "datacenter1",
        keyspace,
        ...(pipelineMax === undefined ? {} : { log: { pipelineMax } }),
      });
      return { store, dispose: () => store.close() };
    },
    async close() {
      const client = rawClient(node.contactPoint);
      for (const ks of keyspaces) await client.execute(`DROP KEYSPACE IF EXISTS ${ks}`).catch(() => {});
      await client.shutdown();
    },
  };
}

function fmt(n: number, digits = 1): string {
  return n.toFixed(digits);
}

function loadAverage(): string {
  return loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");
}

async function main(): Promise<void> {
  const cpu = cpus();
  const storeNames = String(args.stores).split(",");
  process.stdout.write(
    `store benchmark: ${cpu.length} x ${cpu[0]?.model ?? "cpu"}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, ` +
      `load average ${loadAverage()}\n${WARMUP} warm-up + ${RUNS} rounds; cells: ${SHAPES.join("/")} x in flight ${IN_FLIGHT.join("/")}, ` +
      `up to ${APPENDS} appends of ${BODY.length} B or ${CELL_MS} ms each; ${SYNCS} syncs\n\n`,
  );
  let node: CassandraNode | undefined;
  const kinds: StoreKind[] = [];
  try {
    for (const which of storeNames) {
      if (which.startsWith("cassandra")) node ??= externalCassandraNode() ?? (await startCassandraNode());
      const cassandraName = (what: string) => `Cassandra 5.0 (1 node, RF 1${node!.dir === undefined ? ", external" : ""}, ${what})`;
      const kind =
        which === "sqlite"
          ? sqliteKind("SQLite FULL, group commit", "full")
          : which === "sqlite-unbatched"
            ? sqliteKind("SQLite FULL, batchWritesMax=1", "full", 1)
            : which === "sqlite-normal"
              ? sqliteKind("SQLite NORMAL, group commit", "normal")
              : which === "cassandra"
                ? cassandraKind(node!, cassandraName("pipelined"), "p")
                : which === "cassandra-unpipelined"
                  ? cassandraKind(node!, cassandraName("pipelineMax=1"), "u", 1)
                  : undefined;
      if (kind === undefined) throw new Error(`unknown store ${which}`);
      kinds.push(kind);
    }
    const results = kinds.map((): RoundResult[] => []);
    const loads: string[] = [];
    for (let round = 0; round < WARMUP + RUNS; round++) {
      const label = round < WARMUP ? `warm-up ${round + 1}` : `round ${round + 1 - WARMUP}`;
      loads.push(loadAverage());
      process.stdout.write(`${label}: load average ${loads[loads.length - 1]}\n`);
      for (const [i, kind] of kinds.entries()) {
        const { store, dispose } = await kind.open(round);
        try {
          const r = await runRound(store, round, label, kind.name);
          if (round >= WARMUP) results[i]!.push(r);
        } finally {
          await dispose();
        }
      }
    }
    process.stdout.write(`\nload average at the start of each round: ${loads.join(" | ")}; at the end: ${loadAverage()}\n`);
    for (const shape of SHAPES) {
      const header = IN_FLIGHT.map((n) => `${n} in flight`);
      const rows = kinds.map((kind, i) => {
        const cols = IN_FLIGHT.map((n) => {
          const cells = results[i]!.map((r) => r.cells.get(`${shape} ${n}`)!);
          return `${fmt(median(cells.map((c) => c.appendsPerS)), 0)} (p99 ${fmt(median(cells.map((c) => c.p99Ms)))} ms)`;
        });
        return `| ${kind.name} | ${cols.join(" | ")} |`;
      });
      process.stdout.write(
        `\n${shape === "hot" ? "one hot group" : "spread over 60 conversations"}: acknowledged appends/s, medians of ${RUNS} rounds (p99 append latency)\n` +
          `| store | ${header.join(" | ")} |\n| --- |${header.map(() => " --- |").join("")}\n${rows.join("\n")}\n`,
      );
    }
    // Ratios within a round: each store against the first one of its family listed.
    const pairs: Array<[number, number]> = [];
    for (const [a, b] of [["sqlite", "sqlite-unbatched"], ["sqlite-normal", "sqlite-unbatched"], ["cassandra", "cassandra-unpipelined"]] as const) {
      const ia = storeNames.indexOf(a);
      const ib = storeNames.indexOf(b);
      if (ia >= 0 && ib >= 0) pairs.push([ia, ib]);
    }
    if (pairs.length > 0) {
      process.stdout.write(`\nratios measured within each round (median over rounds)\n| ratio | ${SHAPES.flatMap((s) => IN_FLIGHT.map((n) => `${s} ${n}`)).join(" | ")} |\n`);
      process.stdout.write(`| --- |${SHAPES.flatMap(() => IN_FLIGHT.map(() => " --- |")).join("")}\n`);
      for (const [ia, ib] of pairs) {
        const cols = SHAPES.flatMap((shape) =>
          IN_FLIGHT.map((n) => {
            const key = `${shape} ${n}`;
            return fmt(median(results[ia]!.map((r, round) => r.cells.get(key)!.appendsPerS / results[ib]![round]!.cells.get(key)!.appendsPerS)), 2);
          }),
        );
        process.stdout.write(`| ${kinds[ia]!.name} / ${kinds[ib]!.name} | ${cols.join(" | ")} |\n`);
      }
    }
    if (SYNCS > 0) {
      process.stdout.write(`\nreconnect sync, medians of ${RUNS} rounds\n| store | sync p50 ms | sync p99 ms |\n| --- | --- | --- |\n`);
      for (const [i, kind] of kinds.entries()) {
        const rs = results[i]!;
        process.stdout.write(`| ${kind.name} | ${fmt(median(rs.map((r) => r.syncP50Ms)), 2)} | ${fmt(median(rs.map((r) => r.syncP99Ms)))} |\n`);
      }
    }
  } finally {
    for (const kind of kinds) await kind.close();
    await node?.destroy();
  }
}

await main();
