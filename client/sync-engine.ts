/**
 * The client's sync logic, free of I/O: it takes what arrives (pushes, sync and fetch results)
 * and returns what to do (deliver messages to the app, request a sync or a range fetch). The
 * SDK, the simulator and the load generator all drive this one implementation.
 *
 * Guarantees to the app, per conversation: messages are delivered in log order, each once,
 * with no gap (a message is delivered only when its prevSeq is the last delivered seq; seqs
 * need not be contiguous, only the prevSeq links are trusted). Anything that arrives out of
 * order is buffered (bounded) and the gap fetched.
 *
 * Gap repair without storms: a gap revealed by a push waits `reorderWindowMs` before it is
 * fetched, because a push that is only reordered (it took another path through the servers)
 * arrives within a few milliseconds and closes the gap for free. A fetch asks for exactly one
 * hole: the seqs between the last delivered message and the first buffered one, never what a
 * buffered push already holds, and never a second time while a fetch of the conversation is in
 * flight. A gap the server itself reported (a sync or fetch answer with more to come) is
 * fetched at once: nothing is on its way to fill it.
 */

import { STOPPED_CLOCK, type Clock } from "./clock.js";

/** The fields the engine reads; the SDK's messages and the server's stored messages fit. */
export interface ChainMessage {
  readonly conversationId: string;
  readonly seq: number;
  readonly prevSeq: number;
}

/** Where the client stands in one conversation; sent in sync requests. */
export interface ClientCursor {
  readonly conversationId: string;
  /** The last seq delivered with no gap before it. */
  readonly lastSeq: number;
  readonly readSeq: number;
}

/** One session of a sync answer. */
export interface SyncedSession<M extends ChainMessage> {
  readonly conversationId: string;
  /** The conversation's newest seq on the server. */
  readonly lastSeq: number;
  readonly readSeq: number;
  /** Messages after the cursor the client sent, ascending. */
  readonly messages: readonly M[];
  readonly hasMoreMessages: boolean;
}

/** A sync answer. */
export interface SyncAnswer<M extends ChainMessage> {
  readonly sessions: readonly SyncedSession<M>[];
  readonly removedConversationIds: readonly string[];
  readonly hasMoreSessions: boolean;
}

/** What the engine asks its driver to do. */
export type SyncEffect<M extends ChainMessage> =
  /** Hand these messages of one conversation to the app, in this order. */
  | { readonly type: "deliver"; readonly conversationId: string; readonly messages: readonly M[] }
  /** Send a sync request with these cursors. */
  | { readonly type: "sync"; readonly cursors: readonly ClientCursor[] }
  /** Fetch messages with afterSeq < seq <= upToSeq (0: up to the newest). */
  | { readonly type: "fetch"; readonly conversationId: string; readonly afterSeq: number; readonly upToSeq: number }
  /** The read position of a conversation moved. */
  | { readonly type: "read"; readonly conversationId: string; readonly readSeq: number }
  /** The user is no longer a member; the conversation was dropped. */
  | { readonly type: "removed"; readonly conversationId: string }
  /** A gap could not be closed (the server returned no progress); the next sync retries. */
  | { readonly type: "stuck"; readonly conversationId: string; readonly lastSeq: number };

/** Engine settings. */
export interface SyncEngineOptions {
  /** Most out-of-order messages buffered per conversation; beyond it the buffer is dropped and refetched. */
  readonly pendingMax?: number;
  /** Where the client stood before (e.g. from local storage). */
  readonly cursors?: readonly ClientCursor[];
  /** The time that reorder windows are measured on. Default: a clock standing at 0 (drive it with tick()). */
  readonly clock?: Clock;
  /**
   * How long a gap revealed by a push waits for the missing pushes before it is fetched.
   * Default REORDER_WINDOW_MS_DEFAULT (50 ms) with a clock; 0 without one (no time to wait on).
   */
  readonly reorderWindowMs?: number;
}

/** The engine as its drivers use it: SyncEngine, or something that wraps it. */
export type SyncLogic<M extends ChainMessage> = Pick<
  SyncEngine<M>,
  "connected" | "disconnected" | "receive" | "syncResult" | "fetchResult" | "fetchFailed" | "readPosition" | "tick" | "nextDueMs" | "cursors" | "cursor" | "lastSeq" | "pendingCount" | "idle"
>;

/** A message waiting for its predecessor, and when its gap may be fetched. */
interface Buffered<M> {
  readonly message: M;
  readonly dueAtMs: number;
}

