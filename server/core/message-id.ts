import type { Clock, Random } from "./clock.js";

const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/** Produces globally unique, time-ordered message ids. */
export interface MessageIdGenerator {
  /** A 26-character id (ULID layout): 48 bits of milliseconds, then 80 bits of entropy. */
  next(): string;
}

/**
 * Monotonic ULIDs: ids from one generator sort in creation order even within a millisecond
 * (the random part is incremented instead of redrawn), and ids from different generators are
 * unique with overwhelming probability (80 random bits per millisecond).
 */
export function createMessageIdGenerator(clock: Clock, random: Random): MessageIdGenerator {
  let lastMs = -1;
  // 80 bits of entropy as 16 base32 digits, kept as numbers so increment is cheap.
  const entropy = new Array<number>(16).fill(0);
  return {
    next() {
      const nowMs = Math.max(Math.floor(clock.nowMs()), lastMs);
      if (nowMs === lastMs) {
        increment(entropy);
      } else {
        lastMs = nowMs;
        for (let i = 0; i < 16; i++) entropy[i] = random.nextUint32() & 31;
      }
      let time = "";
      let t = nowMs;
      for (let i = 0; i < 10; i++) {
        time = ALPHABET[t % 32] + time;
        t = Math.floor(t / 32);
      }
      let rest = "";
      for (const digit of entropy) rest += ALPHABET[digit];
      return time + rest;
    },
  };
}

function increment(digits: number[]): void {
  for (let i = digits.length - 1; i >= 0; i--) {
    const d = digits[i]!;
    if (d < 31) {
      digits[i] = d + 1;
      return;
    }
    digits[i] = 0;
  }
  // 2^80 ids in one millisecond cannot happen; wrapping would break ordering, so fail loudly.
  throw new Error("message id entropy exhausted within one millisecond");
}
