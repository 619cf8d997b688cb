import { compareSessions, toPreview, type ConversationRecord, type SessionEntry, type StoredMessage } from "../core/model.js";
import type { AppendResult, MembershipChange, MessageStore, NewGroup, NewMessage } from "./message-store.js";

interface Log {
  record: ConversationRecord;
  readonly messages: StoredMessage[];
  readonly members: Set<string>;
  /** `${senderId}\n${clientMsgId}` -> index into messages. */
  readonly dedup: Map<string, number>;
}

/** A direct session entry as stored per participant (read diffusion: one per user). */
interface DirectSession {
  readonly conversationId: string;
  readonly peerUserId: string;
  lastSeq: number;
  lastMessage: StoredMessage | undefined;
  readSeq: number;
  updatedAtMs: number;
}

/**
 * Keeps everything in memory: for tests and the simulator. Not durable: a restart loses it
 * (the contract's durability clause does not apply). Operations complete synchronously and
 * resolve in call order, so a simulation that uses it is deterministic.
 */
export class MemoryMessageStore implements MessageStore {
  readonly #logs = new Map<string, Log>();
  /** userId -> conversationId -> direct session. */
  readonly #directSessions = new Map<string, Map<string, DirectSession>>();
  /** userId -> groups it belongs to. */
  readonly #groupsOf = new Map<string, Set<string>>();
  /** userId -> conversationId -> read seq, for groups. */
  readonly #groupReads = new Map<string, Map<string, number>>();
  #closed = false;

