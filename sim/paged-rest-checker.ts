import type { Answer, ClientRequest } from "../client/client-protocol.js";
import type { CheckedDevice, CheckedLog, CheckedMessage, Checkers } from "./checkers.js";

/** A fetch whose answer said there is more, while its device's client handles that answer. */
interface Watched {
  readonly device: CheckedDevice;
  readonly conversationId: string;
  /** The end of the fetched range (Infinity: up to the newest). */
  readonly upToSeq: number;
  /** A fetch of the conversation was written while the answer was handled. */
  fetched: boolean;
  /** The client gave the gap up (reported it stuck) while handling the answer. */
  stuck: boolean;
}

/** What the client's link looked like once the answer was handled. */
export interface HandledLink {
  /** The answer's link is still the device's current link, under the same client. */
  readonly current: boolean;
  /** Requests written on the link and not answered yet (pings aside): the client's request table. */
  readonly inFlight: number;
}

/**
 * pagedRest: the sync engine's own contract "a gap the server reported is fetched at once"
 * (client/sync-engine.ts), where a fetch answer says there is more of the range. A user cannot
 * see a breach (the rest comes a reorder window later, within the jitter of a round trip), so
 * this judges the client from outside, by what its link carries: when a device's client
 * handles the answer to a fetch of (afterSeq, upToSeq] that says has_more, and the messages it
 * has shown of the conversation do not reach upToSeq yet, the next fetch of the conversation
 * leaves at the same virtual instant, before the client is done with the answer.
 *
 * Not owed (the client has a reason, each one observable from outside):
 * - the rest was shown meanwhile (buffered pushes completed the range);
 * - the client reported the gap stuck (the page brought nothing that chains: the stuck
 *   checker's);
 * - the link's request table is full (requestsInFlightMax requests written and unanswered:
 *   the fetch waits in the client's queue, as every request does), or the link or the client
 *   is gone;
 * - every message the client holds unshown of the conversation comes after a hole that
 *   reaches beyond upToSeq (its prevSeq > upToSeq): the engine then fetches its first hole
 *   as a whole, and a hole that only a push revealed waits for that push's reorder window.
 *   With no message held, or one whose prevSeq is at most upToSeq, the hole ends inside what
 *   the server reported, and nothing may wait.
 *
 * "Held" is what the client took in on its current life (pushes on its links, fetch and sync
 * answers, its own acknowledged sends) and has not shown, by log position; a new client (the
 * app closed and came back) starts empty; a conversation a sync reports removed holds nothing.
 * The engine's reorder buffer is a subset of it (a buffer that overflowed wants everything up
 * to the newest, which is due at once), so the last exemption never misses a wait the engine
 * is entitled to. No sync is in flight while a fetch is (the engine resyncs only when idle),
 * so the engine is live whenever a fetch answer arrives.
 */
export class PagedRestChecker {
  readonly #checkers: Checkers;
  readonly #inFlightMax: number;
  readonly #shown: (device: CheckedDevice, conversationId: string) => number;
  /** Per device: conversationId -> log indexes of messages taken in and not shown when last seen. */
  readonly #held: (Map<string, number[]> | undefined)[] = [];
  #watched: Watched | undefined;
  /** has_more answers whose rest was owed at once (for the report: the checker is not vacuous). */
  owed = 0;

  /** `shown`: how many log messages of a conversation the device has shown (delivered in order). */
  constructor(checkers: Checkers, inFlightMax: number, shown: (device: CheckedDevice, conversationId: string) => number) {
    this.#checkers = checkers;
    this.#inFlightMax = Math.max(1, inFlightMax);
    this.#shown = shown;
  }

