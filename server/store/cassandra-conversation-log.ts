import type { Clock } from "../core/clock.js";
import type { StoredMessage } from "../core/model.js";
import { StoreUnavailableError } from "../core/result.js";
import { AppendPipeline } from "./cassandra-append-pipeline.js";
import { CassandraLogRows, type ConversationInfo } from "./cassandra-log-rows.js";
import type { SeqLeases } from "./cassandra-seq-lease.js";
import type { CassandraSession } from "./cassandra-session.js";
import type { AppendResult, NewMessage } from "./message-store.js";

/** Tuning of the append path. */
export interface ConversationLogOptions {
  /** Seqs per log partition (SEQS_PER_BUCKET). */
  readonly seqsPerBucket: number;
  /** An idle owner keeps a conversation this long before releasing it. Default 250. */
  readonly holdIdleMs?: number;
  /** How often an owner looks for another process waiting for its conversation. Default 50. */
  readonly wantCheckMs?: number;
  /** Appends issued per conversation in this process and not answered yet, before StoreUnavailableError. Default 1000. */
  readonly queueMax?: number;
  /** Appends per conversation with a seq and writes in flight at once (APPEND_PIPELINE_MAX). */
  readonly pipelineMax?: number;
}

/** Appends of one conversation in flight at once by default: about a window of round trips. */
export const APPEND_PIPELINE_MAX = 128;

/** An issued append, until it is answered. */
interface Entry {
  readonly message: NewMessage;
  readonly key: string;
  /** An earlier append of the same (sender, clientMsgId) not answered yet: this one follows it. */
  readonly original: Entry | undefined;
  readonly outcome: Deferred<AppendResult>;
  /** The dedup lookup, made under `pipeline`'s lease. */
  lookup: { readonly pipeline: AppendPipeline; readonly result: Promise<StoredMessage | undefined> } | undefined;
  /** Times its seq assignment started over because the lease was lost. */
  restarts: number;
}

/** Per conversation this process appends to: the issued appends and, while owned, the lease's pipeline. */
interface Slot {
  readonly id: string;
  info: ConversationInfo | undefined;
  pipeline: AppendPipeline | undefined;
  /** Issued appends without a seq yet, in issue order; only the driver takes from it. */
  readonly queue: Entry[];
  /** Unanswered appends by dedup key (the first of each key). */
  readonly keys: Map<string, Entry>;
  /** Issued and not answered yet (bounded by queueMax). */
  unanswered: number;
  /** Settles after the last issued append's promise settled: callers are answered in issue order. */
  answeredTail: Promise<void>;
  driving: boolean;
  releasing: Promise<void> | undefined;
  idleTimer: NodeJS.Timeout | undefined;
  lastWantCheckMs: number;
  /** Another process asked for the conversation: hand it over once nothing is in flight. */
  handoffTo: string;
}

/** Seq assignments of one append that may start over after a lost lease. */
const RESTARTS_MAX = 2;

