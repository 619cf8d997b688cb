import type { MessageStore } from "../store/message-store.js";
import type { Clock } from "./clock.js";
import { directConversationId, isUserId, parseConversationId } from "./conversation-id.js";
import type { EventSink } from "./events.js";
import { clampPage, type Limits } from "./limits.js";
import type { MessageIdGenerator } from "./message-id.js";
import type { RateLimits } from "./rate-limits.js";
import { compareSessions, type ConversationRecord, type SessionEntry, type StoredMessage } from "./model.js";
import { fail, ok, type Failure, type Result } from "./result.js";

/** Where a message goes: an existing conversation, or the direct conversation with a user. */
export type SendTarget = { readonly conversationId: string } | { readonly toUserId: string };

/** A send as the core sees it (already decoded and validated against the proto rules). */
export interface SendCommand {
  readonly target: SendTarget;
  readonly clientMsgId: string;
  readonly contentType: string;
  readonly data: Uint8Array;
}

/** The outcome of a send: the stored message (the original one for a repeated clientMsgId). */
export interface SendOutcome {
  readonly message: StoredMessage;
  readonly duplicate: boolean;
}

/** A client's position in one conversation, as sent in a sync request. */
export interface Cursor {
  readonly conversationId: string;
  readonly lastSeq: number;
  readonly readSeq: number;
}

/** A sync request. Zero limits mean the server's defaults. */
export interface SyncCommand {
  readonly cursors: readonly Cursor[];
  readonly maxMessagesPerConversation: number;
  readonly maxSessions: number;
}

/** One changed session with the messages after the client's cursor. */
export interface SessionUpdate {
  readonly session: SessionEntry;
  readonly messages: StoredMessage[];
  readonly hasMoreMessages: boolean;
}

/** The answer to a sync. */
export interface SyncOutcome {
  readonly sessions: SessionUpdate[];
  readonly removedConversationIds: string[];
  readonly hasMoreSessions: boolean;
}

/**
 * A seq as a client sent it (uint64 on the wire): a number when it is a safe integer, else the
 * exact bigint. The core never assigns a seq above 2^53 - 1, so a bigint always lies beyond the
 * head; it stays exact so that the refusal quotes what the client sent.
 */
export type RequestedSeq = number | bigint;

/** A range fetch: messages with afterSeq < seq <= upToSeq (0: to the newest). */
export interface FetchCommand {
  readonly conversationId: string;
  readonly afterSeq: RequestedSeq;
  readonly upToSeq: RequestedSeq;
  readonly limit: number;
}

/** The answer to a range fetch. */
export interface FetchOutcome {
  readonly messages: StoredMessage[];
  readonly lastSeq: number;
  readonly hasMore: boolean;
}

/** A page of a list and the token for the next one ("" when it is the last). */
export interface Page<T> {
  readonly items: T[];
  readonly nextPageToken: string;
}

/** What the core needs from its surroundings. */
export interface MessagingDeps {
  readonly store: MessageStore;
  /** Where stored events go to reach devices. */
  readonly events: EventSink;
  readonly clock: Clock;
  readonly ids: MessageIdGenerator;
  readonly limits: Limits;
  /**
   * Per-user and per-connection rate limits: group creation is checked here, sends by
   * `admitSend` where the request arrives (the owner that appends may be another process,
   * which must not count the send again). None when absent.
   */
  readonly rateLimits?: RateLimits;
}

/**
 * The messaging domain: sends, sync, gap repair, read positions and groups, over a
 * MessageStore and an EventSink. Pure: no I/O of its own, no timers, no global time or
 * randomness, so the simulator runs it on virtual time.
 *
 * Every method takes the authenticated user id; membership is checked here, so no caller can
 * read or write a conversation it does not belong to. Store failures propagate as rejections
 * (StoreUnavailableError: retryable); expected refusals come back as Failure results.
 */
export class Messaging {
  readonly #deps: MessagingDeps;

  constructor(deps: MessagingDeps) {
    this.#deps = deps;
  }

