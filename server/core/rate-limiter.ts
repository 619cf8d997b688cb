import type { Clock } from "./clock.js";

/** A token bucket's shape: refills at `perS` tokens a second, holds at most `burst`. */
export interface BucketRate {
  readonly perS: number;
  readonly burst: number;
}

/** One bucket to draw from: its key (e.g. "u:alice:sends"), shape and the tokens wanted. */
export interface BucketDraw {
  readonly key: string;
  readonly rate: BucketRate;
  readonly cost: number;
}

/** The answer to a draw: allowed, or refused with the wait until it would be allowed. */
export type RateDecision = { readonly ok: true } | { readonly ok: false; readonly key: string; readonly retryAfterMs: number };

/** Bounds of the limiter's memory. */
export interface RateLimiterOptions {
  readonly clock: Clock;
  /** Buckets held at most; past it the least recently used is forgotten. Default 100,000. */
  readonly bucketsMax?: number;
}

interface Bucket {
  tokens: number;
  atMs: number;
  /** When the bucket is full again if nothing is drawn: from then on it equals no bucket at all. */
  fullAtMs: number;
}

/**
 * Token buckets keyed by string, on the injected clock. `take` draws from several buckets at
 * once: all or nothing, so a refused request costs nothing. A draw larger than a bucket's burst
 * is allowed only from a full bucket and empties it (a message larger than a byte burst is
 * slowed, never refused for ever).
 *
 * Memory: a bucket that has refilled is the same as no bucket, so such buckets are dropped as
 * they are met (each `take` looks at the two least recently used); at most `bucketsMax` are kept,
 * the least recently used forgotten first, which can only make the limiter more lenient for
 * that key. Pure: no timers, time from `clock`.
 */
export class RateLimiter {
  readonly #clock: Clock;
  readonly #bucketsMax: number;
  /** Least recently used first (Map keeps insertion order; a use re-inserts). */
  readonly #buckets = new Map<string, Bucket>();

  constructor(options: RateLimiterOptions) {
    this.#clock = options.clock;
    this.#bucketsMax = options.bucketsMax ?? 100_000;
  }

  /** Buckets held now. */
  get size(): number {
    return this.#buckets.size;
  }

  /** Draws every `draws` entry's cost from its bucket if all of them have it; otherwise draws none. */
  take(draws: readonly BucketDraw[]): RateDecision {
    const now = this.#clock.nowMs();
    this.#sweep(now);
    let refused: { key: string; retryAfterMs: number } | undefined;
    const levels: number[] = [];
    for (const draw of draws) {
      const level = this.#level(draw, now);
      levels.push(level);
      const need = Math.min(draw.cost, draw.rate.burst);
      if (level < need) {
        const retryAfterMs = Math.ceil(((need - level) / draw.rate.perS) * 1000);
        if (refused === undefined || retryAfterMs > refused.retryAfterMs) refused = { key: draw.key, retryAfterMs };
      }
    }
    if (refused !== undefined) return { ok: false, ...refused };
    draws.forEach((draw, i) => {
      const tokens = Math.max(levels[i]! - draw.cost, 0);
      const fullAtMs = now + ((draw.rate.burst - tokens) / draw.rate.perS) * 1000;
      this.#buckets.delete(draw.key);
      this.#buckets.set(draw.key, { tokens, atMs: now, fullAtMs });
    });
    while (this.#buckets.size > this.#bucketsMax) this.#buckets.delete(this.#buckets.keys().next().value!);
    return { ok: true };
  }

  /** Tokens in the bucket of `draw` at `now` (a missing bucket is full). */
  #level(draw: BucketDraw, now: number): number {
    const bucket = this.#buckets.get(draw.key);
    if (bucket === undefined) return draw.rate.burst;
    return Math.min(draw.rate.burst, bucket.tokens + ((now - bucket.atMs) / 1000) * draw.rate.perS);
  }

  #sweep(now: number): void {
    for (let i = 0; i < 2; i++) {
      const first = this.#buckets.entries().next().value;
      if (first === undefined || first[1].fullAtMs > now) return;
      this.#buckets.delete(first[0]);
    }
  }
}
