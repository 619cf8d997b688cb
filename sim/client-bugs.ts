import type { ChainMessage, SyncEffect, SyncLogic } from "../client/sync-engine.js";

/**
 * Deliberate client bugs, switched on by the simulator's `bug*` settings to show that its
 * checkers catch them. They live here, not in the production classes: the simulator wraps the
 * production SyncEngine (ClientCoreOptions.createEngine) and the in-process transport.
 */
export interface ClientBugs {
  /** Deliver a message that arrives out of order at once, as an engine without gap repair would. */
  readonly skipGapRepair?: boolean;
  /** Deliver a message again when it arrives again, instead of dropping what is already delivered. */
  readonly redeliverSeen?: boolean;
  /** Retry a send under a new clientMsgId (breaks idempotency); applied by the transport. */
  readonly freshIdOnRetry?: boolean;
  /** Ask every range fetch for one message (limit 1); applied by the transport. */
  readonly fetchOneAtATime?: boolean;
  /** Hand the core every fetch answer empty (as if its messages were lost on the way); applied by the transport. */
  readonly dropFetchAnswers?: boolean;
  /**
   * A reorder buffer that overflows forgets the pushes that do not fit and fetches nothing for
   * them: once `pendingMax` pushes of a conversation wait out of order, the next ones are
   * dropped, so what comes after the buffer shows only with the next push or the idle resync.
   */
  readonly overflowForgets?: boolean;
}

/** The engine with the bugs switched on in `bugs` (the engine itself unchanged underneath). */
export function breakEngine<M extends ChainMessage>(engine: SyncLogic<M>, bugs: ClientBugs, pendingMax = Infinity): SyncLogic<M> {
  /** overflowForgets: per conversation, the seqs of pushes the engine holds out of order. */
  const held = new Map<string, number[]>();
  const overflows = (message: M): boolean => {
    const last = engine.lastSeq(message.conversationId);
    const seqs = (held.get(message.conversationId) ?? []).filter((s) => s > last);
    held.set(message.conversationId, seqs);
    return message.seq > last && message.prevSeq !== last && !seqs.includes(message.seq) && seqs.length >= pendingMax;
  };
  return {
    connected: () => engine.connected(),
    disconnected: () => engine.disconnected(),
    syncResult: (answer) => engine.syncResult(answer),
    fetchResult: (id, messages, hasMore) => engine.fetchResult(id, messages, hasMore),
    fetchFailed: (id) => engine.fetchFailed(id),
    readPosition: (id, readSeq) => engine.readPosition(id, readSeq),
    tick: () => engine.tick(),
    nextDueMs: () => engine.nextDueMs(),
    cursors: () => engine.cursors(),
    cursor: (id) => engine.cursor(id),
    lastSeq: (id) => engine.lastSeq(id),
    pendingCount: () => engine.pendingCount(),
    idle: () => engine.idle(),
    receive(message) {
      const before = engine.lastSeq(message.conversationId);
      if (bugs.overflowForgets === true && overflows(message)) return [];
      const effects = engine.receive(message);
      if (bugs.overflowForgets === true && engine.lastSeq(message.conversationId) < message.seq) {
        const seqs = held.get(message.conversationId)!;
        if (!seqs.includes(message.seq)) seqs.push(message.seq);
      }
      const early = bugs.skipGapRepair === true && message.seq > before && !effects.some((e) => e.type === "deliver" && e.messages.includes(message));
      const again = bugs.redeliverSeen === true && message.seq <= before;
      if (!early && !again) return effects;
      const extra: SyncEffect<M> = { type: "deliver", conversationId: message.conversationId, messages: [message] };
      return [extra, ...effects];
    },
  };
}
