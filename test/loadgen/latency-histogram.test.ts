import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { LatencyHistogram } from "../../loadgen/latency-histogram.js";
import { allValues } from "./support/histogram-values.js";

const run = promisify(execFile);
const CHILD = fileURLToPath(new URL("./support/record-histogram.ts", import.meta.url));

/** The exact values at the ranks a percentile can name (conventions differ by one rank). */
function exactCandidates(sorted: readonly number[], p: number): number[] {
  const rank = Math.ceil((p / 100) * sorted.length) - 1;
  return [sorted[Math.max(0, rank - 1)]!, sorted[rank]!];
}

describe("LatencyHistogram", () => {
  it("reports percentiles within 0.1% of the exact ones", () => {
    const values = allValues();
    const h = new LatencyHistogram();
    for (const v of values) h.record(v);
    const sorted = [...values].sort((a, b) => a - b);
    for (const p of [50, 90, 99, 99.9]) {
      const error = Math.min(...exactCandidates(sorted, p).map((exact) => Math.abs(h.percentileMs(p) - exact) / exact));
      expect(error).toBeLessThan(0.001);
    }
    expect(h.count).toBe(values.length);
  });

  it("is empty until something is recorded, and clamps negative latencies to 0", () => {
    const h = new LatencyHistogram();
    expect(h.summary()).toMatchObject({ count: 0, p99Ms: 0, maxMs: 0 });
    h.record(-3);
    expect(h.summary()).toMatchObject({ count: 1, p50Ms: 0 });
  });

  it("merges histograms recorded in separate processes into the single-process result", async () => {
    const shards = 3;
    const encoded = await Promise.all(
      Array.from({ length: shards }, (_, i) => run(process.execPath, ["--import", "tsx", CHILD, String(i), String(shards)], { cwd: process.cwd() }).then((r) => r.stdout)),
    );
    const merged = LatencyHistogram.merge(encoded);
    const single = new LatencyHistogram();
    for (const v of allValues()) single.record(v);
    expect(merged.summary()).toEqual(single.summary());
    // Each shard alone sees a different tail than the whole.
    expect(LatencyHistogram.decode(encoded[0]!).count).toBe(10_000);
  }, 60_000);
});
