/**
 * The client's sync logic, free of I/O: it takes what arrives (pushes, sync and fetch results)
 * and returns what to do (deliver messages to the app, request a sync or a range fetch). The
 * SDK's transport, the simulator and the load generator all drive this one implementation.
 *
 * Guarantees to the app, per conversation: messages are delivered in log order, each once,
 * with no gap (a message is delivered only when its prevSeq is the last delivered seq).
 * Anything that arrives out of order is buffered (bounded) and the gap fetched.
 */

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

/** Test-only switches that break the engine on purpose, so the simulator's checkers can be shown to bite. */
export interface SyncEngineFaults {
  /** Deliver out-of-order messages at once instead of buffering them and fetching the gap. */
  readonly skipGapRepair?: boolean;
  /** Deliver a message again when it arrives again, instead of dropping what is already delivered. */
  readonly redeliverSeen?: boolean;
}

/** Engine settings. */
export interface SyncEngineOptions {
  /** Most out-of-order messages buffered per conversation; beyond it the buffer is dropped and refetched. */
  readonly pendingMax?: number;
  /** Where the client stood before (e.g. from local storage). */
  readonly cursors?: readonly ClientCursor[];
  readonly faults?: SyncEngineFaults;
}

interface ConversationState<M> {
  lastSeq: number;
  readSeq: number;
  /** Out-of-order messages by their prevSeq: the chain makes prevSeq unique per message. */
  readonly pending: Map<number, M>;
  /** A fetch is in flight. */
  fetching: boolean;
  /** The afterSeq of the last fetch issued: no progress past it means the server cannot close the gap. */
  fetchAfter: number;
  /** The upToSeq of the last fetch issued; Infinity for "up to the newest". */
  fetchUpTo: number;
  /** The buffer overflowed since the last open-ended fetch was issued. */
  overflowed: boolean;
  /** The highest seq known to exist that is not delivered yet: 0 none, Infinity "up to the newest". */
  wantUpTo: number;
}

type Phase = "offline" | "syncing" | "live";

const PENDING_MAX_DEFAULT = 1024;

/** The per-connection-lifetime sync state machine. See the file comment. */
export class SyncEngine<M extends ChainMessage> {
  readonly #conversations = new Map<string, ConversationState<M>>();
  readonly #pendingMax: number;
  readonly #faults: SyncEngineFaults;
  #phase: Phase = "offline";

  constructor(options: SyncEngineOptions = {}) {
    this.#pendingMax = options.pendingMax ?? PENDING_MAX_DEFAULT;
    this.#faults = options.faults ?? {};
    for (const c of options.cursors ?? []) {
      const state = this.#state(c.conversationId);
      state.lastSeq = c.lastSeq;
      state.readSeq = c.readSeq;
    }
  }

  /** The connection is up: sync before anything else. */
  connected(): SyncEffect<M>[] {
    this.#phase = "syncing";
    return [{ type: "sync", cursors: this.cursors() }];
  }

