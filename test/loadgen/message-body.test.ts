import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeLoadBody, encodeLoadBody, LOADGEN_CONTENT_TYPE, readLoadTimes } from "../../loadgen/message-body.js";

describe("readLoadTimes()", () => {
  it("reads the due and written times the full decoder reads, from any body the load generator writes (property)", () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 4e12, noNaN: true }), fc.double({ min: 0, max: 1000, noNaN: true }), fc.string(), fc.nat(), fc.nat({ max: 300 }), (due, late, from, n, pad) => {
        const body = encodeLoadBody({ dueMs: due, writtenMs: due + late, from, n }, pad);
        const full = decodeLoadBody(LOADGEN_CONTENT_TYPE, body)!;
        const fast = readLoadTimes(LOADGEN_CONTENT_TYPE, body)!;
        // Within a few units in the last place: far below a microsecond.
        expect(Math.abs(fast.dueMs - full.dueMs)).toBeLessThanOrEqual(Math.abs(full.dueMs) * 1e-15);
        expect(Math.abs(fast.writtenMs - full.writtenMs)).toBeLessThanOrEqual(Math.abs(full.writtenMs) * 1e-15);
      }),
      { numRuns: 500 },
    );
  });

  it.each([
    ["another content type", "text/plain", encodeLoadBody({ dueMs: 1, writtenMs: 2, from: "a", n: 1 })],
    ["a body that is not the load generator's", LOADGEN_CONTENT_TYPE, new TextEncoder().encode('{"d":12,"x":3}')],
    ["an empty body", LOADGEN_CONTENT_TYPE, new Uint8Array(0)],
  ])("reads nothing from %s", (_what, contentType, body) => {
    expect(readLoadTimes(contentType, body)).toBeUndefined();
  });
});
