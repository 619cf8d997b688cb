import type { CallRecord } from "../core/call-model.js";
import type { LiveRoomRecord } from "../core/live-room.js";

/** What `create` did. */
export type CreateCallOutcome =
  | { readonly kind: "created" }
  /** The caller's client_call_id started (or answered, on glare) this call before; nothing was written. */
  | { readonly kind: "duplicate"; readonly call: CallRecord }
  /** These users hold a slot in another call (user id -> call id); nothing was written. */
  | { readonly kind: "busy"; readonly busy: ReadonlyMap<string, string> };

/**
 * Call state shared by every worker and node: calls, their idempotency keys, each user's one
 * call slot (busy), a deadline index, and live rooms. Adapters: memory (one process: tests,
 * simulator), SQLite (the embedded default, one file shared by the workers of a node) and
 * Redis (several nodes). All run the contract suite in test/server/store/.
 *
 * Contract:
 * - Calls change only by compare-and-set on `version` (`update`): of two writers of one
 *   version exactly one succeeds, so every transition is applied once.
 * - A user holds at most one call slot. `create` claims the slots of `slotUsers` all at once
 *   or none (reporting who is busy); `update` frees the `released` users' slots that point
 *   to the call. Slot, record and index change in one atomic step.
 * - `claimDue` hands each call whose `deadlineMs` passed to exactly one claimer until its
 *   lease runs out (a claimer that died is replaced after the lease); an `update` ends the
 *   claim. Deadlines are data in the record: whichever worker ticks, fires them.
 * - Nothing of a signal is stored: records hold counters only, never SDP or addresses.
 * - Errors: a transient failure rejects with StoreUnavailableError and the write may or may
 *   not have happened; callers re-read and retry.
 */
export interface CallStore {
  /** The call, or undefined when unknown (never created, or purged). */
  get(callId: string): Promise<CallRecord | undefined>;

  /** The call that (callerId, clientCallId) started or answered, if any. */
  findByClientCallId(callerId: string, clientCallId: string): Promise<CallRecord | undefined>;

  /** The id of the call whose slot `userId` holds, if any. */
  callOf(userId: string): Promise<string | undefined>;

  /**
   * Creates the call (version 1) and its idempotency key (callerId, clientCallId), and claims
   * the slot of every user in `slotUsers`, atomically. Writes nothing and reports why when
   * the key exists ("duplicate") or any of the users holds a slot ("busy").
   */
  create(call: CallRecord, slotUsers: readonly string[]): Promise<CreateCallOutcome>;

  /**
   * Records that (callerId, clientCallId) answered `callId` (glare); returns the call id the
   * key names afterwards (the earlier one when it existed).
   */
  alias(callerId: string, clientCallId: string, callId: string): Promise<string>;

  /**
   * Replaces the call when its stored version is `expectedVersion` (the new record has a
   * higher one), frees the slots of `released` that point to it, re-indexes its deadline and
   * ends any claim on it. False, writing nothing, when the version differs or it is gone.
   */
  update(call: CallRecord, expectedVersion: number, released: readonly string[]): Promise<boolean>;

  /**
   * Up to `limit` calls with deadlineMs <= nowMs that nobody holds a live claim on, now
   * claimed by `claimerId` for `leaseMs`, earliest deadline first.
   */
  claimDue(nowMs: number, limit: number, claimerId: string, leaseMs: number): Promise<CallRecord[]>;

  /** Purges a call at `expectedVersion` with its keys and slots; false when it changed or is gone. */
  delete(callId: string, expectedVersion: number): Promise<boolean>;

  /** A live room, or undefined. */
  getRoom(roomId: string): Promise<LiveRoomRecord | undefined>;

  /**
   * Writes a live room when its stored version is `expectedVersion` (0: it must not exist).
   * False, writing nothing, otherwise.
   */
  putRoom(room: LiveRoomRecord, expectedVersion: number): Promise<boolean>;

  /** Removes a live room; idempotent. */
  deleteRoom(roomId: string): Promise<void>;

  /** Releases resources; later calls fail. */
  close(): Promise<void>;
}

/** Stands for "no deadline" (Infinity) in stores that index integers. */
export const NO_DEADLINE_MS = 9e15;

/** A call record as JSON text (stores keep it opaque beside their own index columns). */
export function serializeCall(call: CallRecord): string {
  return JSON.stringify({ ...call, deadlineMs: indexedDeadline(call) });
}

/** The inverse of serializeCall. */
export function parseCall(text: string): CallRecord {
  const call = JSON.parse(text) as CallRecord;
  return call.deadlineMs >= NO_DEADLINE_MS ? { ...call, deadlineMs: Infinity } : call;
}

/** The call's deadline as a finite number for an index. */
export function indexedDeadline(call: CallRecord): number {
  return Number.isFinite(call.deadlineMs) ? call.deadlineMs : NO_DEADLINE_MS;
}
