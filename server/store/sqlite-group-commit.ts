import type { DatabaseSync, StatementSync } from "node:sqlite";
import { StoreUnavailableError } from "../core/result.js";

/** Bounds and hooks of `SqliteGroupCommit`. */
export interface GroupCommitOptions {
  /** Most writes one transaction commits. 1 commits every write on its own (no group commit). */
  readonly writesMax: number;
  /** Most bytes (a write's own estimate) one transaction commits; a single larger write commits alone. */
  readonly bytesMax: number;
  /** Writes waiting for a transaction; one more rejects at once with StoreUnavailableError. */
  readonly queueMax: number;
  /** Called after each COMMIT with the number of writes it answered (metrics, tests). Must not throw. */
  readonly onCommit?: ((writes: number) => void) | undefined;
  /**
   * Statements that writes defer to the end of their transaction (one head update per
   * conversation instead of one per append): `begin` forgets them (a new transaction starts),
   * `flush` issues them, outside any savepoint, before COMMIT and before every write submitted
   * as a barrier.
   */
  readonly deferred?: { begin(): void; flush(): void } | undefined;
}

/** Writes per transaction by default: a batch of 256 small appends holds the event loop for a few ms. */
export const GROUP_COMMIT_WRITES_MAX = 256;
/** Bytes per transaction by default (message bodies are at most 64 KiB each). */
export const GROUP_COMMIT_BYTES_MAX = 1024 * 1024;
/** Writes waiting for a transaction by default. */
export const GROUP_COMMIT_QUEUE_MAX = 10_000;

/** SQLite primary result codes that mean "try again": BUSY, LOCKED, IOERR, FULL. */
const TRANSIENT_CODES = new Set([5, 6, 10, 13]);

interface Job {
  readonly body: () => unknown;
  /** Deferred statements are flushed before it runs (it may read what they write). */
  readonly barrier: boolean;
  /** Set when the write already failed and only its answer is still due (see #commit). */
  readonly failed?: unknown;
  /** Set when the write runs again after another write of its batch threw (see #commit). */
  readonly rerun?: boolean;
  readonly bytes: number;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Group commit on one node:sqlite connection: writes submitted together become durable
 * together, in one BEGIN IMMEDIATE transaction and so one fsync of the WAL (synchronous=FULL),
 * and each caller is answered only after that COMMIT.
 *
 * The driver is synchronous, so "together" means: every write submitted during one turn of the
 * event loop, which includes every write whose request arrived while the previous transaction
 * held the loop (its I/O callbacks all run before the flush). The flush runs from setImmediate,
 * after the poll phase; it takes at most `writesMax` writes and `bytesMax` bytes, and leaves the
 * rest for the next turn, so other I/O runs between two transactions.
 *
 * Order: writes run in the order they were submitted, and their promises settle in that order
 * (a write rejected at once settles after every write submitted before it).
 *
 * Failures:
 * - BEGIN or COMMIT fails, or a statement fails with a transient error (busy, I/O, disk full:
 *   SQLite may then roll the whole transaction back on its own): every write of the batch
 *   rejects with StoreUnavailableError. Nothing of it is committed, or (a failed COMMIT) its
 *   outcome is unknown; the callers retry, which the port allows since its mutations are
 *   idempotent or monotonic.
 * - A write whose body throws anything else (a bug, a precondition such as "the group exists")
 *   rejects with that error alone; the others commit. The transaction is rolled back and the
 *   other writes of the batch run again first thing in the next turn, each under a savepoint
 *   (rolled back alone if it throws too), so a batch runs at most twice and the common case
 *   pays for no savepoints.
 */
export class SqliteGroupCommit {
  readonly #db: DatabaseSync;
  readonly #options: GroupCommitOptions;
  readonly #sql: Record<"begin" | "commit" | "rollback" | "savepoint" | "release" | "rollbackTo", StatementSync>;
  #queue: Job[] = [];
  #head = 0;
  /** The promise of the last submitted write: a write rejected at once settles after it. */
  #tail: Promise<unknown> = Promise.resolve();
  #scheduled = false;

  constructor(db: DatabaseSync, options: GroupCommitOptions) {
    if (!(options.writesMax >= 1 && options.bytesMax >= 1 && options.queueMax >= 1)) {
      throw new Error(`group commit bounds must be at least 1, got ${JSON.stringify(options)}`);
    }
    this.#db = db;
    this.#options = options;
    this.#sql = {
      begin: db.prepare("BEGIN IMMEDIATE"),
      commit: db.prepare("COMMIT"),
      rollback: db.prepare("ROLLBACK"),
      savepoint: db.prepare("SAVEPOINT write"),
      release: db.prepare("RELEASE write"),
      rollbackTo: db.prepare("ROLLBACK TO write"),
    };
  }

  /** Writes waiting for a transaction. */
  get queued(): number {
    return this.#queue.length - this.#head;
  }