/**
 * Appends to conversation logs in Cassandra, one owner process per conversation at a time
 * (SeqLeases). Within the owner, the appends of a conversation are pipelined
 * (AppendPipeline): they get seqs from the leased block in the order they were issued, the
 * writes of up to pipelineMax of them are in flight at once, and each is answered once
 * durable, in issue order. Appends to different conversations are independent.
 *
 * The append of seq s by the owner of generation g, after a dedup lookup:
 *   1. the message row (seq s, prev_seq = the seq assigned before it) and the dedup row,
 *   2. then, once the message rows of every seq this owner assigned up to s are written, the
 *      head (conversation statics) and, for a direct conversation, both participants' session
 *      rows, moved to the highest such seq in one write for the whole prefix,
 * all with write timestamp T(g, s) = (g << 40) + 1 + s (messageTimestamp) (the head: T of the
 * seq it names); then each append the head covers is acknowledged, only if that head write
 * completed before the lease's end (SeqLeases). Readers never look above the head, and the
 * head moves only over messages that are all written, so no reader waits for a message that
 * is not there.
 *
 * Why prevSeq stays exact (every message visible to a reader names the message visible
 * right before it), also when seqs are skipped:
 *
 * - Within one ownership seqs are assigned one at a time in issue order and prevSeq is the
 *   seq assigned just before, so the owner's messages chain. A seq is only ever skipped,
 *   never reused: reserved seqs that are never written just do not appear, and nothing points
 *   at them. If a message write fails, nothing from that seq on is acknowledged (the head
 *   cannot pass it) and the lease is given up unclean once nothing is in flight.
 * - Clean handover: the old owner released with nothing in flight and nothing failed, and
 *   wrote clean_seq = its last seq in the same compare-and-set. The next owner's first prevSeq
 *   is clean_seq: exact.
 * - Takeover (crash, lost lease, failed write). The new owner has generation g' greater than
 *   every earlier one and starts at M + 1, where M = block_end is above every seq an earlier
 *   owner could write. Before its first append it recovers (CassandraLogRows.recover):
 *     a. Freeze: read the head and the direct-session heads and write the same values back at
 *        fenceTimestamp(g'). Every head write of an earlier generation that has not landed yet
 *        now loses (its timestamp is lower), so the visible head H can no longer move except
 *        by this owner. A head write of the old owner that did land first names a message
 *        whose whole chain down to the previous owner's was written before it (step 2), so
 *        the log holds every message up to H.
 *     b. Tail: read the log above H up to M. The old owner had up to pipelineMax messages in
 *        flight, so this finds some of them, perhaps with holes where a write never landed.
 *        L = the end of the chain that starts at H: the found messages whose prevSeq names
 *        the one before (H for the first), up to the first hole. Every message acknowledged
 *        by the old owner is <= H <= L: its head write completed before the lease ran out, so
 *        before this owner took the row, and quorum reads see it.
 *     c. Fence: delete (L, M] in every bucket it spans with a range tombstone at
 *        fenceTimestamp(g'). A write of an old owner that is still on its way (a paused
 *        process, a delayed request, a hint) has a lower timestamp: whenever it arrives, it is
 *        shadowed, and it was never acknowledged. Nothing in (L, M] was ever visible either:
 *        it was above the frozen head.
 *     d. Re-assert: rewrite the dedup rows of the messages in (H, L], and the head and
 *        session heads to message L, at reassertTimestamp(g') (between the fence and any
 *        message of g'). A crash between steps 1 and 2 is repaired here: the messages the
 *        clients were never told about become visible, and their retries find them as
 *        duplicates.
 *   The first append of g' then has prevSeq = L: exact, and every seq in (L, M] stays empty.
 *   If the taker itself dies during recovery, the next one repeats it with a higher
 *   generation over a range that includes this one's.
 * - A dedup row is trusted only if the message row it names exists: a fenced write may have
 *   left a dedup row behind, and the client's retry must then append anew. Two appends of one
 *   (sender, clientMsgId) in flight at once in this process never both look it up: the later
 *   one follows the first (slot.keys).
 *
 * A crashed owner leaves its conversations owned until lease + skew passes; appends through
 * other processes wait for that (bounded), then take over. No client waits forever: an append
 * either completes, or fails with StoreUnavailableError and the client retries it.
 */
export class CassandraConversationLog {
  readonly #rows: CassandraLogRows;
  readonly #leases: SeqLeases;
  readonly #clock: Clock;
  readonly #holdIdleMs: number;
  readonly #wantCheckMs: number;
  readonly #queueMax: number;
  readonly #pipelineMax: number;
  readonly #slots = new Map<string, Slot>();
  #closing = false;

