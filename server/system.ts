import { randomBytes } from "node:crypto";
import type { Clock, Random } from "./core/clock.js";

/** The system clock, never moving backwards within the process. */
export const systemClock: Clock = (() => {
  let last = 0;
  return {
    nowMs() {
      last = Math.max(last, Date.now());
      return last;
    },
  };
})();

/** Randomness from the platform's CSPRNG, drawn in blocks to keep it cheap. */
export const systemRandom: Random = (() => {
  let block = new Uint32Array(0);
  let i = 0;
  return {
    nextUint32() {
      if (i >= block.length) {
        const bytes = randomBytes(4096);
        block = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
        i = 0;
      }
      return block[i++]!;
    },
  };
})();