  /**
   * Queues `body` (synchronous statements, no transaction of its own) for the next transaction;
   * resolves with its result once that transaction committed. `bytes` is its share of bytesMax.
   * A body that only defers statements of its own kind (see `deferred`) may pass
   * `barrier = false`.
   */
  submit<T>(bytes: number, body: () => T, barrier = true): Promise<T> {
    if (this.queued >= this.#options.queueMax) {
      const error = new StoreUnavailableError(`sqlite store: ${this.queued} writes are waiting for a transaction`);
      const settled = this.#tail.then(
        () => Promise.reject(error),
        () => Promise.reject(error),
      );
      this.#tail = settled;
      return settled;
    }
    const promise = new Promise<T>((resolve, reject) => {
      this.#queue.push({ body, barrier, bytes, resolve: resolve as (value: unknown) => void, reject });
    });
    this.#tail = promise;
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.#flushTurn());
    }
    return promise;
  }

  /** Commits every queued write now, batch after batch (before the connection closes). */
  drain(): void {
    while (this.queued > 0) this.#flushBatch();
  }

  #flushTurn(): void {
    this.#scheduled = false;
    if (this.queued > 0) this.#flushBatch();
    if (this.queued > 0 && !this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.#flushTurn());
    }
  }

  /** Takes the next batch off the queue and commits it. */
  #flushBatch(): void {
    const batch: Job[] = [];
    let bytes = 0;
    while (this.#head < this.#queue.length && batch.length < this.#options.writesMax) {
      const job = this.#queue[this.#head]!;
      if (batch.length > 0 && bytes + job.bytes > this.#options.bytesMax) break;
      batch.push(job);
      bytes += job.bytes;
      this.#head++;
    }
    // Compact now and then instead of shifting on every take.
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    this.#commit(batch);
  }

  #commit(batch: readonly Job[]): void {
    const sql = this.#sql;
    const deferred = this.#options.deferred;
    try {
      sql.begin.run();
    } catch (error) {
      settle(batch, () => ({ ok: false, error: mapSqliteError(error) }));
      return;
    }
    deferred?.begin();
    // Savepoints cost two statements per write, so a batch takes them only when it runs again
    // after one of its writes threw.
    const guarded = batch.some((job) => job.rerun === true);
    const outcomes: Outcome[] = [];
    for (const [i, job] of batch.entries()) {
      if (job.failed !== undefined) {
        outcomes.push({ ok: false, error: job.failed });
        continue;
      }
      if (deferred !== undefined && job.barrier && !this.#flushDeferred(batch, deferred)) return;
      try {
        if (guarded) sql.savepoint.run();
        outcomes.push({ ok: true, value: job.body() });
        if (guarded) sql.release.run();
      } catch (caught) {
        const error = mapSqliteError(caught);
        if (error instanceof StoreUnavailableError) {
          this.#rollback();
          settle(batch, () => ({ ok: false, error }));
          return;
        }
        if (guarded && this.#undoWrite()) {
          outcomes[i] = { ok: false, error };
          continue;
        }
        this.#rollback();
        if (batch.length === 1) {
          job.reject(error);
          return;
        }
        // Undo the batch and run it again first thing, with savepoints; this write then only
        // answers its error, in its turn.
        this.#requeue(batch.map((j, k) => ({ ...j, rerun: true, ...(k === i ? { failed: error } : {}) })));
        return;
      }
    }
    if (deferred !== undefined && !this.#flushDeferred(batch, deferred)) return;
    try {
      sql.commit.run();
    } catch (caught) {
      this.#rollback();
      const error = mapSqliteError(caught);
      settle(batch, () => ({ ok: false, error }));
      return;
    }
    settle(batch, (k) => outcomes[k]!);
    this.#options.onCommit?.(batch.length);
  }

  /** Issues the deferred statements; on failure rolls back and rejects the whole batch (they belong to several writes). */
  #flushDeferred(batch: readonly Job[], deferred: { flush(): void }): boolean {
    try {
      deferred.flush();
      return true;
    } catch (caught) {
      this.#rollback();
      const error = mapSqliteError(caught);
      settle(batch, () => ({ ok: false, error }));
      return false;
    }
  }

  /** Rolls the current write back to its savepoint; false when the transaction is gone or that failed. */
  #undoWrite(): boolean {
    if (!this.#db.isTransaction) return false;
    try {
      this.#sql.rollbackTo.run();
      this.#sql.release.run();
      return true;
    } catch {
      return false;
    }
  }

  #rollback(): void {
    // A failed statement or COMMIT may leave the transaction open; the first error says more.
    if (!this.#db.isTransaction) return;
    try {
      this.#sql.rollback.run();
    } catch {}
  }

  /** Puts writes back at the front of the queue, in their order. */
  #requeue(jobs: readonly Job[]): void {
    this.#queue = [...jobs, ...this.#queue.slice(this.#head)];
    this.#head = 0;
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.#flushTurn());
    }
  }
}

type Outcome = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: unknown };

/** Answers every write of a batch, in order. */
function settle(batch: readonly Job[], outcome: (index: number) => Outcome): void {
  for (const [i, job] of batch.entries()) {
    const o = outcome(i);
    if (o.ok) job.resolve(o.value);
    else job.reject(o.error);
  }
}

/** Transient failures become StoreUnavailableError; anything else is a bug and propagates. */
export function mapSqliteError(error: unknown): unknown {
  if (error instanceof StoreUnavailableError) return error;
  const errcode = (error as { errcode?: unknown } | null)?.errcode;
  if (typeof errcode === "number" && TRANSIENT_CODES.has(errcode & 0xff)) {
    return new StoreUnavailableError(`sqlite store unavailable: ${(error as Error).message}`, { cause: error });
  }
  return error;
}