  constructor(session: CassandraSession, keyspace: string, leases: SeqLeases, clock: Clock, options: ConversationLogOptions) {
    this.#rows = new CassandraLogRows(session, keyspace, options.seqsPerBucket);
    this.#leases = leases;
    this.#clock = clock;
    this.#holdIdleMs = options.holdIdleMs ?? 250;
    this.#wantCheckMs = options.wantCheckMs ?? 50;
    this.#queueMax = options.queueMax ?? 1000;
    this.#pipelineMax = options.pipelineMax ?? APPEND_PIPELINE_MAX;
    if (!(this.#pipelineMax >= 1)) throw new Error(`pipelineMax must be at least 1, got ${this.#pipelineMax}`);
  }

  /** The MessageStore.append contract: seqs and answers in issue order per conversation. */
  append(message: NewMessage): Promise<AppendResult> {
    if (this.#closing) return Promise.reject(new Error("cassandra store is closed"));
    const slot = this.#slot(message.conversationId);
    if (slot.unanswered >= this.#queueMax) {
      const error = new StoreUnavailableError(`too many appends queued for ${message.conversationId}`);
      const refused = slot.answeredTail.then(() => Promise.reject(error));
      slot.answeredTail = refused.then(noop, noop);
      return refused;
    }
    const key = `${message.senderId}\n${message.clientMsgId}`;
    const original = slot.keys.get(key);
    // Copied now: the caller may reuse its buffer while the append is in flight.
    const entry: Entry = { message: { ...message, data: message.data.slice() }, key, original, outcome: deferred(), lookup: undefined, restarts: 0 };
    if (original === undefined) slot.keys.set(key, entry);
    slot.unanswered++;
    clearTimeout(slot.idleTimer);
    slot.idleTimer = undefined;
    const done = (): void => {
      slot.unanswered--;
      if (slot.keys.get(key) === entry) slot.keys.delete(key);
      if (slot.unanswered === 0 && !slot.driving) this.#whenIdle(slot);
    };
    entry.outcome.promise.then(done, done);
    const answered = slot.answeredTail.then(() => entry.outcome.promise);
    slot.answeredTail = answered.then(noop, noop);
    slot.queue.push(entry);
    if (!slot.driving) void this.#drive(slot);
    return answered;
  }

  /** Conversations this process owns right now, a release in flight included (for tests and stats). */
  ownedCount(): number {
    let n = 0;
    for (const slot of this.#slots.values()) if (slot.pipeline !== undefined || slot.releasing !== undefined) n++;
    return n;
  }

  /** Lets issued appends finish, then releases every owned conversation cleanly. */
  async close(): Promise<void> {
    this.#closing = true;
    await Promise.all([...this.#slots.values()].map((slot) => slot.answeredTail));
    await Promise.all([...this.#slots.values()].map(async (slot) => {
      const pipeline = slot.pipeline;
      if (pipeline !== undefined) {
        await pipeline.whenIdle();
        await this.#release(slot, pipeline, "");
      }
      await slot.releasing;
    }));
  }

  #slot(id: string): Slot {
    let slot = this.#slots.get(id);
    if (slot === undefined) {
      slot = {
        id, info: undefined, pipeline: undefined, queue: [], keys: new Map(), unanswered: 0, answeredTail: Promise.resolve(),
        driving: false, releasing: undefined, idleTimer: undefined, lastWantCheckMs: 0, handoffTo: "",
      };
      this.#slots.set(id, slot);
    }
    return slot;
  }

  /**
   * Takes the slot's issued appends in order: looks them up (several at once), gives each a
   * seq from the lease and hands it to the pipeline, until none is left.
   */
  async #drive(slot: Slot): Promise<void> {
    slot.driving = true;
    try {
      while (slot.queue.length > 0) {
        const entry = slot.queue[0]!;
        if (entry.original !== undefined) {
          slot.queue.shift();
          follow(entry, entry.original);
          continue;
        }
        let pipeline: AppendPipeline;
        try {
          pipeline = await this.#pipeline(slot);
        } catch (error) {
          // No ownership (or no such conversation): every append waiting for one fails with it.
          for (const waiting of slot.queue.splice(0)) {
            if (waiting.original === undefined) waiting.outcome.reject(error);
            else follow(waiting, waiting.original);
          }
          continue;
        }
        if (pipeline.inFlight >= this.#pipelineMax) {
          await pipeline.changed();
          continue;
        }
        this.#lookAhead(slot, pipeline);
        const lookup = entry.lookup!;
        let found: StoredMessage | undefined;
        try {
          found = await lookup.result;
        } catch (error) {
          // Nothing was written for it: it fails alone.
          slot.queue.shift();
          entry.outcome.reject(error);
          continue;
        }
        // The lease changed while it looked: look again under the new one.
        if (slot.pipeline !== pipeline || !pipeline.accepting) continue;
        if (found !== undefined) {
          slot.queue.shift();
          entry.outcome.resolve({ message: found, duplicate: true });
          continue;
        }
        const lease = pipeline.lease;
        if (lease.nextSeq > lease.blockEnd || this.#leases.needsRenewal(lease)) {
          if (!(await this.#renew(slot, pipeline, lease.nextSeq)) && ++entry.restarts > RESTARTS_MAX) {
            slot.queue.shift();
            entry.outcome.reject(new StoreUnavailableError(`lost ownership of ${slot.id} repeatedly`));
          }
          continue;
        }
        slot.queue.shift();
        try {
          pipeline.append(entry.message, entry.outcome);
        } catch (error) {
          entry.outcome.reject(error);
        }
        this.#checkWant(slot, pipeline);
      }
    } finally {
      slot.driving = false;
    }
    if (slot.unanswered === 0) this.#whenIdle(slot);
  }

  /** Starts the dedup lookups of the next appends that have none under this lease. */
  #lookAhead(slot: Slot, pipeline: AppendPipeline): void {
    const end = Math.min(slot.queue.length, this.#pipelineMax - pipeline.inFlight);
    for (let i = 0; i < end; i++) {
      const entry = slot.queue[i]!;
      if (entry.original !== undefined || entry.lookup?.pipeline === pipeline) continue;
      const result = this.#rows.findDuplicate(entry.message, pipeline.lease);
      // Awaited by the driver in its turn; until then a rejection is not unhandled.
      result.catch(noop);
      entry.lookup = { pipeline, result };
    }
  }

  /**
   * The slot's live pipeline: the current one while it accepts appends and nobody asked for
   * the conversation; otherwise, once the old one is idle and released, a new lease
   * (acquired, and recovered after an unclean end).
   */
  async #pipeline(slot: Slot): Promise<AppendPipeline> {
    slot.info ??= await this.#rows.loadInfo(slot.id);
    for (;;) {
      const current = slot.pipeline;
      if (current !== undefined && current.accepting && slot.handoffTo === "") return current;
      if (current !== undefined) {
        // Failed, or asked for by another process: finish what is in flight, then let go.
        await current.whenIdle();
        await this.#release(slot, current, slot.handoffTo);
        continue;
      }
      if (slot.releasing !== undefined) {
        await slot.releasing;
        continue;
      }
      const { lease, recover } = await this.#leases.acquire(slot.id);
      slot.lastWantCheckMs = this.#clock.nowMs();
      slot.handoffTo = "";
      if (recover !== undefined) {
        try {
          await this.#rows.recover(slot.info, slot.id, lease, recover.previousBlockEnd);
        } catch (error) {
          await this.#leases.release(lease, false).catch(noop);
          throw error;
        }
      }
      const pipeline = new AppendPipeline(lease, this.#rows.writesOf(slot.info), this.#clock);
      slot.pipeline = pipeline;
      // A pipeline that failed gives its lease up as soon as nothing is in flight, whether or
      // not more appends wait, so a taker need not wait for the lease to expire.
      void pipeline.finished.then(() => this.#release(slot, pipeline, ""));
      return pipeline;
    }
  }

  /**
   * Gives up the pipeline's lease if it is still the slot's: cleanly (continuing at its last
   * seq, perhaps kept for `handoffTo`) when it never failed, unclean otherwise, not at all when
   * it was lost. Call only when the pipeline is idle.
   */
  async #release(slot: Slot, pipeline: AppendPipeline, handoffTo: string): Promise<void> {
    if (slot.pipeline === pipeline) {
      slot.pipeline = undefined;
      clearTimeout(slot.idleTimer);
      slot.idleTimer = undefined;
      slot.handoffTo = "";
      if (!pipeline.lost) {
        const clean = pipeline.accepting;
        const releasing = this.#leases.release(pipeline.lease, clean, clean ? handoffTo : "").catch(noop);
        slot.releasing = releasing;
        void releasing.then(() => {
          if (slot.releasing === releasing) slot.releasing = undefined;
        });
      }
    }
    await slot.releasing;
  }

  /** Every wantCheckMs while appending: is another process waiting for this conversation? */
  #checkWant(slot: Slot, pipeline: AppendPipeline): void {
    const now = this.#clock.nowMs();
    if (now - slot.lastWantCheckMs < this.#wantCheckMs) return;
    slot.lastWantCheckMs = now;
    this.#leases.wantedBy(slot.id).then(
      (wanted) => {
        if (wanted !== undefined && slot.pipeline === pipeline) slot.handoffTo = wanted;
      },
      noop,
    );
  }

  /** Renews (and extends the block to `seq`); false when the lease was lost and its pipeline killed. */
  async #renew(slot: Slot, pipeline: AppendPipeline, seq: number): Promise<boolean> {
    try {
      if (await this.#leases.renew(pipeline.lease, seq)) return true;
      // Someone took over after our lease ran out: nothing in flight can be acknowledged.
      pipeline.kill(new StoreUnavailableError(`lost ownership of ${slot.id}; the outcome of appends in flight is unknown`), true);
      if (slot.pipeline === pipeline) slot.pipeline = undefined;
      return false;
    } catch (error) {
      // The compare-and-set may or may not have applied: this lease's row is unknown now.
      pipeline.kill(error, false);
      return true;
    }
  }

  /** Once nothing is issued: hand over if asked, else keep the lease while idle, watching for waiters. */
  #whenIdle(slot: Slot): void {
    if (this.#closing || slot.driving || slot.unanswered > 0 || slot.idleTimer !== undefined) return;
    const pipeline = slot.pipeline;
    if (pipeline === undefined) {
      if (slot.releasing === undefined) this.#slots.delete(slot.id);
      else void slot.releasing.then(() => this.#whenIdle(slot));
      return;
    }
    const idleSince = this.#clock.nowMs();
    const busy = (): boolean => slot.unanswered > 0 || slot.driving || slot.pipeline !== pipeline || this.#closing;
    const tick = (): void => {
      slot.idleTimer = undefined;
      if (busy()) return;
      void (async () => {
        const wanted = slot.handoffTo !== "" ? slot.handoffTo : await this.#leases.wantedBy(slot.id).catch(() => undefined);
        if (busy()) return;
        if (wanted !== undefined || this.#clock.nowMs() - idleSince >= this.#holdIdleMs) {
          await pipeline.whenIdle();
          if (busy()) return;
          await this.#release(slot, pipeline, wanted ?? "");
          if (slot.unanswered === 0 && !slot.driving && slot.pipeline === undefined && this.#slots.get(slot.id) === slot) this.#slots.delete(slot.id);
          return;
        }
        slot.idleTimer = setTimeout(tick, this.#wantCheckMs);
        slot.idleTimer.unref();
      })();
    };
    slot.idleTimer = setTimeout(tick, Math.min(this.#wantCheckMs, this.#holdIdleMs));
    slot.idleTimer.unref();
  }
}

interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Answers a repeated append with its original's result, as a duplicate. */
function follow(entry: Entry, original: Entry): void {
  original.outcome.promise.then(
    (result) => entry.outcome.resolve({ message: result.message, duplicate: true }),
    (error: unknown) => entry.outcome.reject(error),
  );
}

function noop(): void {}