interface ConversationState<M> {
  readonly id: string;
  lastSeq: number;
  readSeq: number;
  /**
   * Out-of-order messages by their prevSeq: the chain makes prevSeq unique per message.
   * NOTHING_PENDING (shared, never written) until the first one is buffered.
   */
  pending: Map<number, Buffered<M>>;
  /** A fetch is in flight. */
  fetching: boolean;
  /** The afterSeq of the last fetch issued: no progress past it means the server cannot close the gap. */
  fetchAfter: number;
  /** The upToSeq of the last fetch issued; Infinity for "up to the newest". */
  fetchUpTo: number;
  /** The buffer overflowed since the last open-ended fetch was issued. */
  overflowed: boolean;
  /** The highest seq the server said exists that is not delivered yet: 0 none, Infinity "up to the newest". */
  wantUpTo: number;
  /** The server could not close a gap: no fetch until the next sync. */
  stuck: boolean;
  /** When the first hole may be fetched (its reorder window ends); 0 when nothing waits. */
  waitUntilMs: number;
}

type Phase = "offline" | "syncing" | "live";

/**
 * The empty maps that a conversation's buffer and an engine's conversations start as, until
 * their first entry: most conversations never buffer and most clients of a large population
 * know no conversation, and a map per one would be most of their memory. Only read: the
 * first write replaces it with a map of its own.
 */
const NOTHING_PENDING = new Map<number, never>();
const NO_CONVERSATIONS = new Map<string, never>();

const PENDING_MAX_DEFAULT = 1024;

/**
 * The default reorder window. Pushes of one conversation leave the server in seq order from
 * one place, so a reordering comes from a second path (a relay or broker hop between
 * processes: about 1-5 ms on one host, a few tens of ms across a loaded network) or from the
 * sender's own answer overtaking a push. 50 ms covers those with room for an event-loop stall,
 * and costs nothing unless a push is really lost (its repair then starts 50 ms later).
 */
export const REORDER_WINDOW_MS_DEFAULT = 50;

/** The per-connection-lifetime sync state machine. See the file comment. */
export class SyncEngine<M extends ChainMessage> {
  /** NO_CONVERSATIONS until the first conversation is known. */
  #conversations: Map<string, ConversationState<M>> = NO_CONVERSATIONS;
  /** Conversations whose first hole waits for its reorder window (allocated on first use: most clients never wait). */
  #waiting: Set<ConversationState<M>> | undefined;
  readonly #pendingMax: number;
  readonly #clock: Clock;
  readonly #reorderWindowMs: number;
  #phase: Phase = "offline";

  constructor(options: SyncEngineOptions = {}) {
    this.#pendingMax = options.pendingMax ?? PENDING_MAX_DEFAULT;
    this.#clock = options.clock ?? STOPPED_CLOCK;
    this.#reorderWindowMs = options.reorderWindowMs ?? (options.clock === undefined ? 0 : REORDER_WINDOW_MS_DEFAULT);
    for (const c of options.cursors ?? []) {
      const state = this.#state(c.conversationId);
      state.lastSeq = c.lastSeq;
      state.readSeq = c.readSeq;
    }
  }

  /** The connection is up: sync before anything else. */
  connected(): SyncEffect<M>[] {
    this.#phase = "syncing";
    this.#waiting?.clear();
    return [{ type: "sync", cursors: this.cursors() }];
  }

  /** The connection is gone: requests in flight are lost; buffered messages are kept. */
  disconnected(): void {
    this.#phase = "offline";
    this.#waiting?.clear();
    for (const state of this.#conversations.values()) {
      state.fetching = false;
      state.waitUntilMs = 0;
    }
  }

  /** A pushed message, or the client's own message once the server accepted it. */
  receive(message: M): SyncEffect<M>[] {
    const effects: SyncEffect<M>[] = [];
    const state = this.#state(message.conversationId);
    this.#absorb(state, [message], this.#clock.nowMs() + this.#reorderWindowMs, effects);
    this.#repair(state, effects);
    return effects;
  }

  /** The answer to the sync this engine asked for. */
  syncResult(answer: SyncAnswer<M>): SyncEffect<M>[] {
    const effects: SyncEffect<M>[] = [];
    for (const id of answer.removedConversationIds) {
      const state = this.#conversations.get(id);
      if (state === undefined) continue;
      this.#waiting?.delete(state);
      this.#conversations.delete(id);
      effects.push({ type: "removed", conversationId: id });
    }
    const now = this.#clock.nowMs();
    for (const session of answer.sessions) {
      const state = this.#state(session.conversationId);
      this.#moveRead(state, session.readSeq, effects);
      this.#absorb(state, session.messages, now, effects);
      if (session.hasMoreMessages) state.wantUpTo = Infinity;
      else if (session.lastSeq > state.lastSeq) state.wantUpTo = Math.max(state.wantUpTo, session.lastSeq);
    }
    if (answer.hasMoreSessions) {
      effects.push({ type: "sync", cursors: this.cursors() });
      return effects;
    }
    this.#phase = "live";
    for (const state of this.#conversations.values()) {
      state.stuck = false;
      this.#repair(state, effects);
    }
    return effects;
  }

