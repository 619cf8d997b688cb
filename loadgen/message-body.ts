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

/** When a load generator message was due and written (ms since the epoch). */
export interface LoadTimes {
  readonly dueMs: number;
  readonly writtenMs: number;
}

const DUE_PREFIX = encoder.encode('{"d":');
const WRITTEN_PREFIX = encoder.encode(',"w":');

/** Where the last readDecimal stopped. */
let decimalEnd = 0;

/** Reads a plain decimal number (as JSON.stringify writes these times) at `at` (NaN when none); sets decimalEnd. */
function readDecimal(data: Uint8Array, at: number): number {
  let whole = 0;
  let digits = 0;
  let i = at;
  for (; i < data.length && data[i]! >= 48 && data[i]! <= 57; i++, digits++) whole = whole * 10 + (data[i]! - 48);
  decimalEnd = i;
  if (digits === 0) return NaN;
  if (data[i] !== 46) return whole;
  let fraction = 0;
  let scale = 1;
  for (i++; i < data.length && data[i]! >= 48 && data[i]! <= 57; i++) {
    fraction = fraction * 10 + (data[i]! - 48);
    scale *= 10;
  }
  decimalEnd = i;
  return whole + fraction / scale;
}

function startsWith(data: Uint8Array, at: number, prefix: Uint8Array): boolean {
  if (data.length - at < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (data[at + i] !== prefix[i]) return false;
  return true;
}

/**
 * The due and written times of a load generator body, read from its bytes without decoding
 * the rest (a receiver does this for every delivery); undefined when the message was not sent
 * by the load generator.
 */
export function readLoadTimes(contentType: string, data: Uint8Array): LoadTimes | undefined {
  if (contentType !== LOADGEN_CONTENT_TYPE) return undefined;
  if (startsWith(data, 0, DUE_PREFIX)) {
    const dueMs = readDecimal(data, DUE_PREFIX.length);
    if (!Number.isNaN(dueMs) && startsWith(data, decimalEnd, WRITTEN_PREFIX)) {
      const writtenMs = readDecimal(data, decimalEnd + WRITTEN_PREFIX.length);
      const next = data[decimalEnd];
      if (!Number.isNaN(writtenMs) && (next === 44 || next === 125)) return { dueMs, writtenMs };
    }
  }
  // Another layout (e.g. an exponent): the full decoder.
  return decodeLoadBody(contentType, data);
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
