import type { ConversationRecord, SessionEntry, StoredMessage } from "../core/model.js";

/** A message to append; the store assigns `seq` and `prevSeq`. */
export interface NewMessage {
  readonly conversationId: string;
  readonly senderId: string;
  readonly clientMsgId: string;
  readonly messageId: string;
  readonly sentAtMs: number;
  readonly contentType: string;
  readonly data: Uint8Array;
}

/** What `append` did. */
export interface AppendResult {
  /** The stored message: the new one, or the original one for a repeated clientMsgId. */
  readonly message: StoredMessage;
  /** True when the clientMsgId had been appended before and nothing was written. */
  readonly duplicate: boolean;
}

/** A new group. */
export interface NewGroup {
  readonly id: string;
  readonly title: string;
  readonly ownerId: string;
  readonly createdAtMs: number;
}

/** The outcome of a membership change. */
export interface MembershipChange {
  /** Users whose membership actually changed (added, or removed). */
  readonly changed: number;
  /** The member count afterwards. */
  readonly memberCount: number;
}

/**
 * The storage port of the read-diffusion design. Each conversation is an append-only log;
 * a group keeps one group-session record (its head); a direct conversation also keeps one
 * session-list entry per participant. Adapters: memory (tests, simulator), SQLite (embedded
 * default), Cassandra (scale). All run the contract suite in test/server/store/.
 *
 * Contract:
 * - Durability: once a returned promise resolves, the effect survives a restart of the
 *   process (adapters that keep memory only say so). Adapters may make concurrent writes
 *   durable together (group commit), but answer each only once its own effect is durable.
 * - Errors: a transient failure rejects with StoreUnavailableError, and the effect may or may
 *   not have been applied; every mutation here is idempotent or monotonic, so repeating it is
 *   safe. Anything else that rejects is a bug.
 * - Bounds: every read takes a limit; none returns more than asked for.
 */
export interface MessageStore {
  /**
   * Creates the direct conversation `conversationId` between `userA` and `userB` (two
   * members, empty log) unless it exists; returns it either way. Idempotent.
   */
  ensureDirect(conversationId: string, userA: string, userB: string, nowMs: number): Promise<ConversationRecord>;

  /** Creates a group with the owner and `memberIds` as members. The id must be new. */
  createGroup(group: NewGroup, memberIds: readonly string[]): Promise<ConversationRecord>;

  /** The conversation with its head, or undefined when it does not exist. */
  getConversation(conversationId: string): Promise<ConversationRecord | undefined>;

  /** Whether `userId` is a member of the conversation (false when it does not exist). */
  isMember(conversationId: string, userId: string): Promise<boolean>;

  /**
   * Adds members to a group; existing members are left alone. Refuses the whole change,
   * returning "limit", when the member count would exceed `membersMax`.
   */
  addMembers(conversationId: string, userIds: readonly string[], membersMax: number, nowMs: number): Promise<MembershipChange | "limit">;

  /** Removes members from a group; non-members are ignored. */
  removeMembers(conversationId: string, userIds: readonly string[]): Promise<MembershipChange>;

  /** Up to `limit` member ids greater than `afterUserId` ("" for the first page), ascending. */
  listMembers(conversationId: string, afterUserId: string, limit: number): Promise<string[]>;

  /**
   * Appends to the conversation log, which must exist. Assigns the next seq of the
   * conversation (strictly greater than every seq before) and sets prevSeq to the seq of the
   * message before it. Updates the head (lastSeq, lastMessage cut to a preview) and, for a
   * direct conversation, both participants' session entries; nothing is written per member of
   * a group. Appending a (conversationId, senderId, clientMsgId) that was appended before
   * returns the first result with `duplicate: true` and writes nothing; so does one issued
   * while the first is still in flight. Appends to one conversation are linearizable: no two
   * messages share a seq and prevSeq links are exact.
   *
   * Issue order: appends issued through one store instance to one conversation get seqs in
   * the order they were issued (the call order of `append`, not of their completion), and
   * their promises settle (resolve or reject) in that order. So a single writer of a
   * conversation may issue many appends without waiting, and publish each result as its
   * promise resolves: the publications leave in seq order. An append that fails for a reason
   * of its own (a bug, a missing conversation) does not fail the appends issued with it that
   * can commit.
   */
  append(message: NewMessage): Promise<AppendResult>;

  /**
   * Up to `limit` messages of the conversation with afterSeq < seq <= upToSeq (no upper bound
   * when `upToSeq` is undefined), in ascending seq order.
   */
  readRange(conversationId: string, afterSeq: number, upToSeq: number | undefined, limit: number): Promise<StoredMessage[]>;

  /**
   * The user's session list: the user's direct sessions merged with the group records of
   * the groups it belongs to, with its read positions; most recently active first
   * (compareSessions), at most `limit` entries.
   */
  listSessions(userId: string, limit: number): Promise<SessionEntry[]>;

  /**
   * Up to `limit` ids of the groups `userId` is a member of, in no particular order: what a
   * process's hub indexes when the user's first connection attaches, without reading the
   * groups' records.
   */
  listGroups(userId: string, limit: number): Promise<string[]>;

  /**
   * Moves the user's read position in a conversation to max(current, readSeq) and returns the
   * result. The caller checks membership and bounds.
   */
  markRead(userId: string, conversationId: string, readSeq: number): Promise<number>;

  /** Releases resources; later calls fail. */
  close(): Promise<void>;
}
