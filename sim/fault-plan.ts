import type { Random } from "../server/core/clock.js";

/**
 * Every fault the simulator injects, as a probability per opportunity or a distribution.
 * All draws come from the run's one seeded PRNG; zero turns a fault off. Faults act during the
 * safety phase only: at `healAtMs` partitions heal, crashed nodes restart, slow consumers
 * speed up and every probability drops to zero (latency stays).
 */
export interface FaultConfig {
  /** One-way client-gateway latency: latencyMs + exponential jitter with mean jitterMs (capped at 10x the mean). */
  latencyMs: number;
  jitterMs: number;
  /** One-way latency between gateway nodes (the routing layer), same shape with jitterMs. */
  interNodeLatencyMs: number;
  /** Per push handed to a connection: probability it is lost (the routing layer is best effort). */
  pushLoss: number;
  /** Per push: probability it arrives twice (the copy has its own latency). */
  pushDuplicate: number;
  /** Per push: probability it is held back by uniform [0, reorderDelayMs], outside the connection's FIFO order. */
  pushReorder: number;
  reorderDelayMs: number;
  /** Connection drops: per connection, a Poisson process of this many drops per virtual minute. */
  dropsPerMinute: number;
  /** Probability that each side learns of a drop at once (TCP reset) rather than by heartbeat timeout. */
  resetProbability: number;
  /** Reconnect storms: this many times (uniform over the safety phase) every connection of one node is reset at once. */
  storms: number;
  /** Partitions: this many times one node is cut off from the other nodes for uniform [partitionMinMs, partitionMaxMs]. */
  partitions: number;
  partitionMinMs: number;
  partitionMaxMs: number;
  /** 1: a partitioned node also loses the store (its store calls time out without being applied). */
  partitionStore: number;
  /** Crashes: this many times a node crashes (memory lost, store kept) and restarts after uniform [downMinMs, downMaxMs]. */
  crashes: number;
  /** Drains: this many times a node is shut down gracefully (the production drain, then exit) and restarts after uniform [downMinMs, downMaxMs]. */
  drains: number;
  downMinMs: number;
  downMaxMs: number;
  /** Per store write: probability it is applied and then reported as a timeout (StoreUnavailableError: the ambiguous case). */
  storeTimeoutAfterWrite: number;
  /** Per store write: probability it fails before being applied (StoreUnavailableError). */
  storeFailBeforeWrite: number;
  /** Per store read: probability it fails (StoreUnavailableError). */
  storeReadFail: number;
  /** Per append: probability that the conversation changed owner uncleanly just before, so its seqs skip a block (a Cassandra takeover). */
  storeSeqSkip: number;
  /** Store round trip: storeLatencyMs + exponential jitter with mean storeJitterMs; 0 and 0: no virtual time at all. */
  storeLatencyMs: number;
  storeJitterMs: number;
  /** How long a failing store call takes to fail. */
  storeTimeoutMs: number;
  /** Share of devices that read pushes slowly (slow consumers), taking slowPushMs per push. */
  slowShare: number;
  slowPushMs: number;
  /** Each node incarnation's clock reads virtual time plus a skew drawn uniform in [-clockSkewMs, +clockSkewMs]. */
  clockSkewMs: number;
}

/** Faults with everything off but a little latency. */
export const NO_FAULTS: FaultConfig = {
  latencyMs: 5,
  jitterMs: 5,
  interNodeLatencyMs: 1,
  pushLoss: 0,
  pushDuplicate: 0,
  pushReorder: 0,
  reorderDelayMs: 0,
  dropsPerMinute: 0,
  resetProbability: 1,
  storms: 0,
  partitions: 0,
  partitionMinMs: 0,
  partitionMaxMs: 0,
  partitionStore: 0,
  crashes: 0,
  drains: 0,
  downMinMs: 0,
  downMaxMs: 0,
  storeTimeoutAfterWrite: 0,
  storeFailBeforeWrite: 0,
  storeReadFail: 0,
  storeSeqSkip: 0,
  storeLatencyMs: 0,
  storeJitterMs: 0,
  storeTimeoutMs: 1000,
  slowShare: 0,
  slowPushMs: 0,
  clockSkewMs: 0,
};

/** What happens to one push. */
export type PushFate = "delivered" | "lost" | "duplicated" | "reordered";

/** What happens to one store write. */
export type WriteFate = "applied" | "failed-before" | "timeout-after";

