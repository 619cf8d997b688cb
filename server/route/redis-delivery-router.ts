import { Redis, type RedisOptions } from "ioredis";
import type { Logger } from "pino";
import type { DeliveryRouter, Push, PushTarget } from "./delivery-router.js";
import { LocalDeliveryRouter } from "./local-delivery-router.js";
import { decodePushEnvelope, encodePushEnvelope } from "./push-envelope.js";

/** Options of `openRedisDeliveryRouter`. */
export interface RedisDeliveryRouterOptions {
  /** redis://host:port[/db] */
  readonly url: string;
  /** This process's id: unique among every live process sharing the Redis (node id + worker). */
  readonly workerId: string;
  /** How long a presence entry lives without a refresh; refreshed every third of it. */
  readonly presenceTtlMs: number;
  readonly logger: Logger;
  /** Prefix of every key and channel. Default "im:". */
  readonly keyPrefix?: string;
  /** Cross-process deliveries waiting for their presence lookup or publish; beyond it they are dropped. Default 10 000. */
  readonly pendingMax?: number;
  /** Users per presence script call (refresh and lookup). Default 500. */
  readonly batchMax?: number;
  /** How long `open` waits for Redis before starting degraded. Default 2000 ms. */
  readonly connectWaitMs?: number;
}

/** Counters for /stats and benchmarks. */
export interface RedisRouterStats {
  readonly workerId: string;
  readonly available: boolean;
  readonly connections: number;
  readonly users: number;
  /** Envelopes published to other processes. */
  readonly published: number;
  /** Envelopes received from other processes. */
  readonly received: number;
  /** Cross-process deliveries given up (Redis down, pending bound, lookup or publish failure). */
  readonly dropped: number;
}

interface PresenceCommands {
  imPresenceAdd(numKeys: number, ...args: (string | number)[]): Promise<number>;
  imPresenceLookup(numKeys: number, ...keys: string[]): Promise<string[][]>;
}

/** Redis's own clock in ms, so expiries do not depend on the nodes' clocks agreeing. */
const LUA_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)";

/** KEYS: presence keys; ARGV: worker id, ttl ms. Marks the worker live for each user until now + ttl. */
const PRESENCE_ADD = `${LUA_NOW}
local ttl = tonumber(ARGV[2])
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + ttl, ARGV[1])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end
return #KEYS`;

/** KEYS: presence keys. Returns, per key, the workers whose entry has not expired. */
const PRESENCE_LOOKUP = `${LUA_NOW}
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('ZRANGE', key, '(' .. now, '+inf', 'BYSCORE') end
return out`;

/**
 * Presence and delivery across processes and nodes through one Redis (ioredis), on top of a
 * LocalDeliveryRouter for this process's own connections.
 *
 * Presence: one sorted set per user (`im:p:<user>`) whose members are the worker ids holding
 * the user's live connections, scored by expiry time on Redis's clock. A worker adds a user
 * when its first connection attaches, removes it when the last one detaches, and re-asserts
 * all its users every ttl/3 (`tick`): the worker's heartbeat. A node that dies stops
 * refreshing, so its entries stop counting after the TTL and are swept by later writes; the
 * key itself expires when nobody refreshes it.
 *
 * Delivery: Redis pub/sub, one channel per worker (`im:w:<worker>`), chosen over streams
 * because a push is best effort by contract: a recipient that misses one repairs it from the
 * store through prev_seq or its next sync, so the replay, trimming and consumer-group
 * acknowledgements of streams would buy nothing, while pub/sub costs one PUBLISH per target
 * worker and keeps no state in Redis. `deliver` hands pushes to local connections at once,
 * then looks up the other users' workers (one pipelined script call) and publishes one
 * envelope per target worker holding only that worker's users. Lookups are issued at once and
 * their publishes in call order, so the pushes one process hands off for a conversation reach
 * a given worker in order when nothing is lost (Redis keeps per-connection order).
 *
 * Redis down: `deliver` still delivers locally and drops the remote part (counted); sends are
 * unaffected because the store, not Redis, is the truth. Commands fail fast (no offline
 * queue) rather than queueing without bound. When Redis returns, presence is re-asserted at
 * once (a restarted Redis is empty) and the subscription is renewed by ioredis.
 *
 * Sequence numbers are not this router's business: the store allocates them (SQLite's write
 * transaction, Cassandra's per-conversation owner); any process may append to any
 * conversation. Two processes appending to one conversation publish independently, so their
 * pushes can arrive out of seq order; the client's SyncEngine reorders along prev_seq.
 *
 * Not for Redis Cluster: presence scripts touch several users' keys in one call.
 */