  async ensureDirect(conversationId: string, userA: string, userB: string, nowMs: number): Promise<ConversationRecord> {
    this.#open();
    const existing = this.#logs.get(conversationId);
    if (existing !== undefined) return existing.record;
    const record: ConversationRecord = {
      id: conversationId,
      kind: "direct",
      title: "",
      ownerId: "",
      memberCount: 2,
      lastSeq: 0,
      lastMessage: undefined,
      createdAtMs: nowMs,
    };
    this.#logs.set(conversationId, { record, messages: [], members: new Set([userA, userB]), dedup: new Map() });
    for (const [user, peer] of [[userA, userB], [userB, userA]] as const) {
      mapOf(this.#directSessions, user).set(conversationId, {
        conversationId,
        peerUserId: peer,
        lastSeq: 0,
        lastMessage: undefined,
        readSeq: 0,
        updatedAtMs: nowMs,
      });
    }
    return record;
  }

  async createGroup(group: NewGroup, memberIds: readonly string[]): Promise<ConversationRecord> {
    this.#open();
    if (this.#logs.has(group.id)) throw new Error(`conversation ${group.id} exists`);
    const members = new Set([group.ownerId, ...memberIds]);
    const record: ConversationRecord = {
      id: group.id,
      kind: "group",
      title: group.title,
      ownerId: group.ownerId,
      memberCount: members.size,
      lastSeq: 0,
      lastMessage: undefined,
      createdAtMs: group.createdAtMs,
    };
    this.#logs.set(group.id, { record, messages: [], members, dedup: new Map() });
    for (const member of members) setOf(this.#groupsOf, member).add(group.id);
    return record;
  }

  async getConversation(conversationId: string): Promise<ConversationRecord | undefined> {
    this.#open();
    return this.#logs.get(conversationId)?.record;
  }

  async isMember(conversationId: string, userId: string): Promise<boolean> {
    this.#open();
    return this.#logs.get(conversationId)?.members.has(userId) ?? false;
  }

  async addMembers(conversationId: string, userIds: readonly string[], membersMax: number): Promise<MembershipChange | "limit"> {
    const log = this.#group(conversationId);
    const fresh = [...new Set(userIds)].filter((u) => !log.members.has(u));
    if (log.members.size + fresh.length > membersMax) return "limit";
    for (const user of fresh) {
      log.members.add(user);
      setOf(this.#groupsOf, user).add(conversationId);
    }
    log.record = { ...log.record, memberCount: log.members.size };
    return { changed: fresh.length, memberCount: log.members.size };
  }

  async removeMembers(conversationId: string, userIds: readonly string[]): Promise<MembershipChange> {
    const log = this.#group(conversationId);
    let changed = 0;
    for (const user of new Set(userIds)) {
      if (!log.members.delete(user)) continue;
      changed++;
      this.#groupsOf.get(user)?.delete(conversationId);
      this.#groupReads.get(user)?.delete(conversationId);
    }
    log.record = { ...log.record, memberCount: log.members.size };
    return { changed, memberCount: log.members.size };
  }

  async listMembers(conversationId: string, afterUserId: string, limit: number): Promise<string[]> {
    this.#open();
    const log = this.#logs.get(conversationId);
    if (log === undefined) return [];
    // Sorting per call is O(n log n); fine for tests and the simulator's group sizes, where
    // fan-out reads whole member lists in batches.
    const sorted = [...log.members].sort();
    const start = afterUserId === "" ? 0 : upperBound(sorted, afterUserId);
    return sorted.slice(start, start + limit);
  }

  async append(message: NewMessage): Promise<AppendResult> {
    this.#open();
    const log = this.#logs.get(message.conversationId);
    if (log === undefined) throw new Error(`append to missing conversation ${message.conversationId}`);
    const key = `${message.senderId}\n${message.clientMsgId}`;
    const seen = log.dedup.get(key);
    if (seen !== undefined) return { message: log.messages[seen]!, duplicate: true };
    const prevSeq = log.record.lastSeq;
    const stored: StoredMessage = { ...message, data: message.data.slice(), seq: prevSeq + 1, prevSeq };
    log.dedup.set(key, log.messages.length);
    log.messages.push(stored);
    const preview = toPreview(stored);
    log.record = { ...log.record, lastSeq: stored.seq, lastMessage: preview };
    if (log.record.kind === "direct") {
      for (const member of log.members) {
        const session = this.#directSessions.get(member)?.get(message.conversationId);
        if (session === undefined) continue;
        session.lastSeq = stored.seq;
        session.lastMessage = preview;
        session.updatedAtMs = Math.max(session.updatedAtMs, stored.sentAtMs);
      }
    }
    return { message: stored, duplicate: false };
  }

  async readRange(conversationId: string, afterSeq: number, upToSeq: number | undefined, limit: number): Promise<StoredMessage[]> {
    this.#open();
    const log = this.#logs.get(conversationId);
    if (log === undefined) return [];
    const out: StoredMessage[] = [];
    // Seqs here are contiguous from 1, so the index of seq s is s - 1.
    for (let i = Math.max(0, afterSeq); i < log.messages.length && out.length < limit; i++) {
      const m = log.messages[i]!;
      if (upToSeq !== undefined && m.seq > upToSeq) break;
      out.push(m);
    }
    return out;
  }

  async listGroups(userId: string, limit: number): Promise<string[]> {
    this.#open();
    return [...(this.#groupsOf.get(userId) ?? [])].slice(0, Math.max(0, limit));
  }

  async listSessions(userId: string, limit: number): Promise<SessionEntry[]> {
    this.#open();
    const out: SessionEntry[] = [];
    for (const s of this.#directSessions.get(userId)?.values() ?? []) {
      out.push({ ...s, kind: "direct", title: "" });
    }
    const reads = this.#groupReads.get(userId);
    for (const id of this.#groupsOf.get(userId) ?? []) {
      const r = this.#logs.get(id)!.record;
      out.push({
        conversationId: id,
        kind: "group",
        lastSeq: r.lastSeq,
        lastMessage: r.lastMessage,
        readSeq: reads?.get(id) ?? 0,
        peerUserId: "",
        title: r.title,
        updatedAtMs: Math.max(r.createdAtMs, r.lastMessage?.sentAtMs ?? 0),
      });
    }
    out.sort(compareSessions);
    return out.slice(0, limit);
  }

  async markRead(userId: string, conversationId: string, readSeq: number): Promise<number> {
    this.#open();
    const direct = this.#directSessions.get(userId)?.get(conversationId);
    if (direct !== undefined) {
      direct.readSeq = Math.max(direct.readSeq, readSeq);
      return direct.readSeq;
    }
    const reads = mapOf(this.#groupReads, userId);
    const next = Math.max(reads.get(conversationId) ?? 0, readSeq);
    reads.set(conversationId, next);
    return next;
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  #open(): void {
    if (this.#closed) throw new Error("store is closed");
  }

  #group(conversationId: string): Log {
    this.#open();
    const log = this.#logs.get(conversationId);
    if (log === undefined || log.record.kind !== "group") throw new Error(`no group ${conversationId}`);
    return log;
  }
}

function mapOf<K, V>(outer: Map<string, Map<K, V>>, key: string): Map<K, V> {
  let inner = outer.get(key);
  if (inner === undefined) {
    inner = new Map();
    outer.set(key, inner);
  }
  return inner;
}

function setOf(outer: Map<string, Set<string>>, key: string): Set<string> {
  let inner = outer.get(key);
  if (inner === undefined) {
    inner = new Set();
    outer.set(key, inner);
  }
  return inner;
}

/** Index of the first element greater than `value` in an ascending array. */
function upperBound(sorted: readonly string[], value: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! <= value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
