import * as hdr from "hdr-histogram-js";

/** Percentiles of a latency histogram, in milliseconds (microsecond resolution). */
export interface LatencySummary {
  readonly count: number;
  readonly minMs: number;
  readonly meanMs: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly maxMs: number;
}

const BIT_BUCKET_SIZE = 64;
/** Values are stored in microseconds; anything past an hour is clamped (a stuck loop, not a latency). */
const MAX_US = 3_600_000_000;

function build(): hdr.Histogram {
  return hdr.build({
    bitBucketSize: BIT_BUCKET_SIZE,
    autoResize: true,
    lowestDiscernibleValue: 1,
    numberOfSignificantValueDigits: 3,
    useWebAssembly: false,
  });
}

/**
 * An HDR latency histogram: values recorded in milliseconds, stored as integer microseconds
 * with 3 significant digits (so every percentile is within 0.1% of the true value). Histograms
 * from different processes merge exactly: encode() in one, decode() and add() in another.
 */
export class LatencyHistogram {
  readonly #h: hdr.Histogram;

  constructor(h: hdr.Histogram = build()) {
    this.#h = h;
  }

  /** Decodes what encode() produced (in any process). */
  static decode(encoded: string): LatencyHistogram {
    return new LatencyHistogram(hdr.decodeFromCompressedBase64(encoded, BIT_BUCKET_SIZE, false));
  }

  /** Merges encoded histograms into one. */
  static merge(encoded: Iterable<string>): LatencyHistogram {
    const merged = new LatencyHistogram();
    for (const e of encoded) merged.add(LatencyHistogram.decode(e));
    return merged;
  }

  /** Records one latency in milliseconds; negative values (clock skew) count as 0. */
  record(ms: number): void {
    const us = Math.round(ms * 1000);
    this.#h.recordValue(Math.min(MAX_US, Math.max(0, Number.isFinite(us) ? us : MAX_US)));
  }

  /** Values recorded. */
  get count(): number {
    return this.#h.totalCount;
  }

  /** Adds every value of `other`. */
  add(other: LatencyHistogram): void {
    this.#h.add(other.#h);
  }

  /** Forgets every value. */
  reset(): void {
    this.#h.reset();
  }

  /** The value at `percentile` (0-100), in milliseconds; 0 when empty. */
  percentileMs(percentile: number): number {
    return this.count === 0 ? 0 : this.#h.getValueAtPercentile(percentile) / 1000;
  }

  /** The standard HdrHistogram V2 compressed base64 form (readable by any HdrHistogram port). */
  encode(): string {
    return hdr.encodeIntoCompressedBase64(this.#h);
  }

  summary(): LatencySummary {
    const empty = this.count === 0;
    return {
      count: this.count,
      minMs: this.percentileMs(0),
      meanMs: empty ? 0 : this.#h.mean / 1000,
      p50Ms: this.percentileMs(50),
      p90Ms: this.percentileMs(90),
      p99Ms: this.percentileMs(99),
      p999Ms: this.percentileMs(99.9),
      // The highest equivalent value, as every percentile is: the same whether recorded here or merged.
      maxMs: this.percentileMs(100),
    };
  }
}
