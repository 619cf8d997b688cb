/**
 * Time as the core sees it. The gateway passes a system clock; the simulator passes a
 * virtual one. The core never reads the system time itself.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch (or since the simulation's start). Never decreases. */
  nowMs(): number;
}

/**
 * Randomness as the core sees it: the simulator passes a seeded generator so a run is
 * reproducible; the gateway passes one backed by the platform's generator.
 */
export interface Random {
  /** A uniformly distributed integer in [0, 2^32). */
  nextUint32(): number;
}

/** A uniformly distributed float in [0, 1) drawn from `random`. */
export function nextFloat(random: Random): number {
  return random.nextUint32() / 0x1_0000_0000;
}

/**
 * A small, fast, seedable PRNG (sfc32). Deterministic for a given seed; used by the simulator
 * and by tests that need reproducible randomness.
 */
export function createSeededRandom(seed: number): Random {
  let a = 0x9e3779b9;
  let b = 0x243f6a88;
  let c = 0xb7e15162;
  let d = seed >>> 0;
  const next = (): number => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    let t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    t = (t + d) | 0;
    c = (c + t) | 0;
    return t >>> 0;
  };
  for (let i = 0; i < 12; i++) next();
  return { nextUint32: next };
}
