/**
 * The body of every message the load generator sends: when it was due and when it was written,
 * so any receiver (in any process on this machine) can compute the end-to-end latency.
 */

/** Content type of load generator messages. */
export const LOADGEN_CONTENT_TYPE = "application/x-microchat-loadgen+json";

/** What a load generator message carries. */
export interface LoadBody {
  /** When the pacer scheduled the send (ms since the epoch, sub-ms precision). */
  readonly dueMs: number;
  /** When the SDK was handed the send (>= dueMs when the sender fell behind). */
  readonly writtenMs: number;
  /** The sending device. */
  readonly from: string;
  /** The sender's running number. */
  readonly n: number;
}

/**
 * Milliseconds since the epoch with sub-millisecond precision: performance.timeOrigin (taken once
 * at process start) plus the monotonic clock. Comparable across processes of one machine to
 * within the error of each process's timeOrigin, typically well under 0.1 ms.
 */
export function wallClockMs(): number {
  return performance.timeOrigin + performance.now();
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Encodes a body, padded with spaces to at least `minBytes`. */
export function encodeLoadBody(body: LoadBody, minBytes = 0): Uint8Array {
  const json = JSON.stringify({ d: body.dueMs, w: body.writtenMs, f: body.from, n: body.n });
  return encoder.encode(json.length >= minBytes ? json : json + " ".repeat(minBytes - json.length));
}

/** Decodes a body; undefined when the message was not sent by the load generator. */
export function decodeLoadBody(contentType: string, data: Uint8Array): LoadBody | undefined {
  if (contentType !== LOADGEN_CONTENT_TYPE) return undefined;
  try {
    const v = JSON.parse(decoder.decode(data)) as { d?: unknown; w?: unknown; f?: unknown; n?: unknown };
    if (typeof v.d !== "number" || typeof v.w !== "number" || typeof v.f !== "string" || typeof v.n !== "number") return undefined;
    return { dueMs: v.d, writtenMs: v.w, from: v.f, n: v.n };
  } catch {
    return undefined;
  }
}
