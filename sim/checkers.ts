import type { StoredMessage } from "../server/core/model.js";

/** The checkers, reported separately. `invariant` is a broken assertion (an unexpected error). */
export type CheckerName = "order" | "duplicate" | "loss" | "liveness" | "invariant";

/** Every checker, in report order. */
export const CHECKERS: readonly CheckerName[] = ["order", "duplicate", "loss", "liveness", "invariant"];

/** One violation: which checker, where, when, and what. */
export interface Violation {
  readonly checker: CheckerName;
  /** The conversation concerned ("" when none, e.g. a device that never reconnected). */
  readonly conversationId: string;
  /** The device concerned ("" when none). */
  readonly device: string;
  readonly atMs: number;
  /** Events run when it was detected: a replay stops here. */
  readonly event: number;
  readonly detail: string;
}

/** A checker's tally: violations seen and the first few of them. */
export interface CheckerReport {
  readonly violations: number;
  readonly examples: Violation[];
}

/** Where the checkers read the time and the event count. */
export interface CheckerClock {
  readonly nowMs: number;
  readonly events: number;
}

/** A device as the checkers see it; `name` is read only to report a violation. */
export interface CheckedDevice {
  readonly index: number;
  readonly name: string;
}

const EXAMPLES_MAX = 5;

/**
 * The safety checkers, run on every store append, acknowledgement and delivery, and the
 * end-of-run checks. The canonical order of a conversation is the store's log as appended
 * (seq k at index k - 1: the memory store's seqs are contiguous from 1, asserted on append).
 *
 * - order: each device's delivered sequence of a conversation is a prefix of the log: a
 *   message delivered ahead of its predecessor (a skip or a reorder) is a violation.
 * - duplicate: a message delivered twice to one device, or one send (one clientMsgId, or its
 *   logical id when a buggy client renames retries) stored twice in the log.
 * - loss: an acknowledged or delivered message that is not in the log (a write lost after
 *   its ack), and at the end a device whose cursor reached the head without having delivered
 *   every message (checkEnd).
 * - liveness: checked at the end by the simulation (see simulation.ts) and reported here.
 */
export class Checkers {
  readonly #clock: CheckerClock;
  /** conversationId -> messageIds, index seq - 1. */
  readonly #logs = new Map<string, string[]>();
  /** `${senderId}\n${logical clientMsgId}` -> messageId. */
  readonly #sends = new Map<string, string>();
  /** Per device: conversationId -> number of log messages delivered in order (the prefix length). */
  readonly #prefix: (Map<string, number> | undefined)[] = [];
  readonly #reports = new Map<CheckerName, { violations: number; examples: Violation[] }>();
  #first: Violation | undefined;

  constructor(clock: CheckerClock) {
    this.#clock = clock;
    for (const name of CHECKERS) this.#reports.set(name, { violations: 0, examples: [] });
  }

  /** The first violation seen, if any. */
  get first(): Violation | undefined {
    return this.#first;
  }

  /** Total violations over every checker. */
  total(): number {
    let n = 0;
    for (const r of this.#reports.values()) n += r.violations;
    return n;
  }

  /** Per-checker tallies in report order. */
  reports(): Record<CheckerName, CheckerReport> {
    const out = {} as Record<CheckerName, CheckerReport>;
    for (const name of CHECKERS) {
      const r = this.#reports.get(name)!;
      out[name] = { violations: r.violations, examples: [...r.examples] };
    }
    return out;
  }

  /** Records a violation. */
  report(checker: CheckerName, conversationId: string, device: string, detail: string): void {
    const v: Violation = { checker, conversationId, device, atMs: this.#clock.nowMs, event: this.#clock.events, detail };
    const r = this.#reports.get(checker)!;
    r.violations++;
    if (r.examples.length < EXAMPLES_MAX) r.examples.push(v);
    this.#first ??= v;
  }

  /** The log length of a conversation (its head seq). */
  head(conversationId: string): number {
    return this.#logs.get(conversationId)?.length ?? 0;
  }

  /** The store appended `message` (called by the store, for every new message). */
  appended(message: StoredMessage): void {
    const id = message.conversationId;
    let log = this.#logs.get(id);
    if (log === undefined) {
      log = [];
      this.#logs.set(id, log);
    }
    if (message.seq !== log.length + 1 || message.prevSeq !== log.length) {
      this.report("invariant", id, "", `store appended seq ${message.seq} (prev ${message.prevSeq}) after seq ${log.length}`);
    }
    log.push(message.messageId);
    const key = `${message.senderId}\n${logicalId(message.clientMsgId)}`;
    const earlier = this.#sends.get(key);
    if (earlier !== undefined) {
      this.report("duplicate", id, "", `send ${message.clientMsgId} of ${message.senderId} stored twice: ${earlier} and ${message.messageId} (seq ${message.seq})`);
    } else {
      this.#sends.set(key, message.messageId);
    }
  }

  /** A device's send was acknowledged with `message`: it must be in the log. */
  acknowledged(device: CheckedDevice, message: Pick<StoredMessage, "conversationId" | "seq" | "messageId">): void {
    if (!this.#inLog(message)) {
      this.report("loss", message.conversationId, device.name, `acknowledged ${message.messageId} (seq ${message.seq}) is not in the log`);
    }
  }

  /** A device delivered `message` to its app. */
  delivered(device: CheckedDevice, message: StoredMessage): void {
    const id = message.conversationId;
    if (!this.#inLog(message)) {
      this.report("loss", id, device.name, `delivered ${message.messageId} (seq ${message.seq}), which is not in the log`);
      return;
    }
    let prefixes = this.#prefix[device.index];
    if (prefixes === undefined) {
      prefixes = new Map();
      this.#prefix[device.index] = prefixes;
    }
    const prefix = prefixes.get(id) ?? 0;
    const index = message.seq - 1;
    if (index < prefix) {
      this.report("duplicate", id, device.name, `delivered seq ${message.seq} again (${prefix} delivered)`);
      return;
    }
    if (index > prefix) {
      this.report("order", id, device.name, `delivered seq ${message.seq} after seq ${prefix}: seqs ${prefix + 1}..${message.seq - 1} skipped or reordered`);
    }
    prefixes.set(id, index + 1);
  }

  /**
   * End of run, for one device and one conversation the device has caught up with (its
   * cursor is at `headSeq`): everything up to the head must have been delivered.
   */
  checkEnd(device: CheckedDevice, conversationId: string, headSeq: number): void {
    const prefix = this.#prefix[device.index]?.get(conversationId) ?? 0;
    if (prefix < headSeq) {
      this.report("loss", conversationId, device.name, `cursor at seq ${headSeq} but seqs ${prefix + 1}..${headSeq} were never delivered`);
    }
  }

  #inLog(message: Pick<StoredMessage, "conversationId" | "seq" | "messageId">): boolean {
    return this.#logs.get(message.conversationId)?.[message.seq - 1] === message.messageId;
  }
}

/**
 * The logical send id of a clientMsgId: the part before a `~`. The simulated client names
 * sends `<device>-<n>`; only its deliberate fresh-id-on-retry bug appends `~<attempt>`.
 */
export function logicalId(clientMsgId: string): string {
  const cut = clientMsgId.indexOf("~");
  return cut < 0 ? clientMsgId : clientMsgId.slice(0, cut);
}