  /** The connection is gone: requests in flight are lost; buffered messages are kept. */
  disconnected(): void {
    this.#phase = "offline";
    for (const state of this.#conversations.values()) state.fetching = false;
  }

  /** A pushed message, or the client's own message once the server accepted it. */
  receive(message: M): SyncEffect<M>[] {
    const effects: SyncEffect<M>[] = [];
    this.#absorb(message.conversationId, [message], effects);
    this.#repair(message.conversationId, this.#state(message.conversationId), effects);
    return effects;
  }

  /** The answer to the sync this engine asked for. */
  syncResult(answer: SyncAnswer<M>): SyncEffect<M>[] {
    const effects: SyncEffect<M>[] = [];
    for (const id of answer.removedConversationIds) {
      if (this.#conversations.delete(id)) effects.push({ type: "removed", conversationId: id });
    }
    for (const session of answer.sessions) {
      const state = this.#state(session.conversationId);
      this.#moveRead(session.conversationId, state, session.readSeq, effects);
      this.#absorb(session.conversationId, session.messages, effects);
      if (session.hasMoreMessages) state.wantUpTo = Infinity;
      else if (session.lastSeq > state.lastSeq) state.wantUpTo = Math.max(state.wantUpTo, session.lastSeq);
    }
    if (answer.hasMoreSessions) {
      effects.push({ type: "sync", cursors: this.cursors() });
      return effects;
    }
    this.#phase = "live";
    for (const [id, state] of this.#conversations) this.#repair(id, state, effects);
    return effects;
  }

  /** The answer to a fetch this engine asked for. */
  fetchResult(conversationId: string, messages: readonly M[], hasMore: boolean): SyncEffect<M>[] {
    const effects: SyncEffect<M>[] = [];
    const state = this.#conversations.get(conversationId);
    if (state === undefined) return effects;
    state.fetching = false;
    this.#absorb(conversationId, messages, effects);
    // More of the requested range exists: want the rest of that range. Not lastSeq + 1: buffered
    // messages may have completed the range, and a seq beyond the head is out of range.
    if (hasMore) state.wantUpTo = Math.max(state.wantUpTo, state.fetchUpTo);
    // An open-ended fetch that returned everything meets an open want, unless the buffer
    // overflowed meanwhile (what it dropped may be newer than what the fetch read).
    else if (state.wantUpTo === Infinity && state.fetchUpTo === Infinity && !state.overflowed) state.wantUpTo = 0;
    if (state.lastSeq === state.fetchAfter && this.#gapOpen(state)) {
      // The server had nothing to close the gap with; stop asking until the next sync.
      state.wantUpTo = 0;
      effects.push({ type: "stuck", conversationId, lastSeq: state.lastSeq });
      return effects;
    }
    this.#repair(conversationId, state, effects);
    return effects;
  }

  /** A fetch failed; the next sync (after a reconnect) or push retries. */
  fetchFailed(conversationId: string): void {
    const state = this.#conversations.get(conversationId);
    if (state !== undefined) state.fetching = false;
  }

  /** A read position pushed from another device. */
  readPosition(conversationId: string, readSeq: number): SyncEffect<M>[] {
    const effects: SyncEffect<M>[] = [];
    this.#moveRead(conversationId, this.#state(conversationId), readSeq, effects);
    return effects;
  }

  /** Cursors for every conversation the client knows. */
  cursors(): ClientCursor[] {
    const out: ClientCursor[] = [];
    for (const [conversationId, s] of this.#conversations) out.push({ conversationId, lastSeq: s.lastSeq, readSeq: s.readSeq });
    return out;
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
      state = { lastSeq: 0, readSeq: 0, pending: new Map(), fetching: false, fetchAfter: 0, fetchUpTo: 0, overflowed: false, wantUpTo: 0 };
      this.#conversations.set(conversationId, state);
    }
    return state;
  }

  /** Delivers what chains onto lastSeq and buffers the rest; the caller decides on repair. */
  #absorb(conversationId: string, messages: readonly M[], effects: SyncEffect<M>[]): void {
    const state = this.#state(conversationId);
    const delivered: M[] = [];
    for (const m of messages) {
      if (m.seq <= state.lastSeq) {
        if (this.#faults.redeliverSeen === true) delivered.push(m);
        continue;
      }
      if (m.prevSeq === state.lastSeq || this.#faults.skipGapRepair === true) {
        delivered.push(m);
        state.lastSeq = m.seq;
        this.#chain(state, delivered);
      } else {
        state.wantUpTo = Math.max(state.wantUpTo, m.prevSeq);
        if (state.pending.size >= this.#pendingMax) {
          // Bounded memory: forget the buffer and fetch everything up to the newest instead.
          state.pending.clear();
          state.wantUpTo = Infinity;
          state.overflowed = true;
        } else {
          state.pending.set(m.prevSeq, m);
        }
      }
    }
    this.#prune(state);
    if (delivered.length > 0) effects.push({ type: "deliver", conversationId, messages: delivered });
  }

  /** Moves buffered messages that now chain onto lastSeq into `delivered`. */
  #chain(state: ConversationState<M>, delivered: M[]): void {
    for (let next = state.pending.get(state.lastSeq); next !== undefined; next = state.pending.get(state.lastSeq)) {
      state.pending.delete(next.prevSeq);
      delivered.push(next);
      state.lastSeq = next.seq;
    }
  }

  /** Drops buffered messages that are already delivered and a want that is met. */
  #prune(state: ConversationState<M>): void {
    for (const [prev, m] of state.pending) if (m.seq <= state.lastSeq) state.pending.delete(prev);
    if (state.wantUpTo !== Infinity && state.wantUpTo <= state.lastSeq) state.wantUpTo = 0;
  }

  #gapOpen(state: ConversationState<M>): boolean {
    return state.pending.size > 0 || state.wantUpTo > state.lastSeq;
  }

  /** Starts a fetch for the open gap of a conversation, if any and none is in flight. */
  #repair(conversationId: string, state: ConversationState<M>, effects: SyncEffect<M>[]): void {
    if (state.fetching || this.#phase !== "live" || !this.#gapOpen(state)) return;
    let upTo = state.wantUpTo;
    for (const prev of state.pending.keys()) upTo = Math.max(upTo, prev);
    if (upTo !== Infinity && upTo <= state.lastSeq) return;
    state.fetching = true;
    state.fetchAfter = state.lastSeq;
    state.fetchUpTo = upTo;
    if (upTo === Infinity) state.overflowed = false;
    effects.push({ type: "fetch", conversationId, afterSeq: state.lastSeq, upToSeq: upTo === Infinity ? 0 : upTo });
  }

  #moveRead(conversationId: string, state: ConversationState<M>, readSeq: number, effects: SyncEffect<M>[]): void {
    if (readSeq <= state.readSeq) return;
    state.readSeq = readSeq;
    effects.push({ type: "read", conversationId, readSeq });
  }
}