  /** The answer to a fetch this engine asked for. */
  fetchResult(conversationId: string, messages: readonly M[], hasMore: boolean): SyncEffect<M>[] {
    const effects: SyncEffect<M>[] = [];
    const state = this.#conversations.get(conversationId);
    if (state === undefined) return effects;
    state.fetching = false;
    this.#absorb(state, messages, this.#clock.nowMs(), effects);
    // More of the requested range exists: want the rest of that range. Not lastSeq + 1: buffered
    // messages may have completed the range, and a seq beyond the head is out of range.
    if (hasMore) state.wantUpTo = Math.max(state.wantUpTo, state.fetchUpTo);
    // An open-ended fetch that returned everything meets an open want, unless the buffer
    // overflowed meanwhile (what it dropped may be newer than what the fetch read).
    else if (state.wantUpTo === Infinity && state.fetchUpTo === Infinity && !state.overflowed) state.wantUpTo = 0;
    this.#prune(state);
    if (state.lastSeq === state.fetchAfter && this.#gapOpen(state)) {
      // The server had nothing to close the gap with; stop asking until the next sync.
      state.wantUpTo = 0;
      state.stuck = true;
      this.#unwait(state);
      effects.push({ type: "stuck", conversationId, lastSeq: state.lastSeq });
      return effects;
    }
    this.#repair(state, effects);
    return effects;
  }

  /** A fetch failed; the next sync (after a reconnect) or push retries. */
  fetchFailed(conversationId: string): void {
    const state = this.#conversations.get(conversationId);
    if (state !== undefined) state.fetching = false;
  }

  /** A read position pushed from another device, or the answer to this device's markRead. */
  readPosition(conversationId: string, readSeq: number): SyncEffect<M>[] {
    const effects: SyncEffect<M>[] = [];
    this.#moveRead(this.#state(conversationId), readSeq, effects);
    return effects;
  }