  /**
   * Appends a message and hands it to the EventSink for every live connection of every
   * member, the sender's other connections included (not `originConnectionId`, which gets the
   * result instead). Appends of one conversation issued here resolve in seq order (the store's
   * contract), and each is handed over as it resolves, so the events leave in seq order.
   */
  async send(userId: string, command: SendCommand, originConnectionId?: string): Promise<Result<SendOutcome>> {
    const { store, limits, clock, ids } = this.#deps;
    if (command.data.byteLength > limits.bodyBytesMax) {
      return fail("body_too_large", `message body is ${command.data.byteLength} bytes; the limit is ${limits.bodyBytesMax}`);
    }
    const resolved = await this.#resolveSendTarget(userId, command.target);
    if (!resolved.ok) return resolved;
    const conversation = resolved.value;
    const result = await store.append({
      conversationId: conversation.id,
      senderId: userId,
      clientMsgId: command.clientMsgId,
      messageId: ids.next(),
      sentAtMs: clock.nowMs(),
      contentType: command.contentType,
      data: command.data,
    });
    if (!result.duplicate) this.#deps.events.messageAppended(conversation, result.message, originConnectionId);
    return ok(result);
  }

  /**
   * Whether a send of `bytes` body bytes by `userId` (on long connection `connectionId`, if
   * any) is within the rate limits; a `rate_limited` Failure with the wait otherwise. Counts
   * the send when it is admitted. Called once per request, where it arrives, before it goes to
   * the conversation's owner.
   */
  admitSend(userId: string, connectionId: string | undefined, bytes: number): Failure | undefined {
    return this.#deps.rateLimits?.send(userId, connectionId, bytes);
  }

  /** Returns the sessions that are new or changed relative to `cursors`, with new messages. */
  async sync(userId: string, command: SyncCommand): Promise<Result<SyncOutcome>> {
    const { store, limits } = this.#deps;
    const perConversation = clampPage(command.maxMessagesPerConversation, limits.syncMessagesDefault, limits.syncMessagesMax);
    const sessionsMax = clampPage(command.maxSessions, limits.syncSessionsDefault, limits.syncSessionsMax);
    const sessions = await store.listSessions(userId, limits.sessionsScanMax);
    const cursors = new Map<string, Cursor>();
    for (const cursor of command.cursors) cursors.set(cursor.conversationId, cursor);

    const changed: SessionEntry[] = [];
    for (const session of sessions) {
      const cursor = cursors.get(session.conversationId);
      // A cursor beyond the head means the client holds something the server does not
      // (a bug, or a store restored from an older backup): tell it the truth.
      if (cursor === undefined || cursor.lastSeq !== session.lastSeq || cursor.readSeq !== session.readSeq) {
        changed.push(session);
      }
    }
    // Sessions beyond the scan bound are unknown, not removed.
    const removedConversationIds: string[] = [];
    if (sessions.length < limits.sessionsScanMax) {
      const known = new Set(sessions.map((s) => s.conversationId));
      for (const id of cursors.keys()) if (!known.has(id)) removedConversationIds.push(id);
    }

    const page = changed.slice(0, sessionsMax);
    const updates = await Promise.all(
      page.map(async (session): Promise<SessionUpdate> => {
        const after = cursors.get(session.conversationId)?.lastSeq ?? 0;
        if (after >= session.lastSeq) return { session, messages: [], hasMoreMessages: false };
        const messages = await store.readRange(session.conversationId, after, undefined, perConversation + 1);
        const hasMoreMessages = messages.length > perConversation;
        if (hasMoreMessages) messages.length = perConversation;
        return { session, messages, hasMoreMessages };
      }),
    );
    return ok({ sessions: updates, removedConversationIds, hasMoreSessions: changed.length > sessionsMax });
  }

  /** Messages of one conversation in (afterSeq, upToSeq], for gap repair and history. */
  async fetchRange(userId: string, command: FetchCommand): Promise<Result<FetchOutcome>> {
    const { store, limits } = this.#deps;
    const conversation = await this.#memberConversation(userId, command.conversationId);
    if (!conversation.ok) return conversation;
    const { lastSeq } = conversation.value;
    // Comparisons of a bigint with a number are exact in JavaScript, so a seq beyond 2^53 is
    // refused as precisely as a small one.
    const { afterSeq, upToSeq } = command;
    if (upToSeq > 0 && upToSeq < afterSeq) {
      return fail("invalid_argument", `up_to_seq ${upToSeq} is below after_seq ${afterSeq}`);
    }
    const highest = upToSeq > afterSeq ? upToSeq : afterSeq;
    if (highest > lastSeq) {
      return fail("out_of_range", `seq ${highest} is beyond the conversation's last seq ${lastSeq}`);
    }
    const limit = clampPage(command.limit, limits.fetchDefault, limits.fetchMax);
    // Both are at most lastSeq now, so safe integers.
    const upTo = upToSeq > 0 ? Number(upToSeq) : undefined;
    const messages = await store.readRange(command.conversationId, Number(afterSeq), upTo, limit + 1);
    const hasMore = messages.length > limit;
    if (hasMore) messages.length = limit;
    return ok({ messages, lastSeq, hasMore });
  }

