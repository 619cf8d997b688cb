import type { Answer, ClientRequest } from "../client/client-protocol.js";
import type { StoredMessage } from "../server/core/model.js";
import { AnswerChecker } from "./answer-checker.js";
import type { Link } from "./network.js";
import { PagedRestChecker, type HandledLink } from "./paged-rest-checker.js";
import { PushChecker } from "./push-checker.js";
import { ShownChecker, type ShownBoundConfig } from "./shown-checker.js";

/** The checkers, reported separately. `invariant` is a broken assertion (an unexpected error). */
export type CheckerName =
  | "order"
  | "readOrder"
  | "duplicate"
  | "loss"
  | "liveness"
  | "pushOrder"
  | "pushMissing"
  | "answers"
  | "fetches"
  | "stuck"
  | "access"
  | "shown"
  | "pagedRest"
  | "invariant";

/** Every checker, in report order. */
export const CHECKERS: readonly CheckerName[] = ["order", "readOrder", "duplicate", "loss", "liveness", "pushOrder", "pushMissing", "answers", "fetches", "stuck", "access", "shown", "pagedRest", "invariant"];

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

/** A checker's tally: whether it ran in this run, violations seen and the first few of them. */
export interface CheckerReport {
  readonly on: boolean;
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
  readonly userId: string;
}

/** What the checkers compare messages by. */
export type CheckedMessage = Pick<StoredMessage, "conversationId" | "seq" | "prevSeq" | "messageId">;

/** Which of the checkers that need fault-free conditions are on in this run (simulation.ts decides). */
export interface CheckerOptions {
  /** No fault of the run reorders or repeats pushes: pushes of a conversation reach each connection in seq order. */
  readonly pushOrder: boolean;
  /** No fault of the run loses a push: every message reaches every connection registered before it was stored. */
  readonly pushMissing: boolean;
  /** The server's default page of a range fetch (Limits.fetchDefault): the bound on fetches per gap. */
  readonly fetchPage: number;
  /** Whether `userId` is a member of the conversation (the workload's groups, a direct id's names). */
  readonly isMember: (userId: string, conversationId: string) => boolean;
  /** The settings the shown checker derives its bound from (shown-checker.ts). */
  readonly shown: ShownBoundConfig;
  /** The conversations a device's client knows (the sessions its sync pages through). */
  readonly sessionsOf: (device: CheckedDevice) => number;
  /** The client's bound on requests in flight per link (ClientCoreOptions.requestsInFlightMax). */
  readonly requestsInFlightMax: number;
}

/**
 * One conversation's log as the store appended it, in seq order (struct of arrays: a million
 * messages stay cheap). Seqs need not be contiguous (a takeover skips a block); `index` maps
 * a seq to its position once they are not.
 */
export interface CheckedLog {
  readonly seqs: number[];
  readonly ids: string[];
  /** Virtual time of the append. */
  readonly appendedAtMs: number[];
  /** The connection the message's publication skipped (its sender's), "" when unknown. */
  readonly origins: string[];
  index: Map<number, number> | undefined;
}

const EXAMPLES_MAX = 5;

/**
 * The checkers, fed by the store (every append), the nodes (every publication), and the
 * clients (every push, answer, acknowledgement and delivery), plus end-of-run checks. The
 * canonical order of a conversation is the store's log as appended.
 *
 * - order: each device's delivered sequence of a conversation is a prefix of the log: a
 *   message delivered ahead of its predecessor (a skip or a reorder) is a violation.
 * - readOrder: the read position a device's client shows its app never moves back (the
 *   server's never does; a late push of an older one must not undo a newer one).
 * - duplicate: a message delivered twice to one device, or one send (one clientMsgId, or its
 *   logical id when a buggy client renames retries) stored twice in the log.
 * - loss: an acknowledged or delivered message that is not in the log (a write lost after
 *   its ack), and at the end a device whose cursor reached the head without having delivered
 *   every message (checkEnd).
 * - pushOrder, pushMissing: what the server pushed on each connection (push-checker.ts).
 * - answers, fetches: the server's answers against the log, fetches per repaired gap (answer-checker.ts).
 * - stuck: a gap the client gave up on (the server could not close it).
 * - access: what adversarial clients could read or write (adversary.ts).
 * - shown: a push that reached a live link shown within a bound (shown-checker.ts).
 * - pagedRest: after a fetch answered has_more, the rest fetched at once (paged-rest-checker.ts).
 * - liveness: checked at the end by the simulation (simulation.ts) and reported here.
 */
