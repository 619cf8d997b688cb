import type { CheckedDevice, Checkers } from "./checkers.js";
import type { Link } from "./network.js";

/** The settings the bound is derived from (SimConfig fields). */
export interface ShownBoundConfig {
  readonly latencyMs: number;
  readonly jitterMs: number;
  readonly storeLatencyMs: number;
  readonly storeJitterMs: number;
  readonly reorderWindowMs: number;
  readonly fetchDefault: number;
  readonly syncSessionsDefault: number;
}

/** Store calls one answer waits for at most: the membership check, the read, a sync's sessions. */
const STORE_CALLS_PER_ANSWER = 3;
/**
 * Round trips besides the fetches of the gap itself: the fetch in flight when the push came
 * (the engine fetches one hole at a time), the sync of a link that was just opened, and the
 * fetch that finds the rest after a page said there is more.
 */
const EXTRA_ROUND_TRIPS = 3;

/**
 * The longest a round trip of a live link can take in this run: one request and its answer at
 * the longest link latency (base + 10x the mean jitter, the cap of the network model) and the
 * answer's store calls at the longest store latency.
 */
export function roundTripMaxMs(c: ShownBoundConfig): number {
  const hop = 1 + c.latencyMs + 10 * c.jitterMs;
  const store = c.storeLatencyMs + 10 * c.storeJitterMs;
  return 2 * hop + STORE_CALLS_PER_ANSWER * store;
}

/**
 * How long a message pushed to a live link may wait before its client shows it, when
 * `missing` messages before it have not been shown yet: the reorder window (a gap a push
 * revealed waits for it), then one fetch per page of the missing messages, plus the round trips
 * of EXTRA_ROUND_TRIPS and of a sync paged by sessions (`sessions` of the user). Nothing here
 * waits for the client's idle resync (60 s) or a heartbeat timeout: those repair what was lost,
 * not what arrived.
 */
export function shownBoundMs(c: ShownBoundConfig, missing: number, sessions: number): number {
  const fetches = Math.ceil(missing / Math.max(1, c.fetchDefault));
  const syncs = Math.ceil(sessions / Math.max(1, c.syncSessionsDefault));
  return c.reorderWindowMs + (fetches + syncs + EXTRA_ROUND_TRIPS) * roundTripMaxMs(c);
}

/**
 * shown: what a user waits for on a device that is online. A message whose push reached a
 * device's live link must be shown by its client (delivered to the app, in order) within
 * `shownBoundMs` of the push's arrival, as long as the link stays up: the engine either
 * delivers it at once, or buffers it and fetches the gap before it after the reorder window.
 * An engine that forgets what it buffered (and waits for the next push or the idle resync) is
 * what this sees; the other checkers only see that the message came in the end.
 *
 * The obligation ends with the link (the drop, as the network saw it: a half-open link carries
 * no answer), so a lost connection is the liveness checker's, not this one's. Devices that read
 * slowly by design (slow consumers) are left out: their answers queue behind their pushes.
 *
 * Per device, per conversation: the pushes that arrived and are not shown yet, as
 * (log index, arrival, deadline) triples; nothing is kept for a push shown at once (the
 * common case), so a million devices cost nothing here.
 */
export class ShownChecker {
  readonly #checkers: Checkers;
  readonly #config: ShownBoundConfig;
  readonly #sessions: (device: CheckedDevice) => number;
  readonly #waiting: (Map<string, number[]> | undefined)[] = [];
  /** The longest a push waited to be shown on a live link (virtual ms), for the report. */
  longestMs = 0;

  constructor(checkers: Checkers, config: ShownBoundConfig, sessions: (device: CheckedDevice) => number) {
    this.#checkers = checkers;
    this.#config = config;
    this.#sessions = sessions;
  }

  /** The client of `device` took in a push of the log message at `index`; it has shown `shown` messages of the conversation. */
  handled(device: CheckedDevice, conversationId: string, index: number, shown: number): void {
    if (index < shown) return;
    const now = this.#checkers.nowMs;
    const deadline = now + shownBoundMs(this.#config, index - shown, this.#sessions(device));
    let waiting = this.#waiting[device.index];
    if (waiting === undefined) this.#waiting[device.index] = waiting = new Map();
    const triples = waiting.get(conversationId);
    if (triples === undefined) waiting.set(conversationId, [index, now, deadline]);
    else if (!has(triples, index)) triples.push(index, now, deadline);
  }

  /** `device` has now shown `shown` log messages of the conversation. */
  shownUpTo(device: CheckedDevice, conversationId: string, shown: number): void {
    const waiting = this.#waiting[device.index];
    const triples = waiting?.get(conversationId);
    if (triples === undefined) return;
    const now = this.#checkers.nowMs;
    let kept = 0;
    for (let i = 0; i < triples.length; i += 3) {
      const index = triples[i]!;
      if (index >= shown) {
        triples[kept++] = index;
        triples[kept++] = triples[i + 1]!;
        triples[kept++] = triples[i + 2]!;
      } else this.#judge(device, conversationId, index, triples[i + 1]!, triples[i + 2]!, now, "shown");
    }
    triples.length = kept;
    if (kept === 0) {
      waiting!.delete(conversationId);
      if (waiting!.size === 0) this.#waiting[device.index] = undefined;
    }
  }

  /**
   * The device's link ended (or the run did, `link` being its live link): a push not shown
   * whose deadline passed while the link was still up is a violation; the rest is no longer owed.
   */
  linkEnded(device: CheckedDevice, link: Link): void {
    const waiting = this.#waiting[device.index];
    if (waiting === undefined) return;
    const until = Math.min(link.endedAtMs, this.#checkers.nowMs);
    for (const [conversationId, triples] of waiting) {
      for (let i = 0; i < triples.length; i += 3) this.#judge(device, conversationId, triples[i]!, triples[i + 1]!, triples[i + 2]!, until, "not shown");
    }
    this.#waiting[device.index] = undefined;
  }

  #judge(device: CheckedDevice, conversationId: string, index: number, arrivedAtMs: number, deadline: number, until: number, what: string): void {
    if (what === "shown") this.longestMs = Math.max(this.longestMs, until - arrivedAtMs);
    if (until <= deadline) return;
    const seq = this.#checkers.log(conversationId)?.seqs[index] ?? 0;
    const waited = what === "shown" ? `shown ${until - arrivedAtMs} ms after` : `not shown ${until - arrivedAtMs} ms after (while its link was up)`;
    this.#checkers.report("shown", conversationId, device.name, `seq ${seq} ${waited} its push reached the live link at ${arrivedAtMs} ms; the bound was ${deadline - arrivedAtMs} ms`);
  }
}

function has(triples: readonly number[], index: number): boolean {
  for (let i = 0; i < triples.length; i += 3) if (triples[i] === index) return true;
  return false;
}
