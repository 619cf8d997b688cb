import { addDigest, type ConversationExpectation } from "./send-ledger.js";

/**
 * The load generator's independent oracle for what each simulated device received. It does not
 * trust the SDK's ordering logic: every delivered message is checked against the protocol's own
 * chain (`prev_seq` names the seq before it), so a duplicate, a reordering or a skipped message
 * is caught at the device that saw it; at the end each device is compared with what the senders
 * had acknowledged (nothing missing, the same set of message ids). Pure; bounded memory per
 * (device, conversation).
 */

/** The fields of a delivered message the checker reads. */
export interface Delivery {
  readonly conversationId: string;
  readonly seq: number;
  readonly prevSeq: number;
  readonly messageId: string;
}

/** Kinds of findings; any finding fails the run. */
export type FindingKind =
  /** A message whose prev_seq is not the last seq delivered: something before it was skipped. */
  | "out-of-order"
  /** A message at or below the last seq delivered: delivered twice, or late after a skip. */
  | "duplicate"
  /** At the end, the device holds less than the senders had acknowledged. */
  | "missing"
  /** A message in a conversation the device is not a member of. */
  | "unexpected-conversation"
  /** Same last seq, but not the same set of message ids as the senders' acknowledgements. */
  | "content-mismatch";

/** One thing that went wrong. */
export interface Finding {
  readonly kind: FindingKind;
  readonly deviceId: string;
  readonly conversationId: string;
  readonly detail: string;
}

/** The verdict of one checker (one process), mergeable with others. */
export interface CheckReport {
  /** (device, conversation) pairs compared with an expectation. */
  readonly pairsChecked: number;
  /** Devices left out of the end-of-run comparison because they never connected (reported as connect failures). */
  readonly devicesExcluded: number;
  /** Messages delivered to devices. */
  readonly deliveries: number;
  /** Messages expected but not delivered, summed over devices. */
  readonly missingMessages: number;
  /** Findings per kind (all of them). */
  readonly counts: Readonly<Record<FindingKind, number>>;
  /** The first findings, in the order found (bounded). */
  readonly findings: readonly Finding[];
}

interface ConversationState {
  lastSeq: number;
  count: number;
  digest: number;
  /** The seq the device started from: a digest comparison needs the log from seq 1. */
  readonly startSeq: number;
}

/** A device as the checker holds it (opaque; see DeliveryChecker.tracked). */
export interface TrackedDevice {
  readonly deviceId: string;
}

interface DeviceState extends TrackedDevice {
  excluded: boolean;
  readonly expected: ReadonlySet<string>;
  readonly conversations: Map<string, ConversationState>;
}

const KINDS: readonly FindingKind[] = ["out-of-order", "duplicate", "missing", "unexpected-conversation", "content-mismatch"];

function zeroCounts(): Record<FindingKind, number> {
  return Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<FindingKind, number>;
}

/** Whether a report holds no finding. */
export function passed(report: CheckReport): boolean {
  return KINDS.every((k) => report.counts[k] === 0);
}

/** Merges reports of several processes; keeps at most `findingsMax` findings. */
export function mergeCheckReports(reports: readonly CheckReport[], findingsMax = 50): CheckReport {
  const counts = zeroCounts();
  const findings: Finding[] = [];
  let pairsChecked = 0;
  let devicesExcluded = 0;
  let deliveries = 0;
  let missingMessages = 0;
  for (const r of reports) {
    pairsChecked += r.pairsChecked;
    devicesExcluded += r.devicesExcluded;
    deliveries += r.deliveries;
    missingMessages += r.missingMessages;
    for (const k of KINDS) counts[k] += r.counts[k];
    for (const f of r.findings) if (findings.length < findingsMax) findings.push(f);
  }
  return { pairsChecked, devicesExcluded, deliveries, missingMessages, counts, findings };
}

/** See the file comment. */
export class DeliveryChecker {
  readonly #devices = new Map<string, DeviceState>();
  readonly #findingsMax: number;
  readonly #counts = zeroCounts();
  readonly #findings: Finding[] = [];
  #deliveries = 0;

  constructor(options: { findingsMax?: number } = {}) {
    this.#findingsMax = options.findingsMax ?? 50;
  }

  /**
   * Starts checking a device that must receive the conversations in `expected`, from the given
   * starting seqs (0 when absent: a fresh device). Tracking the same device again keeps its state.
   */
  track(deviceId: string, expected: Iterable<string>, startSeqs: ReadonlyMap<string, number> = new Map()): void {
    if (this.#devices.has(deviceId)) return;
    this.#devices.set(deviceId, this.#newDevice(deviceId, expected, startSeqs));
  }

  /**
   * Like track(), returning the device's record for recordFor(), which skips the lookup by
   * device id on every delivery (the hot path of a load test).
   */
  tracked(deviceId: string, expected: Iterable<string>): TrackedDevice {
    let device = this.#devices.get(deviceId);
    if (device === undefined) this.#devices.set(deviceId, (device = this.#newDevice(deviceId, expected, new Map())));
    return device;
  }

  #newDevice(deviceId: string, expected: Iterable<string>, startSeqs: ReadonlyMap<string, number>): DeviceState {
    const conversations = new Map<string, ConversationState>();
    const set = new Set(expected);
    for (const c of set) {
      const startSeq = startSeqs.get(c) ?? 0;
      conversations.set(c, { lastSeq: startSeq, count: 0, digest: 0, startSeq });
    }
    return { deviceId, excluded: false, expected: set, conversations };
  }

