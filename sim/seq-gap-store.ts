import type { ConversationRecord, SessionEntry, StoredMessage } from "../server/core/model.js";
import type { AppendResult, MembershipChange, MessageStore, NewGroup, NewMessage } from "../server/store/message-store.js";

/** Seqs an owner reserves at once (CassandraMessageStore's default lease block). */
export const SEQ_BLOCK = 100;

/** One conversation's seqs: the store's contiguous index -> the seq the world sees. */
interface SeqMap {
  /** visible[i] is the seq of the inner store's seq i + 1. */
  readonly visible: number[];
  /** The inner message with seq i + 1 as the world sees it (built once). */
  readonly mapped: StoredMessage[];
}

/**
 * A MessageStore whose seqs skip the way the Cassandra store's do after an unclean takeover:
 * a new owner continues after the block its predecessor reserved (101, 201, ...), so the log
 * is strictly increasing and exactly chained by prevSeq but not contiguous. Wraps a store
 * with contiguous seqs (the memory store) and translates every seq in and out; before an
 * append, `takeover()` says whether the conversation changed owner uncleanly.
 */
export class SeqGapStore implements MessageStore {
  readonly #inner: MessageStore;
  readonly #takeover: (conversationId: string) => boolean;
  readonly #maps = new Map<string, SeqMap>();
  readonly #previews = new WeakMap<StoredMessage, StoredMessage>();
  readonly #records = new WeakMap<ConversationRecord, ConversationRecord>();

  constructor(inner: MessageStore, takeover: (conversationId: string) => boolean) {
    this.#inner = inner;
    this.#takeover = takeover;
  }

  async ensureDirect(conversationId: string, userA: string, userB: string, nowMs: number): Promise<ConversationRecord> {
    return this.#record(await this.#inner.ensureDirect(conversationId, userA, userB, nowMs));
  }

  async createGroup(group: NewGroup, memberIds: readonly string[]): Promise<ConversationRecord> {
    return this.#record(await this.#inner.createGroup(group, memberIds));
  }

  async getConversation(conversationId: string): Promise<ConversationRecord | undefined> {
    const record = await this.#inner.getConversation(conversationId);
    return record === undefined ? undefined : this.#record(record);
  }

  isMember(conversationId: string, userId: string): Promise<boolean> {
    return this.#inner.isMember(conversationId, userId);
  }

  addMembers(conversationId: string, userIds: readonly string[], membersMax: number, nowMs: number): Promise<MembershipChange | "limit"> {
    return this.#inner.addMembers(conversationId, userIds, membersMax, nowMs);
  }

  removeMembers(conversationId: string, userIds: readonly string[]): Promise<MembershipChange> {
    return this.#inner.removeMembers(conversationId, userIds);
  }

  listMembers(conversationId: string, afterUserId: string, limit: number): Promise<string[]> {
    return this.#inner.listMembers(conversationId, afterUserId, limit);
  }

  async append(message: NewMessage): Promise<AppendResult> {
    const result = await this.#inner.append(message);
    const map = this.#map(message.conversationId);
    const dense = result.message.seq;
    if (!result.duplicate && dense === map.visible.length + 1) {
      const last = map.visible[map.visible.length - 1] ?? 0;
      map.visible.push(this.#takeover(message.conversationId) ? (Math.floor(last / SEQ_BLOCK) + 1) * SEQ_BLOCK + 1 : last + 1);
    }
    return { message: this.#message(map, result.message), duplicate: result.duplicate };
  }

  async readRange(conversationId: string, afterSeq: number, upToSeq: number | undefined, limit: number): Promise<StoredMessage[]> {
    const map = this.#map(conversationId);
    const after = denseAtMost(map.visible, afterSeq);
    const upTo = upToSeq === undefined ? undefined : denseAtMost(map.visible, upToSeq);
    if (upTo !== undefined && upTo <= after) return [];
    const messages = await this.#inner.readRange(conversationId, after, upTo, limit);
    return messages.map((m) => this.#message(map, m));
  }

  async listSessions(userId: string, limit: number): Promise<SessionEntry[]> {
    const sessions = await this.#inner.listSessions(userId, limit);
    return sessions.map((s) => {
      const map = this.#maps.get(s.conversationId);
      if (map === undefined || s.lastSeq === 0) return s;
      return { ...s, lastSeq: visibleOf(map, s.lastSeq), lastMessage: this.#preview(map, s.lastMessage) };
    });
  }

  listGroups(userId: string, limit: number): Promise<string[]> {
    return this.#inner.listGroups(userId, limit);
  }

  /** Read positions are kept as the world sees them: the inner store only keeps their maximum. */
  markRead(userId: string, conversationId: string, readSeq: number): Promise<number> {
    return this.#inner.markRead(userId, conversationId, readSeq);
  }

  close(): Promise<void> {
    return this.#inner.close();
  }

  #map(conversationId: string): SeqMap {
    let map = this.#maps.get(conversationId);
    if (map === undefined) {
      map = { visible: [], mapped: [] };
      this.#maps.set(conversationId, map);
    }
    return map;
  }

  #message(map: SeqMap, m: StoredMessage): StoredMessage {
    const i = m.seq - 1;
    let out = map.mapped[i];
    if (out === undefined) {
      out = { ...m, seq: visibleOf(map, m.seq), prevSeq: visibleOf(map, m.prevSeq) };
      map.mapped[i] = out;
    }
    return out;
  }

  #preview(map: SeqMap, preview: StoredMessage | undefined): StoredMessage | undefined {
    if (preview === undefined) return undefined;
    let out = this.#previews.get(preview);
    if (out === undefined) {
      out = { ...preview, seq: visibleOf(map, preview.seq), prevSeq: visibleOf(map, preview.prevSeq) };
      this.#previews.set(preview, out);
    }
    return out;
  }

  #record(record: ConversationRecord): ConversationRecord {
    if (record.lastSeq === 0) return record;
    let out = this.#records.get(record);
    if (out === undefined) {
      const map = this.#map(record.id);
      out = { ...record, lastSeq: visibleOf(map, record.lastSeq), lastMessage: this.#preview(map, record.lastMessage) };
      this.#records.set(record, out);
    }
    return out;
  }
}

function visibleOf(map: SeqMap, dense: number): number {
  return dense === 0 ? 0 : map.visible[dense - 1]!;
}

/** How many visible seqs are at most `seq`: the inner store's seq for "up to seq". */
function denseAtMost(visible: readonly number[], seq: number): number {
  let lo = 0;
  let hi = visible.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (visible[mid]! <= seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
