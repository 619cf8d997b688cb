import type { ConversationRecord, SessionEntry, StoredMessage } from "../server/core/model.js";
import { StoreUnavailableError } from "../server/core/result.js";
import type { AppendResult, MembershipChange, MessageStore, NewGroup, NewMessage } from "../server/store/message-store.js";
import { MemoryMessageStore } from "../server/store/memory-message-store.js";
import type { Faults } from "./fault-plan.js";
import type { Scheduler } from "./scheduler.js";
import type { Stats } from "./stats.js";
import { SeqGapStore } from "./seq-gap-store.js";
import type { Trace } from "./trace.js";

/**
 * The one store of the simulated cluster: a MemoryMessageStore (kept across gateway crashes),
 * behind a SeqGapStore when the run's store skips seqs at takeovers, and the observer of every
 * append (the checkers).
 */
export class StoreBackend {
  readonly inner: MessageStore;
  readonly #onAppend: (message: StoredMessage) => void;

  /** `takeover` (when given) says before each append whether the store skips a seq block first. */
  constructor(onAppend: (message: StoredMessage) => void, takeover?: (conversationId: string) => boolean) {
    this.#onAppend = onAppend;
    this.inner = takeover === undefined ? new MemoryMessageStore() : new SeqGapStore(new MemoryMessageStore(), takeover);
  }

  async append(message: NewMessage): Promise<AppendResult> {
    const result = await this.inner.append(message);
    if (!result.duplicate) this.#onAppend(result.message);
    return result;
  }
}

/** An append in flight: when it was applied (or failed), and when it settled. */
interface AppendTurn {
  readonly applied: Promise<void>;
  settled: Promise<void>;
}

const RESOLVED = Promise.resolve();
const noop = (): void => {};

/** `written`'s outcome, once `before` has settled too. */
async function settleAfter<T>(written: Promise<T>, before: Promise<void>): Promise<T> {
  try {
    return await written;
  } finally {
    await before;
  }
}

/** What a store view needs to know about the node incarnation that calls it. */
export interface StoreCaller {
  /** The incarnation is running: a crashed process issues no calls. */
  readonly alive: boolean;
  /** The node is partitioned from the store. */
  readonly storeCut: boolean;
}

/** Deliberate store bugs, test-only: the checkers must catch them. */
export interface StoreBugs {
  /** Probability per append of acknowledging it without writing it (a write lost after its ack). */
  readonly loseAckedWrite: number;
  /** Says everyone is a member of every conversation (the core's membership checks then pass for anyone). */
  readonly everyoneIsMember?: boolean;
  /** readRange includes the message at afterSeq (an off-by-one: a sync answers the cursor's own message). */
  readonly readFromCursor?: boolean;
}

/**
 * One node incarnation's view of the store, with the store faults of the fault plan:
 * latency, writes that fail before being applied, writes that are applied and then time out
 * (the ambiguous case: StoreUnavailableError although the effect is there), failing reads, and
 * the node's partition from the store. A call in flight when its node crashes still completes
 * in the store (the request was on the wire); a crashed node starts no new call.
 */
export class FaultyStore implements MessageStore {
  readonly #backend: StoreBackend;
  readonly #caller: StoreCaller;
  readonly #sched: Scheduler;
  readonly #faults: Faults;
  readonly #stats: Stats;
  readonly #trace: Trace;
  readonly #bugs: StoreBugs;
  /** The last append issued per conversation, which the next one keeps its order behind. */
  readonly #appends = new Map<string, AppendTurn>();
  #closed = false;

  constructor(backend: StoreBackend, caller: StoreCaller, sched: Scheduler, faults: Faults, stats: Stats, trace: Trace, bugs: StoreBugs) {
    this.#backend = backend;
    this.#caller = caller;
    this.#sched = sched;
    this.#faults = faults;
    this.#stats = stats;
    this.#trace = trace;
    this.#bugs = bugs;
  }

  ensureDirect(conversationId: string, userA: string, userB: string, nowMs: number): Promise<ConversationRecord> {
    return this.#write(conversationId, () => this.#backend.inner.ensureDirect(conversationId, userA, userB, nowMs));
  }

  createGroup(group: NewGroup, memberIds: readonly string[]): Promise<ConversationRecord> {
    return this.#write(group.id, () => this.#backend.inner.createGroup(group, memberIds));
  }

  getConversation(conversationId: string): Promise<ConversationRecord | undefined> {
    return this.#read(() => this.#backend.inner.getConversation(conversationId));
  }

