import type { StoredMessage } from "../core/model.js";

/** Something delivered to a user's live connections. */
export type Push =
  | { readonly kind: "message"; readonly message: StoredMessage }
  | { readonly kind: "read"; readonly conversationId: string; readonly readSeq: number };

/** A live connection that accepts pushes. */
export interface PushTarget {
  /** Unique among the live connections of this process. */
  readonly connectionId: string;
  /** The authenticated user. */
  readonly userId: string;
  /**
   * Takes a push. Must not block or throw: a connection that cannot keep up closes itself
   * (slow-consumer disconnect) and its client repairs the loss through sync.
   */
  push(push: Push): void;
}

/**
 * Presence and delivery routing: which connections each user has, and getting pushes to them
 * wherever they are. Adapters: in-process (one gateway process), Redis (several processes and
 * nodes).
 *
 * Contract: delivery is best effort and unordered across calls that overlap; a call returns
 * once the push is handed off, before it reaches remote connections. The store is the truth;
 * clients repair anything lost through prev_seq gaps and sync. Pushes handed off in order for
 * one connection reach it in that order when nothing is lost.
 */
export interface DeliveryRouter {
  /** Registers a live connection; pushes for its user reach it until `detach`. */
  attach(target: PushTarget): void;
  /** Unregisters a connection; idempotent. */
  detach(target: PushTarget): void;
  /**
   * Delivers `push` to every live connection of every user in `userIds`, except the connection
   * `exceptConnectionId` (the one that caused it, which learns the outcome from its answer).
   */
  deliver(userIds: readonly string[], push: Push, exceptConnectionId?: string): void;
  /** Number of live connections registered through this router instance. */
  connectionCount(): number;
}
