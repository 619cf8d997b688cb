import type { Clock } from "./clock.js";
import { RateLimiter, type BucketDraw } from "./rate-limiter.js";
import { fail, type Failure } from "./result.js";

/** The limits, from the configuration (0 turns one off). */
export interface RateLimitSettings {
  /** Messages a user may send per second, over all its connections and unary calls. */
  readonly userSendsPerS: number;
  /** Message body bytes a user may send per second. */
  readonly userBytesPerS: number;
  /** Messages one long connection may send per second. */
  readonly connectionSendsPerS: number;
  /** Message body bytes one long connection may send per second. */
  readonly connectionBytesPerS: number;
  /** Groups a user may create per minute. */
  readonly userGroupsPerMin: number;
  /** Bursts: each bucket holds this many seconds of its rate (a minute's worth for groups). */
  readonly burstS: number;
}

/** The defaults, documented in the README's configuration table. */
export const DEFAULT_RATE_LIMITS: RateLimitSettings = {
  userSendsPerS: 50,
  userBytesPerS: 4_194_304,
  connectionSendsPerS: 30,
  connectionBytesPerS: 2_097_152,
  userGroupsPerMin: 10,
  burstS: 2,
};

/**
 * The core's rate limits per user and per long connection: sends (count and body bytes) and
 * groups created, as token buckets on the core's clock. Each process counts what arrives at
 * it: a user's limit applies per worker process, so a user whose devices are connected to N
 * workers may send up to N times the per-user rate (each connection keeps its own limit). A refusal is a `rate_limited` Failure
 * carrying the wait until the request would pass (`retryAfterMs`).
 */
export class RateLimits {
  readonly #settings: RateLimitSettings;
  readonly #limiter: RateLimiter;

  constructor(settings: RateLimitSettings, clock: Clock, bucketsMax?: number) {
    this.#settings = settings;
    this.#limiter = new RateLimiter({ clock, ...(bucketsMax === undefined ? {} : { bucketsMax }) });
  }

  /** Buckets held (bounded; for stats and tests). */
  get buckets(): number {
    return this.#limiter.size;
  }

  /** A send of `bytes` body bytes by `userId`, on long connection `connectionId` if any. */
  send(userId: string, connectionId: string | undefined, bytes: number): Failure | undefined {
    const s = this.#settings;
    const draws: BucketDraw[] = [];
    const add = (key: string, perS: number, cost: number) => {
      if (perS > 0) draws.push({ key, rate: { perS, burst: Math.max(perS * s.burstS, 1) }, cost });
    };
    add(`u:${userId}:sends`, s.userSendsPerS, 1);
    add(`u:${userId}:bytes`, s.userBytesPerS, bytes);
    if (connectionId !== undefined) {
      add(`c:${connectionId}:sends`, s.connectionSendsPerS, 1);
      add(`c:${connectionId}:bytes`, s.connectionBytesPerS, bytes);
    }
    return this.#take(draws, "messages");
  }

  /** A group created by `userId`. */
  createGroup(userId: string): Failure | undefined {
    const perMin = this.#settings.userGroupsPerMin;
    if (perMin <= 0) return undefined;
    return this.#take([{ key: `u:${userId}:groups`, rate: { perS: perMin / 60, burst: Math.max(perMin, 1) }, cost: 1 }], "groups");
  }

  #take(draws: BucketDraw[], what: string): Failure | undefined {
    if (draws.length === 0) return undefined;
    const decision = this.#limiter.take(draws);
    if (decision.ok) return undefined;
    const scope = decision.key.startsWith("c:") ? "this connection" : "you";
    return { ...fail("rate_limited", `${scope} sent too many ${decision.key.endsWith(":bytes") ? "message bytes" : what}: retry after ${decision.retryAfterMs} ms`), retryAfterMs: decision.retryAfterMs };
  }
}
