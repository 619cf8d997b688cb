/** A message that was just appended, as a notification describes it. */
export interface AppendedMessage {
  readonly messageId: string;
  readonly conversationId: string;
  readonly seq: number;
  readonly senderId: string;
  /** A short text for the notification ("" to show none); never the whole body. */
  readonly preview: string;
}

/** Notify `userId`'s registered devices of `message`. */
export interface NotifyDecision {
  readonly userId: string;
  readonly message: AppendedMessage;
  /** "grace": still offline when the grace ran out; "overflow": decided early to stay within a bound. */
  readonly why: "grace" | "overflow";
}

/** Bounds and timing of the decider. */
export interface OfflinePushOptions {
  /** How long a member may stay without a live connection before being notified. */
  readonly graceMs: number;
  /** Notifications waiting for their grace, over all users; beyond it the oldest is decided at once. */
  readonly pendingMax: number;
  /** Notifications waiting per user; beyond it that user's oldest is decided at once. */
  readonly pendingPerUserMax: number;
}

/** Defaults: 5 s of grace (a reconnecting client syncs well within it). */
export const OFFLINE_PUSH_DEFAULTS: OfflinePushOptions = { graceMs: 5000, pendingMax: 100_000, pendingPerUserMax: 100 };

interface Pending {
  readonly userId: string;
  readonly message: AppendedMessage;
  readonly deadlineMs: number;
  live: boolean;
}

/**
 * Decides which members to notify through their push provider: those with no live connection
 * when a message is appended who still have none `graceMs` later. A member who gets a live
 * connection within the grace is not notified (its client syncs on connect); a member online
 * at append time got the push and is not notified either. Each (user, message) is decided at
 * most once (a repeat report after the decision is recognised among the last `pendingMax`
 * decisions).
 *
 * Pure and event-driven: the caller reports appends and presence changes with the time they
 * happened and calls `tick(now)`; the decider keeps no timer (`nextDeadlineMs()` says when
 * the next tick is due). Presence must be the user's across every process, as the user
 * channel's subscription reports it: "has a live connection" from its first connection
 * anywhere, "has none" after its last. Memory is bounded by the users online and
 * `pendingMax` (pending entries, the deadline queue and the recent decisions).
 */
export class OfflinePushDecider {
  readonly #options: OfflinePushOptions;
  readonly #online = new Set<string>();
  /** Pending notifications in deadline order (appends arrive in time order); dead ones are skipped. */
  #queue: Pending[] = [];
  #head = 0;
  /** userId -> messageId -> pending, oldest first (Map keeps insertion order). */
  readonly #byUser = new Map<string, Map<string, Pending>>();
  #live = 0;
  #lastMs = 0;
  /** "userId messageId" of the latest decisions, oldest first, at most pendingMax: a late repeat is not decided again. */
  readonly #decided = new Map<string, true>();

  constructor(options: OfflinePushOptions = OFFLINE_PUSH_DEFAULTS) {
    if (!(options.graceMs >= 0 && options.pendingMax >= 1 && options.pendingPerUserMax >= 1)) {
      throw new Error(`invalid offline push options ${JSON.stringify(options)}`);
    }
    this.#options = options;
  }

  /** Notifications waiting for their grace. */
  get pendingCount(): number {
    return this.#live;
  }

  /** Entries held in the deadline queue, cancelled ones included (at most 2 x pendingMax + 1). */
  get queuedCount(): number {
    return this.#queue.length - this.#head;
  }

  /** Users currently known to have a live connection. */
  get onlineCount(): number {
    return this.#online.size;
  }

  /** When the next pending notification falls due, or undefined when none waits. */
  nextDeadlineMs(): number | undefined {
    this.#skipDead();
    return this.#queue[this.#head]?.deadlineMs;
  }

  /** `userId` has a live connection (its first): its waiting notifications are dropped. */
  connected(userId: string, nowMs: number): void {
    this.#advance(nowMs);
    this.#online.add(userId);
    const pending = this.#byUser.get(userId);
    if (pending === undefined) return;
    for (const p of pending.values()) p.live = false;
    this.#live -= pending.size;
    this.#byUser.delete(userId);
  }

  /** `userId` has no live connection any more (its last one ended). */
  disconnected(userId: string, nowMs: number): void {
    this.#advance(nowMs);
    this.#online.delete(userId);
  }

  /**
   * `message` was appended for `memberIds` (the sender may be among them; it is never
   * notified). Returns the decisions a bound forced early; the rest come from `tick`.
   */
  messageAppended(message: AppendedMessage, memberIds: Iterable<string>, nowMs: number): NotifyDecision[] {
    const now = this.#advance(nowMs);
    const early: NotifyDecision[] = [];
    for (const userId of memberIds) {
      if (userId === message.senderId || this.#online.has(userId)) continue;
      let pending = this.#byUser.get(userId);
      if (pending?.has(message.messageId) === true || this.#decided.has(`${userId} ${message.messageId}`)) continue;
      if (pending !== undefined && pending.size >= this.#options.pendingPerUserMax) {
        const oldest = pending.values().next().value!;
        early.push(this.#decide(oldest, "overflow"));
      }
      if (this.#live >= this.#options.pendingMax) {
        this.#skipDead();
        early.push(this.#decide(this.#queue[this.#head]!, "overflow"));
      }
      pending = this.#byUser.get(userId);
      if (pending === undefined) this.#byUser.set(userId, (pending = new Map()));
      const entry: Pending = { userId, message, deadlineMs: now + this.#options.graceMs, live: true };
      pending.set(message.messageId, entry);
      this.#queue.push(entry);
      this.#live++;
      // Cancelled entries wait in the queue until their deadline: drop them once they
      // outnumber the live ones, so the queue stays within 2 x pendingMax (amortised O(1)).
      if (this.#queue.length - this.#head > 2 * this.#options.pendingMax) {
        this.#queue = this.#queue.slice(this.#head).filter((p) => p.live);
        this.#head = 0;
      }
    }
    return early;
  }

  /** The notifications whose grace ran out by `nowMs`, in the order they fell due. */
  tick(nowMs: number): NotifyDecision[] {
    const now = this.#advance(nowMs);
    const due: NotifyDecision[] = [];
    for (;;) {
      this.#skipDead();
      const next = this.#queue[this.#head];
      if (next === undefined || next.deadlineMs > now) break;
      due.push(this.#decide(next, "grace"));
    }
    this.#compact();
    return due;
  }

  #decide(entry: Pending, why: NotifyDecision["why"]): NotifyDecision {
    entry.live = false;
    this.#live--;
    const pending = this.#byUser.get(entry.userId)!;
    pending.delete(entry.message.messageId);
    if (pending.size === 0) this.#byUser.delete(entry.userId);
    this.#decided.set(`${entry.userId} ${entry.message.messageId}`, true);
    if (this.#decided.size > this.#options.pendingMax) this.#decided.delete(this.#decided.keys().next().value!);
    return { userId: entry.userId, message: entry.message, why };
  }

  /** Time as the decider sees it never goes back, so deadlines stay in queue order. */
  #advance(nowMs: number): number {
    if (nowMs > this.#lastMs) this.#lastMs = nowMs;
    return this.#lastMs;
  }

  #skipDead(): void {
    while (this.#head < this.#queue.length && !this.#queue[this.#head]!.live) this.#head++;
  }

  #compact(): void {
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }
}