  /**
   * Leaves a device out of the end-of-run comparison (it never connected: that is reported as a
   * connect failure, not as messages missing). Deliveries it did get are still checked.
   */
  exclude(deviceId: string): void {
    const device = this.#devices.get(deviceId);
    if (device !== undefined) device.excluded = true;
  }

  /** Checks one delivered message against the device's chain. */
  record(deviceId: string, m: Delivery): void {
    const device = this.#devices.get(deviceId);
    if (device === undefined) throw new Error(`delivery checker: device ${deviceId} is not tracked`);
    this.recordFor(device, m);
  }

  /** record() for a device returned by tracked(). */
  recordFor(tracked: TrackedDevice, m: Delivery): void {
    const device = tracked as DeviceState;
    const deviceId = device.deviceId;
    this.#deliveries++;
    let state = device.conversations.get(m.conversationId);
    if (state === undefined) {
      this.#find("unexpected-conversation", deviceId, m.conversationId, `seq ${m.seq} in a conversation the device is not in`);
      state = { lastSeq: 0, count: 0, digest: 0, startSeq: 0 };
      device.conversations.set(m.conversationId, state);
    }
    if (m.seq <= state.lastSeq) {
      this.#find("duplicate", deviceId, m.conversationId, `seq ${m.seq} delivered after seq ${state.lastSeq}`);
      return;
    }
    if (m.prevSeq !== state.lastSeq || m.prevSeq >= m.seq) {
      this.#find("out-of-order", deviceId, m.conversationId, `seq ${m.seq} (prev ${m.prevSeq}) delivered when the last was ${state.lastSeq}`);
    }
    state.lastSeq = m.seq;
    state.count++;
    state.digest = addDigest(state.digest, m.messageId);
  }

  /** Findings of one kind recorded so far, as deliveries came (before any end-of-run comparison). */
  count(kind: FindingKind): number {
    return this.#counts[kind];
  }

  /** The last seq a device delivered in a conversation (its start seq if nothing yet). */
  lastSeq(deviceId: string, conversationId: string): number {
    return this.#devices.get(deviceId)?.conversations.get(conversationId)?.lastSeq ?? 0;
  }

  /** Messages a device still lacks in its expected conversations. */
  lacking(deviceId: string, expect: ReadonlyMap<string, ConversationExpectation>): number {
    const device = this.#devices.get(deviceId);
    if (device === undefined) return 0;
    let lacking = 0;
    for (const c of device.expected) {
      const e = expect.get(c);
      if (e !== undefined) lacking += Math.max(0, e.lastSeq - (device.conversations.get(c)?.lastSeq ?? 0));
    }
    return lacking;
  }

  /**
   * Compares every device with the expectations and returns the verdict, including the findings
   * recorded so far. Does not change the checker: it can be called again later.
   */
  verify(expect: ReadonlyMap<string, ConversationExpectation>): CheckReport {
    const counts = { ...this.#counts };
    const findings = [...this.#findings];
    const find = (kind: FindingKind, deviceId: string, conversationId: string, detail: string) => {
      counts[kind]++;
      if (findings.length < this.#findingsMax) findings.push({ kind, deviceId, conversationId, detail });
    };
    let pairsChecked = 0;
    let missingMessages = 0;
    let devicesExcluded = 0;
    for (const [deviceId, device] of this.#devices) {
      if (device.excluded) {
        devicesExcluded++;
        continue;
      }
      for (const c of device.expected) {
        const e = expect.get(c);
        if (e === undefined) continue;
        pairsChecked++;
        const state = device.conversations.get(c)!;
        if (state.lastSeq < e.lastSeq) {
          missingMessages += e.lastSeq - state.lastSeq;
          find("missing", deviceId, c, `holds up to seq ${state.lastSeq}, senders had ${e.lastSeq} acknowledged`);
        } else if (e.digest !== undefined && state.startSeq === 0 && state.lastSeq === e.lastSeq && state.digest !== e.digest) {
          find("content-mismatch", deviceId, c, `the ${state.count} message ids delivered differ from the ${e.lastSeq} acknowledged`);
        }
      }
    }
    return { pairsChecked, devicesExcluded, deliveries: this.#deliveries, missingMessages, counts, findings };
  }

  #find(kind: FindingKind, deviceId: string, conversationId: string, detail: string): void {
    this.#counts[kind]++;
    if (this.#findings.length < this.#findingsMax) this.#findings.push({ kind, deviceId, conversationId, detail });
  }
}