/** The run's source of randomness: one seeded PRNG behind helpers for the distributions above. */
export class Rng {
  readonly #random: Random;

  constructor(random: Random) {
    this.#random = random;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.#random.nextUint32() / 0x1_0000_0000;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }

  /** Uniform in [min, max]. */
  between(min: number, max: number): number {
    return min + this.float() * (max - min);
  }

  /** True with probability p (no draw when p is 0, so turning a fault off changes nothing else). */
  chance(p: number): boolean {
    return p > 0 && this.float() < p;
  }

  /** Exponential with the given mean, capped at 10x the mean. */
  exponential(mean: number): number {
    if (mean <= 0) return 0;
    return Math.min(10 * mean, -Math.log(1 - this.float()) * mean);
  }
}

/** The fault probabilities of the running phase, switched off at the heal. */
export class Faults {
  readonly config: FaultConfig;
  readonly rng: Rng;
  /** False after the heal: no probabilistic fault fires any more. */
  active = true;

  constructor(config: FaultConfig, rng: Rng) {
    this.config = config;
    this.rng = rng;
  }

  /** A client-gateway one-way latency in whole ms, at least 1. */
  linkLatency(): number {
    return 1 + Math.floor(this.config.latencyMs + this.rng.exponential(this.config.jitterMs));
  }

  /** A gateway-gateway one-way latency in whole ms, at least 1. */
  nodeLatency(): number {
    return 1 + Math.floor(this.config.interNodeLatencyMs + this.rng.exponential(this.config.jitterMs));
  }

  /** A store round trip in whole ms (0 when the store has no latency configured). */
  storeLatency(): number {
    const c = this.config;
    if (c.storeLatencyMs === 0 && c.storeJitterMs === 0) return 0;
    return Math.floor(c.storeLatencyMs + this.rng.exponential(c.storeJitterMs));
  }

  pushFate(): PushFate {
    if (!this.active) return "delivered";
    const c = this.config;
    if (this.rng.chance(c.pushLoss)) return "lost";
    if (this.rng.chance(c.pushDuplicate)) return "duplicated";
    if (this.rng.chance(c.pushReorder)) return "reordered";
    return "delivered";
  }

  writeFate(): WriteFate {
    if (!this.active) return "applied";
    if (this.rng.chance(this.config.storeFailBeforeWrite)) return "failed-before";
    if (this.rng.chance(this.config.storeTimeoutAfterWrite)) return "timeout-after";
    return "applied";
  }

  readFails(): boolean {
    return this.active && this.rng.chance(this.config.storeReadFail);
  }

  /** The delay until a connection opened now is dropped, or undefined for none in this phase. */
  dropAfterMs(): number | undefined {
    const rate = this.config.dropsPerMinute;
    if (!this.active || rate <= 0) return undefined;
    return 1 + Math.floor(-Math.log(1 - this.rng.float()) * (60_000 / rate));
  }
}

/** One scheduled discrete fault. */
export interface DiscreteFault {
  readonly atMs: number;
  readonly kind: "storm" | "partition" | "crash" | "drain";
  readonly node: number;
  /** How long a partition lasts or a node stays down (ends at the heal at the latest). */
  readonly durationMs: number;
}

/**
 * Draws the discrete faults (storms, partitions, crashes, drains) of the safety phase [startMs,
 * healAtMs): uniform times, uniform node, uniform durations. Sorted by time.
 */
export function planDiscreteFaults(config: FaultConfig, nodes: number, startMs: number, healAtMs: number, rng: Rng): DiscreteFault[] {
  const out: DiscreteFault[] = [];
  const draw = (kind: DiscreteFault["kind"], count: number, minMs: number, maxMs: number): void => {
    for (let i = 0; i < count; i++) {
      const atMs = Math.floor(rng.between(startMs, healAtMs));
      out.push({ atMs, kind, node: rng.int(nodes), durationMs: Math.floor(rng.between(minMs, maxMs)) });
    }
  };
  draw("storm", config.storms, 0, 0);
  draw("partition", config.partitions, config.partitionMinMs, config.partitionMaxMs);
  draw("crash", config.crashes, config.downMinMs, config.downMaxMs);
  draw("drain", config.drains, config.downMinMs, config.downMaxMs);
  return out.sort((a, b) => a.atMs - b.atMs || a.node - b.node);
}
