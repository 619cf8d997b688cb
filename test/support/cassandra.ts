import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import cassandra from "cassandra-driver";
import { inject } from "vitest";

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL("../../deploy/cassandra/cassandra.sh", import.meta.url));

/** Environment variable naming an already running Cassandra (host:port) that tests use instead of starting one. */
export const TEST_CASSANDRA_ENV = "IM_TEST_CASSANDRA";

/** A Cassandra node for tests: one this process started (via deploy/cassandra/cassandra.sh), or an external one. */
export interface CassandraNode {
  /** host:port of the CQL port. */
  readonly contactPoint: string;
  readonly port: number;
  /** The node's directory; undefined for an external node. */
  readonly dir: string | undefined;
  /** Stops the node (data kept); a no-op for an external node. */
  stop(): Promise<void>;
  /** Starts it again on the same port with its data. */
  start(): Promise<void>;
  /** Stops the node and deletes its directory. */
  destroy(): Promise<void>;
  /** The last lines of its logs, for failure messages. */
  logTail(lines?: number): string;
}

/**
 * Starts a single-node Cassandra in a new temporary directory (about 5-7 s here). Rejects with
 * the launcher's output and the node's log tail when it cannot start.
 */
export async function startCassandraNode(options: { cqlPort?: number } = {}): Promise<CassandraNode> {
  const dir = mkdtempSync(join(tmpdir(), "microchat-cassandra-"));
  const startArgs = (port?: number) => ["start", "--dir", dir, ...(port === undefined ? [] : ["--cql-port", String(port)])];
  let port: number;
  try {
    port = parsePort(await script(startArgs(options.cqlPort), dir));
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const node: CassandraNode = {
    contactPoint: `127.0.0.1:${port}`,
    port,
    dir,
    async stop() {
      await script(["stop", "--dir", dir], dir);
    },
    async start() {
      await script(startArgs(port), dir);
    },
    async destroy() {
      await node.stop().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
    logTail: (lines = 40) => logTail(dir, lines),
  };
  return node;
}

/** The node named by IM_TEST_CASSANDRA, if set: never stopped or started by tests. */
export function externalCassandraNode(): CassandraNode | undefined {
  const value = process.env[TEST_CASSANDRA_ENV];
  if (value === undefined || value === "") return undefined;
  const port = Number(/:(\d+)$/.exec(value)?.[1] ?? 9042);
  const contactPoint = value.includes(":") ? value : `${value}:9042`;
  return {
    contactPoint,
    port,
    dir: undefined,
    async stop() {},
    async start() {},
    async destroy() {},
    logTail: () => `(external Cassandra at ${contactPoint}: its logs are not ours)`,
  };
}

/**
 * The contact point of the Cassandra that test/global-setup/cassandra.ts started for this run.
 * Throws (never skips) when there is none: the global setup fails the run when Cassandra cannot
 * start, so reaching this without one means the setup did not consider this file.
 */
export function sharedCassandraContactPoint(): string {
  const contactPoint = inject("cassandraContactPoint");
  if (contactPoint === undefined || contactPoint === "") {
    throw new Error("no Cassandra for this run: test/global-setup/cassandra.ts starts one only for test files whose path contains 'cassandra'");
  }
  return contactPoint;
}

let keyspaceCounter = 0;

/** A keyspace name unique to this test process and call. */
export function uniqueKeyspace(prefix: string): string {
  keyspaceCounter++;
  return `${prefix}_${process.pid}_${Date.now().toString(36)}_${keyspaceCounter}`.replace(/[^A-Za-z0-9_]/g, "_").slice(0, 48);
}

/** A raw driver client on `contactPoint`, for tests that look underneath the store. */
export function rawClient(contactPoint: string): cassandra.Client {
  const port = Number(/:(\d+)$/.exec(contactPoint)?.[1] ?? 9042);
  return new cassandra.Client({
    contactPoints: [contactPoint],
    localDataCenter: "datacenter1",
    protocolOptions: { port },
    encoding: { useBigIntAsLong: true },
    queryOptions: { prepare: true },
  });
}

/** Drops a keyspace (test clean-up); ignores failures. */
export async function dropKeyspace(contactPoint: string, keyspace: string): Promise<void> {
  const client = rawClient(contactPoint);
  try {
    await client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
  } catch {
    // A test that failed may leave Cassandra down; the node's directory goes with it.
  } finally {
    await client.shutdown().catch(() => {});
  }
}

async function script(args: string[], dir: string): Promise<string> {
  try {
    const { stdout } = await run("bash", [SCRIPT, ...args], { timeout: 240_000 });
    return stdout;
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    throw new Error(`deploy/cassandra/cassandra.sh ${args.join(" ")} failed: ${e.message}\n${e.stderr ?? ""}\n${logTail(dir, 40)}`);
  }
}

function parsePort(stdout: string): number {
  const port = Number(/^CQL_PORT=(\d+)$/m.exec(stdout)?.[1]);
  if (!Number.isSafeInteger(port)) throw new Error(`cassandra.sh start printed no CQL_PORT line: ${stdout}`);
  return port;
}

function logTail(dir: string, lines: number): string {
  const parts: string[] = [];
  for (const file of ["logs/console.log", "logs/system.log"]) {
    try {
      const text = readFileSync(join(dir, file), "utf8").trimEnd().split("\n").slice(-lines).join("\n");
      parts.push(`---- ${file} (last ${lines} lines) ----\n${text}`);
    } catch {
      // Not written yet.
    }
  }
  return parts.join("\n") || "(no Cassandra logs)";
}

declare module "vitest" {
  export interface ProvidedContext {
    /** host:port of the Cassandra started by test/global-setup/cassandra.ts; "" when no test of this run needs it. */
    cassandraContactPoint: string;
  }
}
