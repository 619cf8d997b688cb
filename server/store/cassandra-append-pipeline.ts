import type { Clock } from "../core/clock.js";
import type { StoredMessage } from "../core/model.js";
import { StoreUnavailableError } from "../core/result.js";
import { messageTimestamp } from "./cassandra-rows.js";
import type { Lease } from "./cassandra-seq-lease.js";
import type { AppendResult, NewMessage } from "./message-store.js";

/** The writes of an append, as the conversation log issues them. */
export interface AppendWrites {
  /** The message row and its dedup row, at write timestamp `ts`. */
  message(stored: StoredMessage, ts: bigint): Promise<void>;
  /** The head and the direct-session heads, moved to `stored` (the body cut to the preview) at `ts`. */
  heads(stored: StoredMessage, ts: bigint): Promise<void>;
}

/** Where an append's outcome goes. */
export interface Settle {
  resolve(result: AppendResult): void;
  reject(error: unknown): void;
}

interface Assigned {
  readonly stored: StoredMessage;
  readonly settle: Settle;
  written: boolean;
  /** Its own message write failed with this. */
  failed?: { readonly error: unknown };
}

/**
 * The appends in flight under one lease of one conversation (CassandraConversationLog calls
 * `append` in issue order, one at a time). Seqs come from the lease in that order; the message
 * rows of all of them are written concurrently; the head moves only over a prefix whose
 * message rows are all written, in one write for the whole prefix (so a reader, who never
 * looks above the head, never waits for a message that is not there); an append is answered
 * once the head covers it and that head write completed before the lease's end.
 *
 * Failure: once a message write fails, no new seq is assigned; the prefix before it is still
 * answered as above, every append from it on is rejected (the failed one with its error, the
 * later ones with StoreUnavailableError: their rows may exist, but the head cannot pass the
 * hole), and `finished` resolves when nothing is in flight any more, so the lease can be given
 * up unclean. A failed head write, an answer that would come after the lease's end, or a lost
 * lease (`kill`) rejects every append in flight at once.
 */
export class AppendPipeline {
  readonly lease: Lease;
  readonly #writes: AppendWrites;
  readonly #clock: Clock;
  #pending: Assigned[] = [];
  #writing = 0;
  #headWriting = false;
  #failure: { readonly error: unknown } | undefined;
  #fatal = false;
  #lost = false;
  #waiters: Array<() => void> = [];
  readonly finished: Promise<void>;
  #finish!: () => void;

  constructor(lease: Lease, writes: AppendWrites, clock: Clock) {
    this.lease = lease;
    this.#writes = writes;
    this.#clock = clock;
    this.finished = new Promise((resolve) => {
      this.#finish = resolve;
    });
  }

  /** Whether it takes new appends: false once a write failed or the lease was lost. */
  get accepting(): boolean {
    return this.#failure === undefined;
  }

  /** The lease was taken by another process: there is nothing to release. */
  get lost(): boolean {
    return this.#lost;
  }

  /** Appends given a seq and not answered yet. */
  get inFlight(): number {
    return this.#pending.length;
  }

  /** Nothing is in flight: no append waits, no write is outstanding. */
  get idle(): boolean {
    return this.#pending.length === 0 && this.#writing === 0 && !this.#headWriting;
  }

  /**
   * Gives `message` the lease's next seq (prevSeq: the seq assigned before it) and starts its
   * writes; `settle` gets the outcome. Only while `accepting`, with the lease's block and time
   * checked by the caller.
   */
  append(message: NewMessage, settle: Settle): void {
    if (!this.accepting) throw new Error("append to a pipeline that stopped accepting");
    const lease = this.lease;
    const seq = lease.nextSeq;
    const ts = messageTimestamp(lease.generation, seq);
    const assigned: Assigned = { stored: { ...message, seq, prevSeq: lease.lastSeq }, settle, written: false };
    lease.lastSeq = seq;
    lease.nextSeq = seq + 1;
    this.#pending.push(assigned);
    this.#writing++;
    this.#writes.message(assigned.stored, ts).then(
      () => {
        assigned.written = true;
        this.#writing--;
        this.#pump();
      },
      (error: unknown) => {
        assigned.failed = { error };
        this.#failure ??= { error };
        this.#writing--;
        this.#pump();
      },
    );
  }

  /** The lease is gone (lost to a taker, or unknown after a failed renewal): rejects every append in flight. */
  kill(error: unknown, lost: boolean): void {
    this.#lost ||= lost;
    this.#failure ??= { error };
    this.#rejectAll(error);
    this.#pump();
  }

  /** Resolves at the next change: an answer given, a write completed, or the pipeline stopped. */
  changed(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Resolves once nothing is in flight. */
  async whenIdle(): Promise<void> {
    while (!this.idle) await this.changed();
  }

  #pump(): void {
    if (!this.#headWriting && !this.#fatal) {
      let k = 0;
      while (k < this.#pending.length && this.#pending[k]!.written) k++;
      if (k > 0) this.#writeHead(this.#pending[k - 1]!.stored);
    }
    if (this.#failure !== undefined && !this.#fatal && this.#writing === 0 && !this.#headWriting) {
      // The written prefix is answered; the rest cannot be: the head cannot pass the failed write.
      const rest = this.#pending;
      this.#pending = [];
      for (const a of rest) {
        a.settle.reject(
          a.failed?.error ??
            new StoreUnavailableError(`append to ${this.lease.conversationId}: an earlier append failed, so its outcome is unknown`, {
              cause: this.#failure.error,
            }),
        );
      }
    }
    if (this.#failure !== undefined && this.idle) this.#finish();
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  /** Moves the heads to `last`, then answers every append up to it. */
  #writeHead(last: StoredMessage): void {
    this.#headWriting = true;
    this.#writes.heads(last, messageTimestamp(this.lease.generation, last.seq)).then(
      () => {
        this.#headWriting = false;
        if (this.#fatal) {
          // Already answered (rejected) by a kill.
        } else if (this.#clock.nowMs() >= this.lease.leaseUntilMs) {
          this.#fatalFailure(new StoreUnavailableError(`append to ${this.lease.conversationId} outlived its lease; its outcome is unknown`));
        } else {
          let n = 0;
          while (n < this.#pending.length && this.#pending[n]!.stored.seq <= last.seq) n++;
          const answered = this.#pending.splice(0, n);
          for (const a of answered) a.settle.resolve({ message: a.stored, duplicate: false });
        }
        this.#pump();
      },
      (error: unknown) => {
        this.#headWriting = false;
        this.#fatalFailure(error);
        this.#pump();
      },
    );
  }

  #fatalFailure(error: unknown): void {
    this.#failure ??= { error };
    this.#rejectAll(error);
  }

  #rejectAll(error: unknown): void {
    this.#fatal = true;
    const all = this.#pending;
    this.#pending = [];
    for (const a of all) a.settle.reject(error);
  }
}