  /**
   * Moves the user's read position forward and tells the user's other connections. Returns
   * the effective position (read positions never move back).
   */
  async markRead(userId: string, conversationId: string, readSeq: RequestedSeq, originConnectionId?: string): Promise<Result<number>> {
    const conversation = await this.#memberConversation(userId, conversationId);
    if (!conversation.ok) return conversation;
    if (readSeq > conversation.value.lastSeq) {
      return fail("out_of_range", `read_seq ${readSeq} is beyond the conversation's last seq ${conversation.value.lastSeq}`);
    }
    const effective = await this.#deps.store.markRead(userId, conversationId, Number(readSeq));
    this.#deps.events.readMoved(userId, conversationId, effective, originConnectionId);
    return ok(effective);
  }

  /** Creates a group owned by `userId` with it and `memberIds` as members. */
  async createGroup(userId: string, title: string, memberIds: readonly string[]): Promise<Result<ConversationRecord>> {
    const { store, limits, clock, ids } = this.#deps;
    const members = [...new Set([userId, ...memberIds])];
    const invalid = members.find((m) => !isUserId(m));
    if (invalid !== undefined) return fail("invalid_argument", `invalid user id ${JSON.stringify(invalid)}`);
    if (members.length > limits.groupMembersMax) {
      return fail("limit_exceeded", `a group holds at most ${limits.groupMembersMax} members`);
    }
    const limited = this.#deps.rateLimits?.createGroup(userId);
    if (limited !== undefined) return limited;
    const record = await store.createGroup({ id: `g:${ids.next()}`, title, ownerId: userId, createdAtMs: clock.nowMs() }, members);
    this.#deps.events.membersChanged(record, members, []);
    return ok(record);
  }

  /** Adds users to a group; the caller must be a member. */
  async addMembers(userId: string, conversationId: string, userIds: readonly string[]): Promise<Result<{ added: number; memberCount: number }>> {
    const group = await this.#memberGroup(userId, conversationId);
    if (!group.ok) return group;
    const invalid = userIds.find((m) => !isUserId(m));
    if (invalid !== undefined) return fail("invalid_argument", `invalid user id ${JSON.stringify(invalid)}`);
    const { store, limits, clock } = this.#deps;
    const wanted = [...new Set(userIds)];
    const change = await store.addMembers(conversationId, wanted, limits.groupMembersMax, clock.nowMs());
    if (change === "limit") return fail("limit_exceeded", `a group holds at most ${limits.groupMembersMax} members`);
    this.#deps.events.membersChanged({ ...group.value, memberCount: change.memberCount }, wanted, []);
    return ok({ added: change.changed, memberCount: change.memberCount });
  }

  /** Removes users from a group: the owner may remove anyone, a member only itself. */
  async removeMembers(userId: string, conversationId: string, userIds: readonly string[]): Promise<Result<{ removed: number; memberCount: number }>> {
    const group = await this.#memberGroup(userId, conversationId);
    if (!group.ok) return group;
    if (group.value.ownerId !== userId && userIds.some((id) => id !== userId)) {
      return fail("permission_denied", "only the group's owner may remove other members");
    }
    const unwanted = [...new Set(userIds)];
    const change = await this.#deps.store.removeMembers(conversationId, unwanted);
    this.#deps.events.membersChanged({ ...group.value, memberCount: change.memberCount }, [], unwanted);
    return ok({ removed: change.changed, memberCount: change.memberCount });
  }

  /** A page of a conversation's members, ascending; the caller must be a member. */
  async listMembers(userId: string, conversationId: string, pageSize: number, pageToken: string): Promise<Result<Page<string>>> {
    const conversation = await this.#memberConversation(userId, conversationId);
    if (!conversation.ok) return conversation;
    if (pageToken !== "" && !isUserId(pageToken)) return fail("invalid_argument", "page_token is not one this server issued");
    const { limits, store } = this.#deps;
    const size = clampPage(pageSize, limits.pageDefault, limits.pageMax);
    const items = await store.listMembers(conversationId, pageToken, size + 1);
    const more = items.length > size;
    if (more) items.length = size;
    return ok({ items, nextPageToken: more ? items[items.length - 1]! : "" });
  }

