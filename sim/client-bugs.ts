import type { Clock } from "../client/clock.js";
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
  /**
   * The rest of a paged range is fetched one reorder window late: the fetch the engine asks for
   * after an answer that says has_more is held back for `reorderWindowMs`, as an engine that
   * takes the page for the end of the range and waits for a buffered push's window would.
   */
  readonly delayPagedRest?: boolean;
}

/** The engine's time, for the bugs that hold effects back. */
export interface BugTiming {
  readonly clock: Clock;
  readonly reorderWindowMs: number;
}

/** The engine with the bugs switched on in `bugs` (the engine itself unchanged underneath). */
export function breakEngine<M extends ChainMessage>(engine: SyncLogic<M>, bugs: ClientBugs, pendingMax = Infinity, timing: BugTiming = { clock: { nowMs: () => 0 }, reorderWindowMs: 0 }): SyncLogic<M> {
  /** overflowForgets: per conversation, the seqs of pushes the engine holds out of order. */
  const held = new Map<string, number[]>();
  const overflows = (message: M): boolean => {
    const last = engine.lastSeq(message.conversationId);
    const seqs = (held.get(message.conversationId) ?? []).filter((s) => s > last);
    held.set(message.conversationId, seqs);
    return message.seq > last && message.prevSeq !== last && !seqs.includes(message.seq) && seqs.length >= pendingMax;
  };
  /** delayPagedRest: fetches held back, and when they may leave. */
  let delayed: { readonly effect: SyncEffect<M>; readonly dueAtMs: number }[] = [];
  return {
    connected: () => engine.connected(),
    disconnected: () => {
      // The engine forgets its fetches in flight; one held back here was never sent.
      delayed = [];
      engine.disconnected();
    },
    syncResult: (answer) => engine.syncResult(answer),
    fetchResult: (id, messages, hasMore) => {
      const effects = engine.fetchResult(id, messages, hasMore);
      if (bugs.delayPagedRest !== true || !hasMore) return effects;
      const dueAtMs = timing.clock.nowMs() + timing.reorderWindowMs;
      for (const effect of effects) if (effect.type === "fetch") delayed.push({ effect, dueAtMs });
      return effects.filter((e) => e.type !== "fetch");
    },
    fetchFailed: (id) => engine.fetchFailed(id),
    readPosition: (id, readSeq) => engine.readPosition(id, readSeq),
    tick: () => {
      const effects = engine.tick();
      if (delayed.length === 0) return effects;
      const now = timing.clock.nowMs();
      for (const d of delayed) if (d.dueAtMs <= now) effects.push(d.effect);
      delayed = delayed.filter((d) => d.dueAtMs > now);
      return effects;
    },
    nextDueMs: () => {
      const due = engine.nextDueMs();
      if (delayed.length === 0) return due;
      const held = Math.min(...delayed.map((d) => d.dueAtMs));
      return due === undefined ? held : Math.min(due, held);
    },
    cursors: () => engine.cursors(),
    cursor: (id) => engine.cursor(id),
    lastSeq: (id) => engine.lastSeq(id),
    pendingCount: () => engine.pendingCount(),
    idle: () => engine.idle() && delayed.length === 0,
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
