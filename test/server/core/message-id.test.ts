import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createSeededRandom } from "../../../server/core/clock.js";
import { createMessageIdGenerator } from "../../../server/core/message-id.js";

const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/;

/** The milliseconds encoded in an id's first 10 characters. */
function timeOf(id: string): number {
  let ms = 0;
  for (const c of id.slice(0, 10)) ms = ms * 32 + ALPHABET.indexOf(c);
  return ms;
}

function generator(times: () => number, seed = 1) {
  return createMessageIdGenerator({ nowMs: times }, createSeededRandom(seed));
}

describe("createMessageIdGenerator()", () => {
  it.each([0, 1, 1_700_000_000_000, 2 ** 48 - 1])("makes 26-character Crockford base32 ids carrying the time %i", (ms) => {
    const id = generator(() => ms).next();
    expect(id).toMatch(ULID);
    expect(timeOf(id)).toBe(ms);
  });

  it("makes strictly increasing ids with a frozen clock", () => {
    const ids = generator(() => 1_700_000_000_000);
    const made = Array.from({ length: 5_000 }, () => ids.next());
    for (let i = 1; i < made.length; i++) expect(made[i]! > made[i - 1]!).toBe(true);
    expect(new Set(made.map(timeOf))).toEqual(new Set([1_700_000_000_000]));
  });

  it("keeps increasing when the clock steps back", () => {
    const times = [5_000, 4_000, 4_000, 6_000];
    const ids = generator(() => times.shift()!);
    const made = [ids.next(), ids.next(), ids.next(), ids.next()];
    expect([...made].sort()).toEqual(made);
    expect(new Set(made).size).toBe(4);
  });

  it("sorts ids by their time prefix, for any non-decreasing times", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 2 ** 48 - 1 }), { minLength: 1, maxLength: 50 }), fc.integer(), (raw, seed) => {
        const times = [...raw].sort((a, b) => a - b);
        const queue = [...times];
        const ids = generator(() => queue.shift()!, seed);
        const made = times.map(() => ids.next());
        expect(made.map(timeOf)).toEqual(times);
        for (let i = 1; i < made.length; i++) expect(made[i]! > made[i - 1]!).toBe(true);
      }),
    );
  });

  it("gives generators with different seeds different ids in the same millisecond", () => {
    const a = generator(() => 1_000, 1);
    const b = generator(() => 1_000, 2);
    expect(a.next()).not.toBe(b.next());
  });
});
