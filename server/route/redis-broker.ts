import calculateSlot from "cluster-key-slot";
import { Cluster, Redis, type RedisOptions } from "ioredis";
import type { Logger } from "pino";
import { SubscriptionBatch, type Broker, type BrokerStats, type DirectLink } from "./broker.js";
import { Publication } from "./publication.js";

/** Options of `openRedisBroker`. */
export interface RedisBrokerOptions {
  /** redis://host:port[/db] for one Redis, or redis+cluster://host:port,host:port,... for a Redis Cluster. */
  readonly url: string;
  /** This process's id: unique among every live process sharing the Redis (node id + worker). */
  readonly workerId: string;
  readonly logger: Logger;
  /** Prefix of every key and channel. Default "im:". */
  readonly keyPrefix?: string;
  /** Publications written to Redis and not yet answered; beyond it they are dropped. Default 10 000. */
  readonly pendingMax?: number;
  /** How long `open` waits for Redis before starting degraded. Default 2000 ms. */
  readonly connectWaitMs?: number;
}

/** What a Redis URL names: one server, or the seed nodes of a cluster. */
export type RedisTarget = { readonly kind: "single"; readonly url: string } | { readonly kind: "cluster"; readonly nodes: readonly { host: string; port: number }[] };

/** Parses `redis://...` (one server) or `redis+cluster://h1:p1,h2:p2` (a Redis Cluster's seed nodes). */
export function redisTarget(url: string): RedisTarget {
  const cluster = /^redis\+cluster:\/\/(.+)$/.exec(url);
  if (cluster === null) return { kind: "single", url };
  const nodes = cluster[1]!.split(",").map((node) => {
    const m = /^([^:/]+):(\d+)\/?$/.exec(node.trim());
    if (m === null) throw new Error(`--redis-url: a cluster node must be host:port, got ${JSON.stringify(node)}`);
    return { host: m[1]!, port: Number(m[2]) };
  });
  return { kind: "cluster", nodes };
}

/** A connection to `target`: a Redis, or a Cluster client (with sharded subscribers for a subscriber). */
export function connectRedis(target: RedisTarget, options: RedisOptions, subscriber: boolean): Redis | Cluster {
  if (target.kind === "single") return new Redis(target.url, options);
  const { lazyConnect, enableOfflineQueue, retryStrategy, ...redisOptions } = options;
  return new Cluster([...target.nodes], {
    lazyConnect,
    enableOfflineQueue,
    clusterRetryStrategy: (times) => retryStrategy?.(times) ?? null,
    shardedSubscribers: subscriber,
    redisOptions,
  });
}

/** The options every connection of the broker uses. */
export function redisConnectionOptions(name: string): RedisOptions {
  return {
    lazyConnect: true,
    // Fail fast while disconnected: a push that cannot go now is worthless later, and an
    // offline queue would grow without bound during an outage.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: 2000,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 10), 2000),
    connectionName: name,
  };
}

/**
 * Publications across processes and nodes through Redis sharded pub/sub (SPUBLISH /
 * SSUBSCRIBE): one channel per group (`im:c:<group>`) and per user (`im:u:<user>`). A
 * process subscribes to a channel while its hub holds a member, so the subscription is the
 * presence: there are no presence keys, no scripts and no lookups, Redis does O(1) work per
 * publication and sends it once to each subscribed process, and, because sharded channels
 * are spread over a cluster's shards by their slot, the same design runs on Redis Cluster.
 * Pub/sub rather than streams, because a push is best effort by contract: a device that
 * misses one repairs it from the store, so stream replay and acknowledgements would buy
 * nothing.
 *
 * Order: publications go out on one connection in call order and Redis keeps per-connection
 * order, so one process's publications on a channel reach each subscriber in order.
 *
 * On a Redis Cluster (`redis+cluster://` seed nodes) the same channels spread over the shards
 * by slot, a subscription batch is sent as one SSUBSCRIBE per slot, and ioredis keeps one
 * subscriber connection per shard.
 *
 * Redis down: publish drops (counted) and subscribe resolves at once; devices still send
 * (the store is the truth) and sync. When Redis returns, every wanted channel is subscribed
 * again and publications resume.
 */