export class Checkers {
  readonly #clock: CheckerClock;
  readonly #logs = new Map<string, CheckedLog>();
  /** `${senderId}\n${logical clientMsgId}` -> messageId. */
  readonly #sends = new Map<string, string>();
  /** Per device: conversationId -> number of log messages delivered in order (the prefix length). */
  readonly #prefix: (Map<string, number> | undefined)[] = [];
  /** Per device: conversationId -> the read position last shown to its app. */
  readonly #reads: (Map<string, number> | undefined)[] = [];
  readonly #reports = new Map<CheckerName, { violations: number; examples: Violation[] }>();
  readonly #pushes: PushChecker;
  readonly #answers: AnswerChecker;
  readonly #shown: ShownChecker;
  readonly #pagedRest: PagedRestChecker;
  readonly #options: CheckerOptions;
  #first: Violation | undefined;

  constructor(clock: CheckerClock, options: CheckerOptions) {
    this.#clock = clock;
    this.#options = options;
    for (const name of CHECKERS) this.#reports.set(name, { violations: 0, examples: [] });
    this.#pushes = new PushChecker(this, options);
    this.#answers = new AnswerChecker(this, options);
    this.#shown = new ShownChecker(this, options.shown, options.sessionsOf);
    this.#pagedRest = new PagedRestChecker(this, options.requestsInFlightMax, (device, id) => this.#prefix[device.index]?.get(id) ?? 0);
  }

  /** has_more fetch answers whose rest the pagedRest checker held the client to fetch at once. */
  get pagedRestOwed(): number {
    return this.#pagedRest.owed;
  }

