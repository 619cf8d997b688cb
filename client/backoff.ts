/** Reconnect backoff settings. */
export interface BackoffOptions {
  /** First delay ceiling. */
  readonly baseMs: number;
  /** Largest delay ceiling. */
  readonly maxMs: number;
}

/**
 * "Full jitter" exponential backoff: a uniform delay in [0, min(max, base * 2^attempt)], so
 * clients that lost the same server do not come back in lockstep. `random` returns [0, 1).
 */
export function backoffDelayMs(attempt: number, options: BackoffOptions, random: () => number): number {
  const ceiling = Math.min(options.maxMs, options.baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * (ceiling + 1));
}
