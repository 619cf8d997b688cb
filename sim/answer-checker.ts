import { Code } from "@connectrpc/connect";
import type { Answer, ClientRequest } from "../client/client-protocol.js";
import { directConversationId } from "../server/core/conversation-id.js";
import type { CheckedDevice, CheckedLog, CheckedMessage, CheckerOptions, Checkers } from "./checkers.js";
import { indexIn } from "./checkers.js";

/**
 * The server's answers to the production client's requests, checked against the store's log
 * before the client's engine sees them (an engine that drops what it does not need hides a
 * server that sends too much), and the work each repaired gap took:
 *
 * - answers: a sync brings, per session, the messages right after the client's cursor, in log
 *   order, up to the session's head unless it says there are more, and only sessions of the
 *   user's conversations; a fetch brings the messages of exactly the asked range, from its
 *   start; a markRead never moves back; a send is acknowledged in the conversation it named.
 *   A request of the client core is never refused except as UNAVAILABLE (retry).
 * - fetches: a gap of n messages is repaired with at most ceil(n / page) + 1 fetches, plus
 *   one per connection lost meanwhile (a fetch in flight is redone on the next one).
 */
export class AnswerChecker {
  readonly #checkers: Checkers;
  readonly #options: CheckerOptions;

  constructor(checkers: Checkers, options: CheckerOptions) {
    this.#checkers = checkers;
    this.#options = options;
  }

  answered(device: CheckedDevice, request: ClientRequest, answer: Answer<CheckedMessage>): void {
    if (answer.kind === "send" && request.kind === "send") {
      const s = request.send;
      const wanted = s.conversationId !== "" ? s.conversationId : directConversationId(device.userId, s.toUserId);
      if (answer.ack.conversationId !== wanted) this.#bad(wanted, device, `send ${s.clientMsgId} to ${wanted} was acknowledged in ${answer.ack.conversationId}`);
    } else if (answer.kind === "sync" && request.kind === "sync") {
      const cursors = request.cursors.length > CURSORS_SCANNED_MAX ? new Map(request.cursors.map((c) => [c.conversationId, c.lastSeq])) : undefined;
      for (const session of answer.answer.sessions) {
        const id = session.conversationId;
        if (!this.#options.isMember(device.userId, id)) {
          this.#checkers.report("access", id, device.name, `a sync of ${device.userId} answered the session of ${id}, which it is not a member of`);
          continue;
        }
        const after = cursors !== undefined ? (cursors.get(id) ?? 0) : cursorOf(request.cursors, id);
        this.#run(device, id, SYNC, session.messages, after, 0);
        const log = this.#checkers.log(id);
        if (session.lastSeq !== 0 && (log === undefined || indexIn(log, session.lastSeq) < 0)) this.#bad(id, device, `a sync answered head seq ${session.lastSeq}, which is not in the log`);
        if (!session.hasMoreMessages) {
          const last = session.messages[session.messages.length - 1];
          if (last !== undefined ? last.seq < session.lastSeq : session.lastSeq > after) {
            this.#bad(id, device, `a sync (cursor ${after}) answered up to seq ${last?.seq ?? after} of head ${session.lastSeq} and no more to come`);
          }
        }
      }
    } else if (answer.kind === "fetch" && request.kind === "fetch") {
      const id = request.conversationId;
      const { afterSeq, upToSeq } = request;
      this.#run(device, id, FETCH, answer.messages, afterSeq, upToSeq);
      const what = (): string => describe(FETCH, afterSeq, upToSeq);
      const last = answer.messages[answer.messages.length - 1];
      if (upToSeq > 0 && last !== undefined && last.seq > upToSeq) this.#bad(id, device, `a ${what()} answered seq ${last.seq}, beyond the range`);
      if (upToSeq > 0 && !answer.hasMore) {
        const log = this.#checkers.log(id);
        const owed = log === undefined ? 0 : upperBound(log, upToSeq) - upperBound(log, afterSeq);
        if (answer.messages.length < owed) this.#bad(id, device, `a ${what()} answered ${answer.messages.length} of its ${owed} messages and no more to come`);
      }
    } else if (answer.kind === "markRead" && request.kind === "markRead") {
      if (answer.readSeq < request.readSeq) this.#bad(request.conversationId, device, `markRead to seq ${request.readSeq} answered read seq ${answer.readSeq}: a read position moved back`);
    }
  }

  refused(device: CheckedDevice, request: ClientRequest, code: number, message: string): void {
    if (code === Code.Unavailable) return;
    const id = request.kind === "send" ? request.send.conversationId || `to ${request.send.toUserId}` : request.kind === "sync" || request.kind === "ping" ? "" : request.conversationId;
    this.#bad(id, device, `the server refused a ${request.kind} of the client: ${Code[code] ?? code}: ${message}`);
  }

  gapRepaired(device: CheckedDevice, conversationId: string, missing: number, fetches: number, linksLost: number): void {
    const bound = Math.ceil(missing / this.#options.fetchPage) + 1 + linksLost;
    if (fetches > bound) {
      this.#checkers.report("fetches", conversationId, device.name, `a gap of ${missing} messages took ${fetches} fetches (bound ${bound}: pages of ${this.#options.fetchPage}, ${linksLost} connections lost meanwhile)`);
    }
  }

  /**
   * `messages` must be the log's messages right after seq `after`, in order. The request is
   * named (`kind`, `after`, `upTo`) only in a finding: no string per answer.
   */
  #run(device: CheckedDevice, conversationId: string, kind: RangeKind, messages: readonly CheckedMessage[], after: number, upTo: number): void {
    if (messages.length === 0) return;
    const log = this.#checkers.log(conversationId);
    if (log === undefined) {
      this.#bad(conversationId, device, `a ${describe(kind, after, upTo)} answered seq ${messages[0]!.seq} of a conversation with no messages`);
      return;
    }
    let expected = upperBound(log, after);
    for (const m of messages) {
      const at = indexIn(log, m.seq);
      if (at !== expected || log.ids[at] !== m.messageId || m.prevSeq !== (at === 0 ? 0 : log.seqs[at - 1])) {
        const wanted = expected < log.seqs.length ? `seq ${log.seqs[expected]}` : "nothing (the head)";
        this.#bad(conversationId, device, `a ${describe(kind, after, upTo)} answered seq ${m.seq} (prev ${m.prevSeq}) where the log has ${wanted}`);
        return;
      }
      expected++;
    }
  }

  #bad(conversationId: string, device: CheckedDevice, detail: string): void {
    this.#checkers.report("answers", conversationId, device.name, detail);
  }
}

const SYNC = 0;
const FETCH = 1;
type RangeKind = typeof SYNC | typeof FETCH;

/** How a finding names the request: `sync (cursor 3)`, `fetch (3, 7]`. */
function describe(kind: RangeKind, after: number, upTo: number): string {
  return kind === SYNC ? `sync (cursor ${after})` : `fetch (${after}, ${upTo === 0 ? "newest" : upTo}]`;
}

/** Up to this many cursors, a sync's are scanned rather than put in a map (most devices know a few conversations). */
const CURSORS_SCANNED_MAX = 16;

/** The cursor's lastSeq for a conversation in a sync request (0 when it has none). */
function cursorOf(cursors: readonly { readonly conversationId: string; readonly lastSeq: number }[], conversationId: string): number {
  for (const c of cursors) if (c.conversationId === conversationId) return c.lastSeq;
  return 0;
}

/** The number of seqs of the log that are at most `seq`. */
function upperBound(log: CheckedLog, seq: number): number {
  const seqs = log.seqs;
  let lo = 0;
  let hi = seqs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (seqs[mid]! <= seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
