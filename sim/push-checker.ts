import type { CheckedMessage, CheckerOptions, Checkers } from "./checkers.js";
import { indexIn } from "./checkers.js";
import type { Link } from "./network.js";

/** Missing seqs named in one report, at most. */
const NAMED_MAX = 5;

/**
 * What the server pushed on each connection, as the client received it (before its engine
 * reorders or repairs anything). With one owner per conversation, pushes of a conversation
 * leave one place in seq order and the broker and the stream keep that order, so:
 *
 * - pushOrder (runs whose faults neither reorder nor repeat pushes, nor move owners): on a
 *   connection, each push of a conversation has a higher seq than the one before it.
 * - pushMissing (runs whose faults lose no push): a connection receives every message of its
 *   user's conversations stored after the hub registered it, except its own sends. A push
 *   that skips seqs leaves holes; one filled later is a reordering (pushOrder), one still
 *   open when the connection ends, or at the end of the run, a missing push; so is a
 *   conversation's newest message that never came.
 */
export class PushChecker {
  readonly #checkers: Checkers;
  readonly #options: CheckerOptions;

  constructor(checkers: Checkers, options: CheckerOptions) {
    this.#checkers = checkers;
    this.#options = options;
  }

  pushed(link: Link, message: CheckedMessage): void {
    const { pushOrder, pushMissing } = this.#options;
    if (!pushOrder && !pushMissing) return;
    const id = message.conversationId;
    const pushed = (link.pushed ??= new Map());
    const last = pushed.get(id) ?? 0;
    if (message.seq <= last) {
      const holes = link.holes?.get(id);
      const at = holes?.indexOf(message.seq) ?? -1;
      if (at >= 0) holes!.splice(at, 1);
      if (pushOrder) this.#checkers.report("pushOrder", id, link.client.name, `${connectionOf(link)} was pushed seq ${message.seq} after seq ${last}`);
      return;
    }
    pushed.set(id, message.seq);
    // Pushes can come before the registration completes (the hub delivers at once); only what
    // was stored after it is owed.
    if (pushMissing && link.attachedAtMs >= 0 && message.prevSeq > last) {
      const owed = this.#owed(link, id, message.prevSeq, last);
      if (owed.length > 0) {
        const holes = ((link.holes ??= new Map()).get(id) ?? []).concat(owed);
        link.holes.set(id, holes);
      }
    }
  }

  /** The connection ended (as the client saw it): holes never filled are missing pushes. */
  ended(link: Link): void {
    if (link.holes === undefined) return;
    for (const [id, holes] of link.holes) if (holes.length > 0) this.#report(link, id, holes, "before the connection ended");
    link.holes = undefined;
  }

  /** At the end of the run: holes, and each conversation's newest message, must have reached the live link. */
  checkEnd(link: Link, conversationIds: Iterable<string>): void {
    if (!this.#options.pushMissing || link.attachedAtMs < 0 || !link.up || link.conn === undefined || link.conn.ending) return;
    this.ended(link);
    for (const id of conversationIds) {
      const head = this.#checkers.head(id);
      const last = link.pushed?.get(id) ?? 0;
      if (head <= last) continue;
      const owed = this.#owed(link, id, head, last);
      if (owed.length > 0) this.#report(link, id, owed, "at the end of the run");
    }
  }

  /** The seqs in (after, upTo] of a conversation owed to `link`: stored after it was registered, not its own sends. */
  #owed(link: Link, conversationId: string, upTo: number, after: number): number[] {
    const log = this.#checkers.log(conversationId);
    const owed: number[] = [];
    if (log === undefined) return owed;
    const connectionId = link.conn?.connectionId ?? "";
    for (let i = indexIn(log, upTo); i >= 0 && log.seqs[i]! > after; i--) {
      // Stored before the connection was registered: the sync after connecting brings it.
      if (log.appendedAtMs[i]! < link.attachedAtMs) break;
      if (log.origins[i] !== connectionId) owed.push(log.seqs[i]!);
    }
    return owed.reverse();
  }

  #report(link: Link, conversationId: string, seqs: readonly number[], when: string): void {
    const named = seqs.slice(0, NAMED_MAX).join(", ");
    this.#checkers.report("pushMissing", conversationId, link.client.name, `${connectionOf(link)} was never pushed ${seqs.length} messages ${when} (seq ${named}${seqs.length > NAMED_MAX ? ", ..." : ""}), stored after it was registered at ${link.attachedAtMs} ms`);
  }
}

function connectionOf(link: Link): string {
  return `connection ${link.conn?.connectionId ?? link.name}`;
}
