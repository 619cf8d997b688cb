import { LatencyHistogram } from "./latency-histogram.js";
import type { FleetCounters, ProgressSample } from "./protocol.js";

/** Percentiles of one interval. */
export interface IntervalLatency {
  readonly count: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
}

/** One point of the run's timeline (one progress interval). */
export interface TimelinePoint {
  /** Seconds since the run started, at the end of the interval. */
  readonly tS: number;
  readonly phase: string;
  readonly live: number;
  readonly sentPerS: number;
  readonly receivedPerS: number;
  readonly errors: number;
  readonly delivery: IntervalLatency;
  readonly rtt: IntervalLatency;
}

/** Most timeline points kept (a day at one per second would be 86400; beyond this the run is summarised only). */
const TIMELINE_MAX = 20_000;

function zero(): FleetCounters {
  return {
    live: 0,
    opened: 0,
    received: 0,
    written: 0,
    acked: 0,
    sendFailures: 0,
    connectFailures: 0,
    drops: 0,
    errors: 0,
    firstReceiptMs: 0,
    lastReceiptMs: 0,
    heartbeatsLate: 0,
    outOfOrder: 0,
    duplicates: 0,
    cpuMs: 0,
    rssBytes: 0,
    errorSamples: [],
  };
}

/** Sums counters of several processes. */
export function sumCounters(all: readonly FleetCounters[]): FleetCounters {
  const t = { ...zero(), errorSamples: [] as string[] };
  for (const c of all) {
    t.live += c.live;
    t.opened += c.opened;
    t.received += c.received;
    t.written += c.written;
    t.acked += c.acked;
    t.sendFailures += c.sendFailures;
    t.connectFailures += c.connectFailures;
    t.drops += c.drops;
    t.errors += c.errors;
    if (c.firstReceiptMs > 0) t.firstReceiptMs = t.firstReceiptMs === 0 ? c.firstReceiptMs : Math.min(t.firstReceiptMs, c.firstReceiptMs);
    t.lastReceiptMs = Math.max(t.lastReceiptMs, c.lastReceiptMs);
    t.heartbeatsLate += c.heartbeatsLate;
    t.outOfOrder += c.outOfOrder;
    t.duplicates += c.duplicates;
    t.cpuMs += c.cpuMs;
    t.rssBytes += c.rssBytes;
    for (const e of c.errorSamples) if (t.errorSamples.length < 20) t.errorSamples.push(e);
  }
  return t;
}

function interval(h: LatencyHistogram): IntervalLatency {
  return { count: h.count, p50Ms: h.percentileMs(50), p99Ms: h.percentileMs(99), p999Ms: h.percentileMs(99.9) };
}

/**
 * Aggregates the client processes' progress samples: the live progress line and the timeline
 * of rates and latency percentiles per interval (interval histograms merged across processes).
 */
export class ProgressBoard {
  readonly #latest = new Map<number, FleetCounters>();
  readonly #delivery = new LatencyHistogram();
  readonly #rtt = new LatencyHistogram();
  readonly #startedAt: number;
  readonly timeline: TimelinePoint[] = [];
  /** When each phase started (seconds since the run started). */
  readonly phases: { readonly name: string; readonly tS: number }[] = [];
  #previous = zero();
  #previousAt: number;
  #phase = "start";

  constructor(startedAt = performance.now()) {
    this.#startedAt = startedAt;
    this.#previousAt = startedAt;
  }

  set phase(name: string) {
    this.#phase = name;
    this.phases.push({ name, tS: (performance.now() - this.#startedAt) / 1000 });
  }

  update(sample: ProgressSample): void {
    this.#latest.set(sample.workerIndex, sample.counters);
    this.#delivery.add(LatencyHistogram.decode(sample.interval.delivery));
    this.#rtt.add(LatencyHistogram.decode(sample.interval.rtt));
  }

  totals(): FleetCounters {
    return sumCounters([...this.#latest.values()]);
  }

  /** Closes the current interval: appends a timeline point and returns the progress line. */
  tick(now = performance.now()): string {
    const t = this.totals();
    const dt = Math.max(1e-3, (now - this.#previousAt) / 1000);
    const point: TimelinePoint = {
      tS: (now - this.#startedAt) / 1000,
      phase: this.#phase,
      live: t.live,
      sentPerS: (t.written - this.#previous.written) / dt,
      receivedPerS: (t.received - this.#previous.received) / dt,
      errors: t.errors,
      delivery: interval(this.#delivery),
      rtt: interval(this.#rtt),
    };
    if (this.timeline.length < TIMELINE_MAX) this.timeline.push(point);
    this.#delivery.reset();
    this.#rtt.reset();
    this.#previous = t;
    this.#previousAt = now;
    const latency = point.delivery.count > 0 ? ` | e2e p99 ${point.delivery.p99Ms.toFixed(1)} ms` : point.rtt.count > 0 ? ` | rtt p99 ${point.rtt.p99Ms.toFixed(2)} ms` : "";
    return (
      `[${point.tS.toFixed(0).padStart(5)}s] ${point.phase.padEnd(9)} live ${t.live}/${t.opened}` +
      ` | sent ${t.written} (${point.sentPerS.toFixed(0)}/s) | recv ${t.received} (${point.receivedPerS.toFixed(0)}/s)` +
      ` | errors ${t.errors} drops ${t.drops}${latency}`
    );
  }
}