export class RedisBroker implements Broker, DirectLink {
  readonly #pub: Redis | Cluster;
  readonly #sub: Redis | Cluster;
  /** SSUBSCRIBE takes several channels only within one slot on a cluster. */
  readonly #cluster: boolean;
  readonly #workerId: string;
  readonly #prefix: string;
  readonly #pendingMax: number;
  readonly #logger: Logger;
  readonly #subscriptions = new SubscriptionBatch(
    () => !this.#closed && this.#subUp,
    (subscribe, unsubscribe, done) => {
      if (unsubscribe.length > 0) {
        for (const group of this.#bySlot(unsubscribe.map((c) => this.#key(c)))) this.#sub.sunsubscribe(...group).catch(() => {});
      }
      if (subscribe.length === 0) {
        done();
        return;
      }
      // Done either way: a failed subscription leaves the process degraded for these channels
      // until the next reconnect subscribes them again; its devices sync meanwhile.
      this.#ssubscribe(subscribe.map((c) => this.#key(c))).then(done, (err: unknown) => {
        this.#lastError = err as Error;
        done();
      });
    },
  );
  #deliver: (channel: string, publication: Publication) => void = () => {};
  #recovered: () => void = () => {};
  #direct: (bytes: Uint8Array) => void = () => {};
  /** This process's own channel for direct messages (owner calls and replies). */
  readonly #directKey: string;
  #pending = 0;
  #pubUp = false;
  #subUp = false;
  #degraded = false;
  #lastError: Error | undefined;
  #closed = false;
  #published = 0;
  #received = 0;
  #dropped = 0;

  /** Use `openRedisBroker`. */
  constructor(options: RedisBrokerOptions) {
    this.#workerId = options.workerId;
    this.#prefix = options.keyPrefix ?? "im:";
    this.#pendingMax = options.pendingMax ?? 10_000;
    this.#logger = options.logger.child({ component: "redis-broker", workerId: options.workerId });
    this.#directKey = this.#key(`o:${options.workerId}`);
    const target = redisTarget(options.url);
    this.#cluster = target.kind === "cluster";
    this.#pub = connectRedis(target, redisConnectionOptions(`microchat:${options.workerId}:pub`), false);
    this.#sub = connectRedis(target, { ...redisConnectionOptions(`microchat:${options.workerId}:sub`), autoResubscribe: false }, true);
    this.#pub.on("ready", () => {
      // A cluster client opens its per-shard connections lazily, and commands sent while one
      // opens can be routed elsewhere and redirected, overtaking each other: open them all
      // first, so one process's publications on a channel keep their order.
      const opened = this.#pub instanceof Cluster ? Promise.all(this.#pub.nodes("master").map((n) => n.ping())) : Promise.resolve();
      opened.then(
        () => {
          this.#pubUp = true;
          this.#onUp();
        },
        (err: unknown) => (this.#lastError = err as Error),
      );
    });
    this.#sub.on("ready", () => {
      // Every wanted channel again: a first connection that failed, or a restarted Redis.
      const channels = [this.#directKey, ...[...this.#subscriptions.wanted].map((c) => this.#key(c))];
      this.#ssubscribe(channels).then(
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
    this.#sub.on("smessageBuffer", (channel: Buffer, message: Buffer) => this.#onMessage(channel, message));
  }

  /** Connects, waiting up to connectWaitMs; starts degraded if Redis does not answer. */
  async start(connectWaitMs: number): Promise<void> {
    this.#pub.connect().catch(() => {});
    this.#sub.connect().catch(() => {});
    const deadline = Date.now() + connectWaitMs;
    while (!this.available && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    if (!this.available) this.#onDown(new Error(`no answer from Redis within ${connectWaitMs} ms`));
  }

  /** True while both Redis connections are ready. */
  get available(): boolean {
    return this.#pubUp && this.#subUp;
  }

  onPublication(deliver: (channel: string, publication: Publication) => void): void {
    this.#deliver = deliver;
  }

  onRecovered(listener: () => void): void {
    this.#recovered = listener;
  }

  publish(channel: string, publication: Publication): void {
    if (this.#closed) return;
    if (!this.#pubUp || this.#pending >= this.#pendingMax) {
      this.#dropped++;
      return;
    }
    this.#pending++;
    this.#published++;
    const bytes = publication.encode();
    this.#pub.spublish(this.#key(channel), Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)).then(
      () => this.#pending--,
      () => {
        this.#pending--;
        this.#dropped++;
      },
    );
  }

  subscribe(channel: string): Promise<void> {
    return this.#subscriptions.subscribe(channel);
  }

  unsubscribe(channel: string): void {
    this.#subscriptions.unsubscribe(channel);
  }

  sendDirect(to: string, bytes: Uint8Array): void {
    if (this.#closed) return;
    if (!this.#pubUp || this.#pending >= this.#pendingMax) {
      this.#dropped++;
      return;
    }
    this.#pending++;
    this.#pub.spublish(this.#key(`o:${to}`), Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)).then(
      () => this.#pending--,
      () => {
        this.#pending--;
        this.#dropped++;
      },
    );
  }

  onDirect(receive: (bytes: Uint8Array) => void): void {
    this.#direct = receive;
  }

  /** The Redis connection for commands (shared with the owner directory). */
  get commands(): Redis | Cluster {
    return this.#pub;
  }

  stats(): BrokerStats & { available: boolean } {
    return {
      kind: "redis",
      available: this.available,
      channels: this.#subscriptions.wanted.size,
      published: this.#published,
      received: this.#received,
      dropped: this.#dropped,
    };
  }

  /** Lets publications in flight leave (up to 1 s) and closes both connections. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#subscriptions.release();
    const deadline = Date.now() + 1000;
    while (this.#pending > 0 && this.#pubUp && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    this.#sub.disconnect();
    this.#pub.disconnect();
  }

  /** SSUBSCRIBE to every channel of `keys`: one command, or one per slot on a cluster. */
  async #ssubscribe(keys: string[]): Promise<void> {
    await Promise.all(this.#bySlot(keys).map((group) => this.#sub.ssubscribe(...group)));
  }

  #bySlot(keys: string[]): string[][] {
    if (!this.#cluster) return [keys];
    const groups = new Map<number, string[]>();
    for (const key of keys) {
      const slot = calculateSlot(key);
      let group = groups.get(slot);
      if (group === undefined) groups.set(slot, (group = []));
      group.push(key);
    }
    return [...groups.values()];
  }

  #onMessage(channel: Buffer, message: Buffer): void {
    if (channel.length === Buffer.byteLength(this.#directKey) && channel.toString() === this.#directKey) {
      this.#direct(message);
      return;
    }
    let publication: Publication;
    try {
      publication = Publication.decode(message);
    } catch (err) {
      this.#dropped++;
      this.#logger.warn({ err }, "dropped a malformed publication");
      return;
    }
    if (publication.origin === this.#workerId) return;
    this.#received++;
    this.#deliver(channel.toString("utf8", Buffer.byteLength(this.#prefix)), publication);
  }

  #onUp(): void {
    if (!this.available || this.#closed) return;
    if (this.#degraded) {
      this.#degraded = false;
      this.#logger.info({ dropped: this.#dropped }, "redis available again: channels re-subscribed, pushes to other processes resume");
      this.#recovered();
    }
  }

  #onDown(err: Error | undefined): void {
    if (this.#closed || this.#degraded) return;
    this.#degraded = true;
    this.#logger.warn(
      { err },
      "redis unavailable: sends still persist; pushes to other processes are dropped until it returns (clients repair through prev_seq and sync)",
    );
  }

  #key(channel: string): string {
    return this.#prefix + channel;
  }
}

/** Creates a RedisBroker and connects it (see `start`). */
export async function openRedisBroker(options: RedisBrokerOptions): Promise<RedisBroker> {
  const broker = new RedisBroker(options);
  await broker.start(options.connectWaitMs ?? 2000);
  return broker;
}