  isMember(conversationId: string, userId: string): Promise<boolean> {
    if (this.#bugs.everyoneIsMember === true) return this.#read(async () => true);
    return this.#read(() => this.#backend.inner.isMember(conversationId, userId));
  }

  addMembers(conversationId: string, userIds: readonly string[], membersMax: number, nowMs: number): Promise<MembershipChange | "limit"> {
    return this.#write(conversationId, () => this.#backend.inner.addMembers(conversationId, userIds, membersMax, nowMs));
  }

  removeMembers(conversationId: string, userIds: readonly string[]): Promise<MembershipChange> {
    return this.#write(conversationId, () => this.#backend.inner.removeMembers(conversationId, userIds));
  }

  listMembers(conversationId: string, afterUserId: string, limit: number): Promise<string[]> {
    return this.#read(() => this.#backend.inner.listMembers(conversationId, afterUserId, limit));
  }

  /**
   * Appends of one conversation through this view get their seqs and settle in the order they
   * were issued (the MessageStore contract), each after its own latency: an append is applied
   * once its latency has passed and the one issued before it was applied (or failed), and
   * settles once the one before it settled.
   */
  append(message: NewMessage): Promise<AppendResult> {
    const id = message.conversationId;
    const before = this.#appends.get(id);
    let applied!: () => void;
    const turn: AppendTurn = { applied: new Promise<void>((resolve) => (applied = resolve)), settled: RESOLVED };
    const written = this.#write(id, () => this.#appendNow(message), { before, applied });
    const result = before === undefined ? written : settleAfter(written, before.settled);
    turn.settled = result.then(noop, noop);
    void turn.settled.then(() => {
      if (this.#appends.get(id) === turn) this.#appends.delete(id);
    });
    this.#appends.set(id, turn);
    return result;
  }

  async #appendNow(message: NewMessage): Promise<AppendResult> {
    if (this.#faults.rng.chance(this.#bugs.loseAckedWrite)) {
      // The deliberate bug: acknowledge with the seq the write would have had, store nothing.
      const head = (await this.#backend.inner.getConversation(message.conversationId))?.lastSeq ?? 0;
      this.#note(message.conversationId, `store BUG: append ${message.clientMsgId} acknowledged as seq ${head + 1} and not written`);
      return { message: { ...message, seq: head + 1, prevSeq: head }, duplicate: false };
    }
    const result = await this.#backend.append(message);
    if (result.duplicate) this.#note(message.conversationId, `store: append ${message.clientMsgId} is a repeat of seq ${result.message.seq}`);
    else this.#note(message.conversationId, `store: append ${message.clientMsgId} of ${message.senderId} -> seq ${result.message.seq}`);
    return result;
  }

  readRange(conversationId: string, afterSeq: number, upToSeq: number | undefined, limit: number): Promise<StoredMessage[]> {
    if (this.#bugs.readFromCursor === true && afterSeq > 0) {
      return this.#read(async () => {
        const before = await this.#backend.inner.readRange(conversationId, 0, afterSeq, Number.MAX_SAFE_INTEGER);
        const from = before[before.length - 1]?.seq ?? 0;
        return this.#backend.inner.readRange(conversationId, from === afterSeq ? (before[before.length - 2]?.seq ?? 0) : afterSeq, upToSeq, limit);
      });
    }
    return this.#read(() => this.#backend.inner.readRange(conversationId, afterSeq, upToSeq, limit));
  }

  listGroups(userId: string, limit: number): Promise<string[]> {
    return this.#read(() => this.#backend.inner.listGroups(userId, limit));
  }

  listSessions(userId: string, limit: number): Promise<SessionEntry[]> {
    return this.#read(() => this.#backend.inner.listSessions(userId, limit));
  }

  markRead(userId: string, conversationId: string, readSeq: number): Promise<number> {
    return this.#write(conversationId, () => this.#backend.inner.markRead(userId, conversationId, readSeq));
  }

  /** Closes this view (later calls through it fail); the shared store outlives every node. */
  async close(): Promise<void> {
    this.#closed = true;
  }

  /** A write with the store faults; `order` keeps an append behind the one issued before it. */
  async #write<T>(conversationId: string, apply: () => Promise<T>, order?: { readonly before: AppendTurn | undefined; readonly applied: () => void }): Promise<T> {
    let fail: (() => Promise<never>) | undefined;
    let value!: T;
    try {
      if (this.#closed) throw new Error("store view is closed");
      if (!this.#caller.alive) throw new StoreUnavailableError("node is down");
      const latencyMs = this.#faults.storeLatency();
      if (latencyMs > 0) await this.#sched.delay(latencyMs);
      if (order?.before !== undefined) await order.before.applied;
      if (this.#caller.storeCut) fail = () => this.#fail(conversationId, "store: write not applied: node partitioned from the store", "cut");
      else {
        const fate = this.#faults.writeFate();
        if (fate === "failed-before") fail = () => this.#fail(conversationId, "store: write failed before being applied", "before");
        else {
          value = await apply();
          if (fate === "timeout-after") fail = () => this.#fail(conversationId, "store: write applied, then timed out (ambiguous)", "after");
        }
      }
    } finally {
      order?.applied();
    }
    if (fail !== undefined) return fail();
    return value;
  }

  async #read<T>(apply: () => Promise<T>): Promise<T> {
    if (this.#closed) throw new Error("store view is closed");
    if (!this.#caller.alive) throw new StoreUnavailableError("node is down");
    const latencyMs = this.#faults.storeLatency();
    if (latencyMs > 0) await this.#sched.delay(latencyMs);
    if (this.#caller.storeCut) return this.#fail("", "", "cut");
    if (this.#faults.readFails()) return this.#fail("", "", "read");
    return apply();
  }

  async #fail(conversationId: string, text: string, kind: "cut" | "before" | "after" | "read"): Promise<never> {
    const stats = this.#stats;
    if (kind === "cut") stats.storeCutFailures++;
    else if (kind === "before") stats.storeFailuresBeforeWrite++;
    else if (kind === "after") stats.storeTimeoutsAfterWrite++;
    else stats.storeReadFailures++;
    if (text !== "") this.#note(conversationId, text);
    await this.#sched.delay(this.#faults.config.storeTimeoutMs);
    throw new StoreUnavailableError(text === "" ? "store read failed" : text);
  }

  #note(conversationId: string, text: string): void {
    if (this.#trace.wants(conversationId)) this.#trace.add(this.#sched.nowMs, text);
  }
}
