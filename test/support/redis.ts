import { execFile } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { inject } from "vitest";

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL("../../scripts/redis.sh", import.meta.url));

/** A Redis server started by scripts/redis.sh. */
export interface RedisServer {
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** Stops the server (SIGTERM, then SIGKILL); idempotent. */
  stop(): Promise<void>;
  /** Starts it again on the same port, empty (no persistence), as after a Redis failure. */
  restart(): Promise<void>;
  /** Stops it and removes its directory. */
  destroy(): Promise<void>;
}

/**
 * Starts a Redis on a free loopback port (in `dir`, a new temporary directory by default),
 * installing Debian's redis-server first if needed. Rejects with the script's output when it
 * cannot start.
 */
export async function startRedis(dir?: string): Promise<RedisServer> {
  const started = await script(["start", ...(dir === undefined ? [] : ["--dir", dir])]);
  const port = Number(/^REDIS_PORT=(\d+)$/m.exec(started)?.[1]);
  const home = /^REDIS_DIR=(.+)$/m.exec(started)?.[1];
  if (!Number.isSafeInteger(port) || home === undefined) throw new Error(`scripts/redis.sh start printed no port: ${started}`);
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir: home,
    async stop() {
      await script(["stop", "--dir", home]);
    },
    async restart() {
      await script(["start", "--dir", home, "--port", String(port)]);
    },
    async destroy() {
      await script(["stop", "--dir", home]);
      rmSync(home, { recursive: true, force: true });
    },
  };
}

async function script(args: string[]): Promise<string> {
  try {
    const { stdout } = await run("bash", [SCRIPT, ...args], { timeout: 300_000 });
    return stdout;
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    throw new Error(`scripts/redis.sh ${args.join(" ")} failed: ${e.message}\n${e.stderr ?? ""}`);
  }
}

/**
 * The URL of the Redis that the global setup started ("" when it could not start outside CI,
 * in which case Redis tests are skipped with a warning; under CI=true the run fails instead).
 */
export function sharedRedisUrl(): string {
  return inject("redisUrl");
}

/** The last lines of a Redis log, for failure messages. */
export function redisLogTail(dir: string, lines = 20): string {
  try {
    return readFileSync(`${dir}/redis.log`, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no redis.log)";
  }
}

declare module "vitest" {
  export interface ProvidedContext {
    /** URL of the Redis started by test/global-setup/redis.ts; "" when unavailable outside CI. */
    redisUrl: string;
  }
}

/** A Redis Cluster started by scripts/redis.sh cluster-start (masters only, every slot assigned). */
export interface RedisCluster {
  /** redis+cluster://host:port,... as --redis-url takes it. */
  readonly url: string;
  destroy(): Promise<void>;
}

/** Starts a 3-node Redis Cluster on free loopback ports (installing redis-server if needed). */
export async function startRedisCluster(): Promise<RedisCluster> {
  const started = await script(["cluster-start"]);
  const nodes = /^REDIS_CLUSTER_NODES=(.+)$/m.exec(started)?.[1];
  const home = /^REDIS_DIR=(.+)$/m.exec(started)?.[1];
  if (nodes === undefined || home === undefined) throw new Error(`scripts/redis.sh cluster-start printed no nodes: ${started}`);
  return {
    url: `redis+cluster://${nodes}`,
    async destroy() {
      await script(["cluster-stop", "--dir", home]);
      rmSync(home, { recursive: true, force: true });
    },
  };
}