  /** The client of `device` took in `message` (after its engine saw it). */
  took(device: CheckedDevice, message: CheckedMessage): void {
    const shown = this.#shown(device, message.conversationId);
    const index = this.#checkers.indexOf(message.conversationId, message.seq);
    if (index < shown || index < 0) return;
    let held = this.#held[device.index];
    if (held === undefined) this.#held[device.index] = held = new Map();
    const indexes = held.get(message.conversationId);
    if (indexes === undefined) {
      held.set(message.conversationId, [index]);
      return;
    }
    let kept = 0;
    for (const i of indexes) if (i >= shown && i !== index) indexes[kept++] = i;
    indexes.length = kept;
    indexes.push(index);
  }

  /** The messages of an answer the client took in (after it handled the answer). */
  #tookAnswer(device: CheckedDevice, answer: Answer<CheckedMessage>): void {
    if (answer.kind === "fetch") {
      for (const m of answer.messages) this.took(device, m);
    } else if (answer.kind === "sync") {
      for (const id of answer.answer.removedConversationIds) this.#held[device.index]?.delete(id);
      for (const s of answer.answer.sessions) for (const m of s.messages) this.took(device, m);
    } else if (answer.kind === "send") {
      this.took(device, answer.ack);
    }
  }

  /** The device runs a new client (its app came back): nothing is held. */
  clientReplaced(device: CheckedDevice): void {
    this.#held[device.index] = undefined;
  }

  /** The client of `device` is about to handle `answer` to `request`. */
  answering(device: CheckedDevice, request: ClientRequest, answer: Answer<CheckedMessage>): void {
    this.#watched = undefined;
    if (request.kind !== "fetch" || answer.kind !== "fetch" || !answer.hasMore) return;
    this.#watched = { device, conversationId: request.conversationId, upToSeq: request.upToSeq === 0 ? Infinity : request.upToSeq, fetched: false, stuck: false };
  }

  /** The client of `device` wrote `request`. */
  wrote(device: CheckedDevice, request: ClientRequest): void {
    const w = this.#watched;
    if (w !== undefined && w.device.index === device.index && request.kind === "fetch" && request.conversationId === w.conversationId) w.fetched = true;
  }

  /** The client of `device` reported a gap of the conversation stuck. */
  stuck(device: CheckedDevice, conversationId: string): void {
    const w = this.#watched;
    if (w !== undefined && w.device.index === device.index && conversationId === w.conversationId) w.stuck = true;
  }

  /** The client of `device` is done with `answer` (announced by answering()). */
  handled(device: CheckedDevice, answer: Answer<CheckedMessage>, link: HandledLink): void {
    this.#tookAnswer(device, answer);
    const w = this.#watched;
    this.#watched = undefined;
    if (w === undefined || w.device.index !== device.index) return;
    const shown = this.#shown(device, w.conversationId);
    const log = this.#checkers.log(w.conversationId);
    if (log === undefined) return;
    const lastShown = shown === 0 ? 0 : log.seqs[shown - 1]!;
    if (lastShown >= w.upToSeq || w.stuck) return;
    const held = this.#held[device.index]?.get(w.conversationId)?.filter((i) => i >= shown) ?? [];
    if (held.length > 0 && held.every((i) => prevSeqAt(log, i) > w.upToSeq)) return;
    if (!w.fetched && (!link.current || link.inFlight >= this.#inFlightMax)) return;
    this.owed++;
    if (w.fetched) return;
    const range = w.upToSeq === Infinity ? "up to the newest" : `up to seq ${w.upToSeq}`;
    const holding = held.length === 0 ? "holding no message of it" : `holding seq ${held.map((i) => log.seqs[i]!).sort((a, b) => a - b).join(",")}`;
    this.#checkers.report("pagedRest", w.conversationId, device.name, `a fetch answered has_more ${range} left seq ${log.seqs[shown] ?? "?"} on not shown (shown up to seq ${lastShown}, ${holding}), and no fetch of the rest left at once (${link.inFlight} of ${this.#inFlightMax} requests in flight)`);
  }
}

/** The prevSeq of the log message at `index` (its predecessor in the log). */
function prevSeqAt(log: CheckedLog, index: number): number {
  return index === 0 ? 0 : log.seqs[index - 1]!;
}