export class RedisDeliveryRouter implements DeliveryRouter {
  readonly #local = new LocalDeliveryRouter();
  readonly #pub: Redis;
  readonly #sub: Redis;
  readonly #commands: PresenceCommands;
  readonly #workerId: string;
  readonly #prefix: string;
  readonly #ttlMs: number;
  readonly #pendingMax: number;
  readonly #batchMax: number;
  readonly #logger: Logger;
  #pending = 0;
  #tail: Promise<void> = Promise.resolve();
  #nextRefreshMs = 0;
  #pubUp = false;
  #subUp = false;
  #degraded = false;
  #lastError: Error | undefined;
  #pendingWarned = false;
  #closed = false;
  #published = 0;
  #received = 0;
  #dropped = 0;

  /** Use `openRedisDeliveryRouter`. */
  constructor(options: RedisDeliveryRouterOptions) {
    this.#workerId = options.workerId;
    this.#prefix = options.keyPrefix ?? "im:";
    this.#ttlMs = options.presenceTtlMs;
    this.#pendingMax = options.pendingMax ?? 10_000;
    this.#batchMax = options.batchMax ?? 500;
    this.#logger = options.logger.child({ component: "redis-router", workerId: options.workerId });
    const redisOptions: RedisOptions = {
      lazyConnect: true,
      // Fail fast while disconnected: a push that cannot go now is worthless later, and an
      // offline queue would grow without bound during an outage.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: 2000,
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 10), 2000),
      connectionName: `microchat:${options.workerId}`,
    };
    this.#pub = new Redis(options.url, redisOptions);
    this.#sub = new Redis(options.url, redisOptions);
    this.#pub.defineCommand("imPresenceAdd", { lua: PRESENCE_ADD });
    this.#pub.defineCommand("imPresenceLookup", { lua: PRESENCE_LOOKUP, readOnly: true });
    this.#commands = this.#pub as unknown as PresenceCommands;
    this.#pub.on("ready", () => {
      this.#pubUp = true;
      this.#onUp();
    });
    // Subscribing on every "ready" (not only once) also covers a first connection that failed,
    // which ioredis's automatic re-subscription does not; subscribing twice is harmless.
    this.#sub.on("ready", () => {
      this.#sub.subscribe(this.#channel(this.#workerId)).then(
        () => {
          this.#subUp = true;
          this.#onUp();
        },
        (err: unknown) => (this.#lastError = err as Error),
      );
    });
    for (const [client, which] of [[this.#pub, "pub"], [this.#sub, "sub"]] as const) {
      // Connection errors come before "close" and on every failed reconnect: keep the last for the log.
      client.on("error", (err: Error) => (this.#lastError = err));
      client.on("close", () => {
        if (which === "pub") this.#pubUp = false;
        else this.#subUp = false;
        this.#onDown(this.#lastError);
      });
    }
    this.#sub.on("messageBuffer", (_channel: Buffer, message: Buffer) => this.#onEnvelope(message));
  }

  /** Connects and subscribes, waiting up to connectWaitMs; starts degraded if Redis does not answer. */
  async start(connectWaitMs: number): Promise<void> {
    this.#pub.connect().catch(() => {});
    this.#sub.connect().catch(() => {});
    const deadline = Date.now() + connectWaitMs;
    while (!this.available && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    if (!this.available) this.#onDown(new Error(`no answer from Redis within ${connectWaitMs} ms`));
  }

  /** True while both Redis connections are ready and this worker's channel is subscribed. */
  get available(): boolean {
    return this.#pubUp && this.#subUp;
  }

  attach(target: PushTarget): void {
    const before = this.#local.connectionsOf(target.userId);
    this.#local.attach(target);
    if (before === 0 && this.#local.connectionsOf(target.userId) === 1) this.#register([target.userId]);
  }

  detach(target: PushTarget): void {
    const before = this.#local.connectionsOf(target.userId);
    this.#local.detach(target);
    if (before > 0 && this.#local.connectionsOf(target.userId) === 0 && this.#pubUp) {
      this.#pub.zrem(this.#presenceKey(target.userId), this.#workerId).catch(() => {});
    }
  }

  deliver(userIds: readonly string[], push: Push, exceptConnectionId?: string): void {
    this.#local.deliver(userIds, push, exceptConnectionId);
    if (userIds.length === 0 || this.#closed) return;
    if (!this.#pubUp) {
      this.#dropped++;
      return;
    }
    if (this.#pending >= this.#pendingMax) {
      this.#dropped++;
      if (!this.#pendingWarned) {
        this.#pendingWarned = true;
        this.#logger.warn({ pendingMax: this.#pendingMax }, "cross-process deliveries over their bound: dropping pushes (clients repair through sync)");
      }
      return;
    }
    this.#pending++;
    const lookup = this.lookup(userIds);
    // Publishes leave in call order; lookups are already pipelined, so nothing waits a round trip per call.
    this.#tail = this.#tail
      .then(() => lookup)
      .then(
        (where) => {
          const publishes = this.#publish(where, push, exceptConnectionId);
          void Promise.allSettled(publishes).then((results) => {
            for (const r of results) if (r.status === "rejected") this.#dropped++;
            this.#settle();
          });
        },
        () => {
          this.#dropped++;
          this.#settle();
        },
      );
  }

  connectionCount(): number {
    return this.#local.connectionCount();
  }

  /** For each user, the workers other than this one that hold its live connections (per Redis, now). */
  async lookup(userIds: readonly string[]): Promise<Map<string, string[]>> {
    const unique = [...new Set(userIds)];
    const where = new Map<string, string[]>();
    const calls: Promise<void>[] = [];
    for (let i = 0; i < unique.length; i += this.#batchMax) {
      const batch = unique.slice(i, i + this.#batchMax);
      calls.push(
        this.#commands.imPresenceLookup(batch.length, ...batch.map((u) => this.#presenceKey(u))).then((rows) => {
          batch.forEach((user, j) => {
            const workers = (rows[j] ?? []).filter((w) => w !== this.#workerId);
            if (workers.length > 0) where.set(user, workers);
          });
        }),
      );
    }
    await Promise.all(calls);
    return where;
  }

  /** Refreshes this worker's presence entries when due (every ttl/3). Call it from the server's tick. */
  tick(nowMs: number): void {
    if (this.#closed || nowMs < this.#nextRefreshMs || !this.#pubUp) return;
    this.#nextRefreshMs = nowMs + Math.max(1, Math.floor(this.#ttlMs / 3));
    this.#register([...this.#local.users()]);
  }

  stats(): RedisRouterStats {
    return {
      workerId: this.#workerId,
      available: this.available,
      connections: this.#local.connectionCount(),
      users: [...this.#local.users()].length,
      published: this.#published,
      received: this.#received,
      dropped: this.#dropped,
    };
  }

  /**
   * Removes this worker's presence (best effort, when Redis is up), lets queued publishes
   * leave, and closes both connections. Call after the gateway has drained.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const users = [...this.#local.users()];
    if (this.#pubUp) {
      const leave = this.#pub.pipeline();
      for (const user of users) leave.zrem(this.#presenceKey(user), this.#workerId);
      await Promise.race([Promise.all([leave.exec().catch(() => {}), this.#tail]), new Promise((r) => setTimeout(r, 1000))]);
    }
    this.#sub.disconnect();
    this.#pub.disconnect();
  }

  #register(users: string[]): void {
    if (!this.#pubUp || users.length === 0) return;
    for (let i = 0; i < users.length; i += this.#batchMax) {
      const keys = users.slice(i, i + this.#batchMax).map((u) => this.#presenceKey(u));
      this.#commands.imPresenceAdd(keys.length, ...keys, this.#workerId, this.#ttlMs).catch((err: unknown) => {
        this.#logger.debug({ err }, "presence refresh failed");
      });
    }
  }

  #publish(where: Map<string, string[]>, push: Push, exceptConnectionId: string | undefined): Promise<number>[] {
    const byWorker = new Map<string, string[]>();
    for (const [user, workers] of where) {
      for (const worker of workers) {
        let users = byWorker.get(worker);
        if (users === undefined) byWorker.set(worker, (users = []));
        users.push(user);
      }
    }
    const publishes: Promise<number>[] = [];
    for (const [worker, userIds] of byWorker) {
      const envelope = encodePushEnvelope({ userIds, push, exceptConnectionId });
      publishes.push(this.#pub.publish(this.#channel(worker), Buffer.from(envelope.buffer, envelope.byteOffset, envelope.byteLength)));
      this.#published++;
    }
    return publishes;
  }

  #onEnvelope(message: Buffer): void {
    let envelope;
    try {
      envelope = decodePushEnvelope(message);
    } catch (err) {
      this.#logger.warn({ err }, "dropped a malformed push envelope");
      return;
    }
    this.#received++;
    this.#local.deliver(envelope.userIds, envelope.push, envelope.exceptConnectionId);
  }

  #settle(): void {
    this.#pending--;
    if (this.#pending === 0) this.#pendingWarned = false;
  }

  #onUp(): void {
    if (!this.available || this.#closed) return;
    if (this.#degraded) {
      this.#degraded = false;
      this.#logger.info({ dropped: this.#dropped }, "redis available again: presence re-registered, cross-process pushes resume");
    }
    // A restarted Redis is empty, and entries may have expired during the outage.
    this.#nextRefreshMs = 0;
    this.#register([...this.#local.users()]);
  }

  #onDown(err: Error | undefined): void {
    if (this.#closed || this.#degraded) return;
    this.#degraded = true;
    this.#logger.warn(
      { err },
      "redis unavailable: sends still persist; pushes to other processes are dropped until it returns (clients repair through prev_seq and sync)",
    );
  }

  #presenceKey(userId: string): string {
    return `${this.#prefix}p:${userId}`;
  }

  #channel(workerId: string): string {
    return `${this.#prefix}w:${workerId}`;
  }
}

/** Creates a RedisDeliveryRouter and connects it (see `start`). */
export async function openRedisDeliveryRouter(options: RedisDeliveryRouterOptions): Promise<RedisDeliveryRouter> {
  const router = new RedisDeliveryRouter(options);
  await router.start(options.connectWaitMs ?? 2000);
  return router;
}