  /** Fetches the gaps whose reorder window has ended. */
  tick(): SyncEffect<M>[] {
    const effects: SyncEffect<M>[] = [];
    if (this.#waiting === undefined || this.#waiting.size === 0) return effects;
    const now = this.#clock.nowMs();
    for (const state of [...this.#waiting]) {
      if (state.waitUntilMs > now) continue;
      this.#repair(state, effects);
      // Whatever repair decided, this deadline has passed: it must not be reported again.
      if (state.waitUntilMs !== 0 && state.waitUntilMs <= now) this.#unwait(state);
    }
    return effects;
  }

  /** When tick() has something to do next, or undefined when no gap waits. */
  nextDueMs(): number | undefined {
    let due: number | undefined;
    if (this.#waiting === undefined) return due;
    for (const state of this.#waiting) if (due === undefined || state.waitUntilMs < due) due = state.waitUntilMs;
    return due;
  }

  /** Cursors for every conversation the client knows. */
  cursors(): ClientCursor[] {
    const out: ClientCursor[] = [];
    for (const [conversationId, s] of this.#conversations) out.push({ conversationId, lastSeq: s.lastSeq, readSeq: s.readSeq });
    return out;
  }

  /** The cursor of one conversation (zeros when unknown). */
  cursor(conversationId: string): ClientCursor {
    const s = this.#conversations.get(conversationId);
    return { conversationId, lastSeq: s?.lastSeq ?? 0, readSeq: s?.readSeq ?? 0 };
  }

  /** The last delivered seq of a conversation (0 when unknown). */
  lastSeq(conversationId: string): number {
    return this.#conversations.get(conversationId)?.lastSeq ?? 0;
  }

  /** Messages buffered out of order, over all conversations. */
  pendingCount(): number {
    let n = 0;
    for (const s of this.#conversations.values()) n += s.pending.size;
    return n;
  }

  /** True when connected, synced, with no gap open and nothing being fetched. */
  idle(): boolean {
    if (this.#phase !== "live") return false;
    for (const s of this.#conversations.values()) if (s.fetching || s.pending.size > 0 || s.wantUpTo > s.lastSeq) return false;
    return true;
  }

  #state(conversationId: string): ConversationState<M> {
    let state = this.#conversations.get(conversationId);
    if (state === undefined) {
      state = { id: conversationId, lastSeq: 0, readSeq: 0, pending: NOTHING_PENDING, fetching: false, fetchAfter: 0, fetchUpTo: 0, overflowed: false, wantUpTo: 0, stuck: false, waitUntilMs: 0 };
      if (this.#conversations === NO_CONVERSATIONS) this.#conversations = new Map();
      this.#conversations.set(conversationId, state);
    }
    return state;
  }

  /**
   * Delivers what chains onto lastSeq and buffers the rest (its gap may be fetched from
   * `dueAtMs` on); the caller decides on repair.
   */
  #absorb(state: ConversationState<M>, messages: readonly M[], dueAtMs: number, effects: SyncEffect<M>[]): void {
    let delivered: M[] | undefined;
    for (const m of messages) {
      if (m.seq <= state.lastSeq) continue;
      if (m.prevSeq === state.lastSeq) {
        delivered ??= [];
        delivered.push(m);
        state.lastSeq = m.seq;
        this.#chain(state, delivered);
      } else if (!state.pending.has(m.prevSeq)) {
        if (state.pending.size >= this.#pendingMax) {
          // Bounded memory: forget the buffer and fetch everything up to the newest instead.
          state.pending = NOTHING_PENDING;
          state.wantUpTo = Infinity;
          state.overflowed = true;
        } else {
          if (state.pending === NOTHING_PENDING) state.pending = new Map();
          state.pending.set(m.prevSeq, { message: m, dueAtMs });
        }
      }
    }
    this.#prune(state);
    if (delivered !== undefined) effects.push({ type: "deliver", conversationId: state.id, messages: delivered });
  }

  /** Moves buffered messages that now chain onto lastSeq into `delivered`. */
  #chain(state: ConversationState<M>, delivered: M[]): void {
    for (let next = state.pending.get(state.lastSeq); next !== undefined; next = state.pending.get(state.lastSeq)) {
      state.pending.delete(state.lastSeq);
      delivered.push(next.message);
      state.lastSeq = next.message.seq;
    }
  }

  /** Drops buffered messages that are delivered or can no longer chain, and a want that is met. */
  #prune(state: ConversationState<M>): void {
    if (state.pending.size > 0) for (const [prev, b] of state.pending) if (b.message.seq <= state.lastSeq || prev < state.lastSeq) state.pending.delete(prev);
    if (state.wantUpTo !== Infinity && state.wantUpTo <= state.lastSeq) state.wantUpTo = 0;
  }

  #gapOpen(state: ConversationState<M>): boolean {
    return state.pending.size > 0 || state.wantUpTo > state.lastSeq;
  }

  /**
   * Starts the fetch of the first hole of a conversation when its time has come: the seqs
   * after lastSeq up to the prevSeq of the first buffered message, or up to what the server
   * said exists. A hole the server reported is due at once; one only a push revealed is due
   * when the push's reorder window ends.
   */
  #repair(state: ConversationState<M>, effects: SyncEffect<M>[]): void {
    if (state.fetching || state.stuck || this.#phase !== "live") return;
    if (!this.#gapOpen(state)) {
      this.#unwait(state);
      return;
    }
    let upTo = Infinity;
    for (const prev of state.pending.keys()) if (prev < upTo) upTo = prev;
    let dueAtMs = 0;
    if (upTo !== Infinity) {
      if (upTo > state.wantUpTo) dueAtMs = state.pending.get(upTo)!.dueAtMs;
    } else {
      upTo = state.wantUpTo;
    }
    if (dueAtMs > this.#clock.nowMs()) {
      state.waitUntilMs = dueAtMs;
      (this.#waiting ??= new Set()).add(state);
      return;
    }
    this.#unwait(state);
    state.fetching = true;
    state.fetchAfter = state.lastSeq;
    state.fetchUpTo = upTo;
    if (upTo === Infinity) state.overflowed = false;
    effects.push({ type: "fetch", conversationId: state.id, afterSeq: state.lastSeq, upToSeq: upTo === Infinity ? 0 : upTo });
  }

  #unwait(state: ConversationState<M>): void {
    if (state.waitUntilMs === 0) return;
    state.waitUntilMs = 0;
    this.#waiting?.delete(state);
  }

  #moveRead(state: ConversationState<M>, readSeq: number, effects: SyncEffect<M>[]): void {
    if (readSeq <= state.readSeq) return;
    state.readSeq = readSeq;
    effects.push({ type: "read", conversationId: state.id, readSeq });
  }
}
