import type { Cluster, Redis } from "ioredis";
import type { Logger } from "pino";
import type { OwnerSet } from "./owners.js";

/** Redis's own clock in ms, so expiries do not depend on the nodes' clocks agreeing. */
const LUA_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)";

/** KEYS[1]: the owner set; ARGV: worker id, ttl ms. Refreshes the worker's lease; returns the live workers. */
const REFRESH = `${LUA_NOW}
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], ttl * 10)
return redis.call('ZRANGE', KEYS[1], '(' .. now, '+inf', 'BYSCORE')`;

interface DirectoryCommands {
  imOwnersRefresh(key: string, workerId: string, ttlMs: number): Promise<string[]>;
}

/**
 * The live owner processes of every node sharing a Redis: one sorted set (`im:owners`) of
 * worker ids scored by lease expiry on Redis's clock. Each worker renews its lease every
 * ttl/3 and reads the set back in the same script (one key, so it runs on Redis Cluster too);
 * a worker that dies stops renewing and drops out after the TTL, moving its conversations to
 * the others. A clean stop leaves at once.
 */
export class RedisOwnerDirectory {
  readonly #redis: Redis | Cluster;
  readonly #commands: DirectoryCommands;
  readonly #owners: OwnerSet;
  readonly #key: string;
  readonly #ttlMs: number;
  readonly #logger: Logger;
  readonly #onChange: (left: readonly string[]) => void;
  #nextRefreshMs = 0;
  #nowMs = 0;
  #refreshing = false;
  #closed = false;

  constructor(redis: Redis | Cluster, owners: OwnerSet, options: { keyPrefix?: string; ttlMs: number; logger: Logger; onChange: (left: readonly string[]) => void }) {
    this.#redis = redis;
    redis.defineCommand("imOwnersRefresh", { numberOfKeys: 1, lua: REFRESH });
    this.#commands = redis as unknown as DirectoryCommands;
    this.#owners = owners;
    this.#key = `${options.keyPrefix ?? "im:"}owners`;
    this.#ttlMs = options.ttlMs;
    this.#logger = options.logger;
    this.#onChange = options.onChange;
  }

  /** Renews this worker's lease and reloads the set when due (every ttl/3). Call it from a tick. */
  tick(nowMs: number): void {
    this.#nowMs = nowMs;
    if (this.#closed || this.#refreshing || nowMs < this.#nextRefreshMs) return;
    this.#refresh().catch(() => {});
  }

  /** Renews now; resolves once the set is loaded (or Redis did not answer). */
  async refresh(): Promise<void> {
    await this.#refresh();
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#redis.zrem(this.#key, this.#owners.self).catch(() => {});
  }

  async #refresh(): Promise<void> {
    this.#refreshing = true;
    try {
      const live = await this.#commands.imOwnersRefresh(this.#key, this.#owners.self, this.#ttlMs);
      this.#nextRefreshMs = this.#nowMs + Math.max(1, Math.floor(this.#ttlMs / 3));
      const before = this.#owners.members;
      if (this.#owners.update(live)) {
        const left = before.filter((m) => !this.#owners.members.includes(m));
        this.#logger.info({ owners: this.#owners.members.length, left }, "conversation owners changed");
        this.#onChange(left);
      }
    } catch (err) {
      // Redis is down: keep the last known set (sends still reach the store either way).
      this.#nextRefreshMs = this.#nowMs + 200;
      this.#logger.warn({ err }, "owner lease refresh failed");
    } finally {
      this.#refreshing = false;
    }
  }
}