  /** The longest a push waited on a live link before its client showed it (virtual ms). */
  get longestShownMs(): number {
    return this.#shown.longestMs;
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
      const on = name === "pushOrder" ? this.#options.pushOrder : name === "pushMissing" ? this.#options.pushMissing : true;
      out[name] = { on, violations: r.violations, examples: [...r.examples] };
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

  /** The log of a conversation (undefined before its first message). */
  log(conversationId: string): CheckedLog | undefined {
    return this.#logs.get(conversationId);
  }

  /** The position of `seq` in the log, or -1 when the log has no such seq. */
  indexOf(conversationId: string, seq: number): number {
    const log = this.#logs.get(conversationId);
    return log === undefined ? -1 : indexIn(log, seq);
  }

  /** The head seq of a conversation (0 before its first message). */
  head(conversationId: string): number {
    const seqs = this.#logs.get(conversationId)?.seqs;
    return seqs === undefined || seqs.length === 0 ? 0 : seqs[seqs.length - 1]!;
  }

  /** Now, on the checkers' clock. */
  get nowMs(): number {
    return this.#clock.nowMs;
  }

  /** The store appended `message` (called by the store, for every new message). */
  appended(message: StoredMessage): void {
    const id = message.conversationId;
    let log = this.#logs.get(id);
    if (log === undefined) {
      log = { seqs: [], ids: [], appendedAtMs: [], origins: [], index: undefined };
      this.#logs.set(id, log);
    }
    const last = log.seqs.length === 0 ? 0 : log.seqs[log.seqs.length - 1]!;
    if (message.seq <= last || message.prevSeq !== last) {
      this.report("invariant", id, "", `store appended seq ${message.seq} (prev ${message.prevSeq}) after seq ${last}`);
    }
    if (log.index === undefined && message.seq !== log.seqs.length + 1) {
      log.index = new Map(log.seqs.map((s, i) => [s, i]));
    }
    log.index?.set(message.seq, log.seqs.length);
    log.seqs.push(message.seq);
    log.ids.push(message.messageId);
    log.appendedAtMs.push(this.#clock.nowMs);
    log.origins.push("");
    const key = `${message.senderId}\n${logicalId(message.clientMsgId)}`;
    const earlier = this.#sends.get(key);
    if (earlier !== undefined) {
      this.report("duplicate", id, "", `send ${message.clientMsgId} of ${message.senderId} stored twice: ${earlier} and ${message.messageId} (seq ${message.seq})`);
    } else {
      this.#sends.set(key, message.messageId);
    }
  }

  /** A process published `message`, skipping the connection `originConnectionId` ("" for none). */
  published(message: CheckedMessage, originConnectionId: string): void {
    const log = this.#logs.get(message.conversationId);
    if (log === undefined) return;
    const i = indexIn(log, message.seq);
    if (i >= 0 && log.ids[i] === message.messageId) log.origins[i] = originConnectionId;
  }

  /** A device's send was acknowledged with `message`: it must be in the log. */
  acknowledged(device: CheckedDevice, message: Pick<StoredMessage, "conversationId" | "seq" | "messageId">): void {
    if (!this.#inLog(message)) {
      this.report("loss", message.conversationId, device.name, `acknowledged ${message.messageId} (seq ${message.seq}) is not in the log`);
    }
  }

  /** A device delivered `message` to its app. */
  delivered(device: CheckedDevice, message: CheckedMessage): void {
    const id = message.conversationId;
    const log = this.#logs.get(id);
    const index = log === undefined ? -1 : indexIn(log, message.seq);
    if (index < 0 || log!.ids[index] !== message.messageId) {
      this.report("loss", id, device.name, `delivered ${message.messageId} (seq ${message.seq}), which is not in the log`);
      return;
    }
    let prefixes = this.#prefix[device.index];
    if (prefixes === undefined) {
      prefixes = new Map();
      this.#prefix[device.index] = prefixes;
    }
    const prefix = prefixes.get(id) ?? 0;
    if (index < prefix) {
      this.report("duplicate", id, device.name, `delivered seq ${message.seq} again (${prefix} delivered)`);
      return;
    }
    if (index > prefix) {
      const lastDelivered = prefix === 0 ? 0 : log!.seqs[prefix - 1]!;
      this.report("order", id, device.name, `delivered seq ${message.seq} after seq ${lastDelivered}: ${index - prefix} messages (from seq ${log!.seqs[prefix]}) skipped or reordered`);
    }
    prefixes.set(id, index + 1);
    this.#shown.shownUpTo(device, id, index + 1);
  }

  /**
   * The client of `device` took in a push of `message` on its live link (after its engine
   * saw it): unless it was shown at once, it is owed within the shown checker's bound.
   */
  pushHandled(device: CheckedDevice, message: CheckedMessage): void {
    const index = this.indexOf(message.conversationId, message.seq);
    if (index < 0) return;
    this.#shown.handled(device, message.conversationId, index, this.#prefix[device.index]?.get(message.conversationId) ?? 0);
  }

  /** The client of `device` took in a pushed `message` (after its engine saw it). */
  took(device: CheckedDevice, message: CheckedMessage): void {
    this.#pagedRest.took(device, message);
  }

  /** `device` runs a new client (its app closed and came back). */
  clientReplaced(device: CheckedDevice): void {
    this.#pagedRest.clientReplaced(device);
  }

  /** The client of `device` is about to handle `answer` to `request` (as its core is handed it). */
  answering(device: CheckedDevice, request: ClientRequest, answer: Answer<CheckedMessage>): void {
    this.#pagedRest.answering(device, request, answer);
  }

  /** The client of `device` handled `answer`; `link` says what its link looked like then. */
  answerHandled(device: CheckedDevice, answer: Answer<CheckedMessage>, link: HandledLink): void {
    this.#pagedRest.handled(device, answer, link);
  }

  /** The client of `device` wrote `request` on its link. */
  wrote(device: CheckedDevice, request: ClientRequest): void {
    this.#pagedRest.wrote(device, request);
  }

  /** A device's client moved the read position it shows its app. */
  readMoved(device: CheckedDevice, conversationId: string, readSeq: number): void {
    let reads = this.#reads[device.index];
    if (reads === undefined) {
      reads = new Map();
      this.#reads[device.index] = reads;
    }
    const before = reads.get(conversationId) ?? 0;
    if (readSeq < before) this.report("readOrder", conversationId, device.name, `read position moved back from seq ${before} to seq ${readSeq}`);
    reads.set(conversationId, readSeq);
  }

  /** A push arrived at the client end of `link` (before the client's engine sees it). */
  pushed(link: Link, message: CheckedMessage): void {
    this.#pushes.pushed(link, message);
  }

  /** The server answered `request` of a device with `answer` (before the client's engine sees it). */
  answered(device: CheckedDevice, request: ClientRequest, answer: Answer<CheckedMessage>): void {
    this.#answers.answered(device, request, answer);
  }

  /** The server refused a request of a device's client core. */
  refused(device: CheckedDevice, request: ClientRequest, code: number, message: string): void {
    this.#answers.refused(device, request, code, message);
  }

  /** A gap was repaired after `fetches` fetches, `missing` messages long, with `linksLost` reconnects in between. */
  gapRepaired(device: CheckedDevice, conversationId: string, missing: number, fetches: number, linksLost: number): void {
    this.#answers.gapRepaired(device, conversationId, missing, fetches, linksLost);
  }

  /** The client gave up on a gap: the server's answer made no progress. */
  stuck(device: CheckedDevice, conversationId: string, lastSeq: number): void {
    this.#pagedRest.stuck(device, conversationId);
    this.report("stuck", conversationId, device.name, `gap after seq ${lastSeq} reported stuck: a fetch of it brought nothing that chains (head ${this.head(conversationId)})`);
  }

  /**
   * End of run, for one device and one conversation the device has caught up with (its
   * cursor is at `headSeq`): everything up to the head must have been delivered.
   */
  checkEnd(device: CheckedDevice, conversationId: string, headSeq: number): void {
    const prefix = this.#prefix[device.index]?.get(conversationId) ?? 0;
    const index = this.indexOf(conversationId, headSeq);
    if (prefix < index + 1) {
      const log = this.#logs.get(conversationId)!;
      this.report("loss", conversationId, device.name, `cursor at seq ${headSeq} but ${index + 1 - prefix} messages from seq ${log.seqs[prefix]} were never delivered`);
    }
  }

  /** The client end of `link` is done with it (closed, reset, ended by the server). */
  linkEnded(link: Link): void {
    this.#pushes.ended(link);
    if (!link.client.adversary) this.#shown.linkEnded(link.client, link);
  }

  /** End of run, for the live link of a device: pushes it still has not shown. */
  checkEndShown(device: CheckedDevice, link: Link): void {
    this.#shown.linkEnded(device, link);
  }

  /** End of run, for the live link of a device: the tail of each conversation must have been pushed. */
  checkEndPushes(link: Link, conversationIds: Iterable<string>): void {
    this.#pushes.checkEnd(link, conversationIds);
  }

  #inLog(message: Pick<StoredMessage, "conversationId" | "seq" | "messageId">): boolean {
    const log = this.#logs.get(message.conversationId);
    if (log === undefined) return false;
    const i = indexIn(log, message.seq);
    return i >= 0 && log.ids[i] === message.messageId;
  }
}

/** The position of `seq` in `log`, or -1. */
export function indexIn(log: CheckedLog, seq: number): number {
  if (log.index !== undefined) return log.index.get(seq) ?? -1;
  return seq >= 1 && seq <= log.seqs.length ? seq - 1 : -1;
}

/**
 * The logical send id of a clientMsgId: the part before a `~`. The simulated client names
 * sends `<device>-<n>`; only its deliberate fresh-id-on-retry bug appends `~<attempt>`.
 */
export function logicalId(clientMsgId: string): string {
  const cut = clientMsgId.indexOf("~");
  return cut < 0 ? clientMsgId : clientMsgId.slice(0, cut);
}