  /** A page of the user's session list, most recently active first. */
  async listConversations(userId: string, pageSize: number, pageToken: string): Promise<Result<Page<SessionEntry>>> {
    const { limits, store } = this.#deps;
    const size = clampPage(pageSize, limits.pageDefault, limits.pageMax);
    const after = decodeSessionToken(pageToken);
    if (after === undefined) return fail("invalid_argument", "page_token is not one this server issued");
    const sessions = await store.listSessions(userId, limits.sessionsScanMax);
    const start = after === null ? 0 : sessions.findIndex((s) => compareSessions(s, after) > 0);
    const items = start < 0 ? [] : sessions.slice(start, start + size);
    const last = items[items.length - 1];
    const more = start >= 0 && start + size < sessions.length && last !== undefined;
    return ok({ items, nextPageToken: more ? `${last.updatedAtMs}.${last.conversationId}` : "" });
  }

  /** The ids of the groups `userId` belongs to (at most the session scan bound), for the hub's index. */
  async groupsOf(userId: string): Promise<string[]> {
    const { store, limits } = this.#deps;
    return store.listGroups(userId, limits.sessionsScanMax);
  }

  async #resolveSendTarget(userId: string, target: SendTarget): Promise<Result<ConversationRecord>> {
    const { store, clock } = this.#deps;
    let conversationId: string;
    if ("toUserId" in target) {
      if (!isUserId(target.toUserId)) return fail("invalid_argument", `invalid user id ${JSON.stringify(target.toUserId)}`);
      if (target.toUserId === userId) return fail("invalid_argument", "cannot start a direct conversation with yourself");
      conversationId = directConversationId(userId, target.toUserId);
    } else {
      conversationId = target.conversationId;
    }
    const parsed = parseConversationId(conversationId);
    if (parsed === undefined) return fail("invalid_argument", `invalid conversation id ${JSON.stringify(conversationId)}`);
    if (parsed.kind === "direct") {
      if (userId !== parsed.userA && userId !== parsed.userB) return notMember(conversationId);
      const existing = await store.getConversation(conversationId);
      return ok(existing ?? (await store.ensureDirect(conversationId, parsed.userA, parsed.userB, clock.nowMs())));
    }
    return this.#memberConversation(userId, conversationId);
  }

  /**
   * The conversation, if `userId` is a member. A direct id names its two participants, and
   * anyone can build one: a caller who is neither gets NOT_MEMBER before the store is asked, so
   * the answer is the same whether the two ever talked. Group ids are random, so an unknown
   * group is NOT_FOUND.
   */
  async #memberConversation(userId: string, conversationId: string): Promise<Result<ConversationRecord>> {
    const { store } = this.#deps;
    const parsed = parseConversationId(conversationId);
    if (parsed?.kind === "direct" && userId !== parsed.userA && userId !== parsed.userB) return notMember(conversationId);
    const conversation = await store.getConversation(conversationId);
    if (conversation === undefined) {
      return fail("conversation_not_found", `conversation ${JSON.stringify(conversationId)} does not exist`);
    }
    if (!(await store.isMember(conversationId, userId))) return notMember(conversationId);
    return ok(conversation);
  }

  /** The group, if `userId` is a member; a direct conversation's members never change. */
  async #memberGroup(userId: string, conversationId: string): Promise<Result<ConversationRecord>> {
    if (parseConversationId(conversationId)?.kind === "direct") {
      return fail(
        "failed_precondition",
        `conversation ${JSON.stringify(conversationId)} is a direct conversation: its members are its two participants; members are added to and removed from groups only`,
      );
    }
    return this.#memberConversation(userId, conversationId);
  }
}

function notMember(conversationId: string): Failure {
  return fail("not_member", `you are not a member of conversation ${JSON.stringify(conversationId)}`);
}

/** null: first page; undefined: not a token this server issued. */
function decodeSessionToken(token: string): SessionEntry | null | undefined {
  if (token === "") return null;
  const dot = token.indexOf(".");
  const updatedAtMs = Number(token.slice(0, dot));
  const conversationId = token.slice(dot + 1);
  if (dot <= 0 || !Number.isSafeInteger(updatedAtMs) || parseConversationId(conversationId) === undefined) return undefined;
  return { conversationId, updatedAtMs, kind: "group", lastSeq: 0, lastMessage: undefined, readSeq: 0, peerUserId: "", title: "" };
}
