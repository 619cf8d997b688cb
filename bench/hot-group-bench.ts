/**
 * One hot group written through three gateway processes on Cassandra:
 * `npm run bench:hot-group [-- --senders 30 --in-flight 16 --duration-s 15 --runs 3]`.
 *
 * Three server processes (`--workers 1` each, distinct node ids) share one Cassandra node; the
 * senders, spread evenly over the three, send to one group with `in-flight` sends each
 * outstanding for `duration-s`. Two modes, alternated run by run so that they see the same
 * machine: with Redis (conversation owners: every process forwards the group's sends to its
 * one owner, which keeps the group's seq lease) and without (every process appends itself,
 * and the lease moves between them). Prints acknowledged sends per second and the ack latency
 * (p50/p99) per run, then the medians and the ratio of the two modes. Figures, not a test.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ConversationService } from "../gen/im/v1/conversation_pb.js";
import { DEV_JWT_SECRET, mintToken } from "../server/gateway/auth.js";
import { LeanConnection } from "../loadgen/lean-connection.js";
import { externalCassandraNode, rawClient, startCassandraNode } from "../test/support/cassandra.js";
import { startNodeProcess, type NodeProcess } from "../test/support/node-process.js";
import { startRedis } from "../test/support/redis.js";
import { serverEnv } from "./support/proc.js";

const { values: args } = parseArgs({
  options: {
    senders: { type: "string", default: "30" },
    "in-flight": { type: "string", default: "16" },
    "duration-s": { type: "string", default: "15" },
    runs: { type: "string", default: "3" },
  },
});
const SENDERS = Number(args.senders);
const IN_FLIGHT = Number(args["in-flight"]);
const DURATION_S = Number(args["duration-s"]);
const RUNS = Number(args.runs);

interface Result {
  readonly mode: "owners" | "no owners";
  readonly perS: number;
  readonly p50: number;
  readonly p99: number;
  readonly failed: number;
  /** Lightweight transactions on the group's seq lease (take, renew, release) per 1,000 acknowledged sends. */
  readonly leaseLwtsPer1000: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function runOnce(mode: Result["mode"], contactPoint: string, redisUrl: string, run: number): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), "hot-group-"));
  const keyspace = `hot_${run}_${mode === "owners" ? "o" : "n"}_${Math.random().toString(36).slice(2, 8)}`;
  const common = ["--workers", "1", "--port", "0", "--data-dir", dir, "--store", "cassandra", "--cassandra-contact-points", contactPoint, "--cassandra-keyspace", keyspace, "--log-level", "info"];
  const redis = mode === "owners" ? ["--redis-url", redisUrl] : [];
  // One process creates the keyspace first; the others find it.
  const first = await startNodeProcess([...common, ...redis, "--node-id", `hot-${run}-0`], serverEnv());
  const nodes: NodeProcess[] = [first, ...(await Promise.all([1, 2].map((i) => startNodeProcess([...common, ...redis, "--node-id", `hot-${run}-${i}`], serverEnv()))))];
  try {
    const users = Array.from({ length: SENDERS }, (_, i) => `hot${run}${mode === "owners" ? "o" : "n"}-s${i}`);
    const tokens = await Promise.all(users.map((u) => mintToken(DEV_JWT_SECRET, u)));
    const conversations = createClient(ConversationService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${first.port}` }));
    const { conversation } = await conversations.createGroup({ title: "hot", memberUserIds: users.slice(1) }, { headers: { authorization: `Bearer ${tokens[0]}` } });
    const group = conversation!.conversationId;
    // Owners settle (leases in Redis renew every ttl/3) before the clock starts.
    await new Promise((r) => setTimeout(r, 1500));
    const latencies: number[] = [];
    let acked = 0;
    let failed = 0;
    const waiting = new Map<string, Map<number, { at: number; resolve: () => void }>>();
    const senders = await Promise.all(
      tokens.map(async (token, i) => {
        const pending = new Map<number, { at: number; resolve: () => void }>();
        waiting.set(users[i]!, pending);
        const connection = await LeanConnection.open({
          url: `http://127.0.0.1:${nodes[i % nodes.length]!.port}`,
          token,
          localAddress: `127.0.0.${2 + (i % 4)}`,
          events: {
            onFrame(field, requestId) {
              const entry = pending.get(requestId);
              if (entry === undefined) return;
              pending.delete(requestId);
              // Field 4: SendResponse; field 9: RequestError.
              if (field === 4) {
                acked++;
                latencies.push(performance.now() - entry.at);
              } else {
                failed++;
              }
              entry.resolve();
            },
          },
        });
        return { connection, pending, user: users[i]! };
      }),
    );
    let n = 0;
    const deadline = performance.now() + DURATION_S * 1000;
    await Promise.all(
      senders.map((s) =>
        Promise.all(
          Array.from({ length: IN_FLIGHT }, async () => {
            while (performance.now() < deadline) {
              const at = performance.now();
              const done = new Promise<void>((resolve) => {
                const requestId = s.connection.request({
                  case: "send",
                  value: { $typeName: "im.v1.SendRequest", target: { case: "conversationId", value: group }, clientMsgId: `h${++n}`, body: { $typeName: "im.v1.MessageBody", contentType: "text/plain", data: new Uint8Array(100) } },
                });
                s.pending.set(requestId, { at, resolve });
              });
              await Promise.race([done, new Promise((r) => setTimeout(r, 10_000))]);
            }
          }),
        ),
      ),
    );
    for (const s of senders) s.connection.close();
    latencies.sort((a, b) => a - b);
    // The lease row's version grows by one at every LWT on it: the handovers' cost, read
    // before the processes stop (a stop releases the lease once more).
    const cql = rawClient(contactPoint);
    const lease = await cql.execute(`SELECT version FROM ${keyspace}.seq_leases WHERE conversation_id = ?`, [group], { prepare: true });
    await cql.shutdown();
    const lwts = Number(lease.first()?.get("version") ?? 0);
    return { mode, perS: acked / DURATION_S, p50: percentile(latencies, 50), p99: percentile(latencies, 99), failed, leaseLwtsPer1000: (lwts * 1000) / Math.max(1, acked) };
  } finally {
    for (const node of nodes) node.kill("SIGTERM");
    await Promise.all(nodes.map((node) => node.exited));
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  process.stdout.write(
    `hot-group benchmark: 3 gateway processes on one Cassandra node, ${SENDERS} senders x ${IN_FLIGHT} in flight into one group, ${DURATION_S} s per run, ${RUNS} runs per mode; ` +
      `${cpus().length} x ${cpus()[0]?.model ?? "?"}, Node ${process.version}, load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}\n`,
  );
  const external = externalCassandraNode();
  const cassandra = external ?? (await startCassandraNode());
  const redis = await startRedis();
  const results: Result[] = [];
  try {
    for (let run = 1; run <= RUNS; run++) {
      for (const mode of run % 2 === 1 ? (["owners", "no owners"] as const) : (["no owners", "owners"] as const)) {
        const r = await runOnce(mode, cassandra.contactPoint, redis.url, run);
        results.push(r);
        process.stdout.write(`run ${run} ${mode.padEnd(9)} ${r.perS.toFixed(0)} acknowledged sends/s, ack p50 ${r.p50.toFixed(1)} ms p99 ${r.p99.toFixed(1)} ms, refused ${r.failed}, ${r.leaseLwtsPer1000.toFixed(1)} lease LWTs per 1,000 sends; load ${loadavg()[0]!.toFixed(2)}\n`);
      }
    }
  } finally {
    await redis.destroy();
    if (external === undefined) await cassandra.destroy();
  }
  const of = (mode: Result["mode"]) => results.filter((r) => r.mode === mode);
  const owners = median(of("owners").map((r) => r.perS));
  const none = median(of("no owners").map((r) => r.perS));
  process.stdout.write(
    `\n| mode | acknowledged sends/s (median) | ack p50 ms | ack p99 ms | lease LWTs per 1,000 sends |\n| --- | --- | --- | --- | --- |\n` +
      (["owners", "no owners"] as const)
        .map((mode) => {
          const rs = of(mode);
          const m = (f: (r: Result) => number) => median(rs.map(f));
          return `| ${mode === "owners" ? "owners (Redis)" : mode} | ${m((r) => r.perS).toFixed(0)} | ${m((r) => r.p50).toFixed(1)} | ${m((r) => r.p99).toFixed(1)} | ${m((r) => r.leaseLwtsPer1000).toFixed(1)} |\n`;
        })
        .join("") +
      `\nowners / no owners: ${(owners / none).toFixed(2)}\n`,
  );
}

await main();
