import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { Clock } from "../core/clock.js";
import { compareSessions, type ConversationRecord, type SessionEntry, type StoredMessage } from "../core/model.js";
import { systemClock } from "../system.js";
import { CassandraConversationLog, type ConversationLogOptions } from "./cassandra-conversation-log.js";
import { bucketOf, HEAD_COLUMNS, kindOf, MESSAGE_COLUMNS, num, str, toMessage, toPreview } from "./cassandra-rows.js";
import { applySchema, SEQS_PER_BUCKET } from "./cassandra-schema.js";
import { SeqLeases, type SeqLeaseOptions } from "./cassandra-seq-lease.js";
import { CassandraSession, type CassandraConnectionOptions, type Row, type Statement } from "./cassandra-session.js";
import type { AppendResult, MembershipChange, MessageStore, NewGroup, NewMessage } from "./message-store.js";

/** Options of `openCassandraMessageStore`. */
export interface CassandraMessageStoreOptions extends CassandraConnectionOptions {
  readonly keyspace: string;
  /** Replication factor in the local data centre when this creates the keyspace. Default 1. */
  readonly replicationFactor?: number;
  /** This instance's id in seq_leases (see SeqLeaseOptions.processId). Default: host, pid and a random suffix. */
  readonly processId?: string;
  readonly clock?: Clock;
  readonly lease?: Omit<SeqLeaseOptions, "processId">;
  readonly log?: Omit<ConversationLogOptions, "seqsPerBucket">;
  /** Most entries of one user's conversation list read by listSessions. Default 100 000. */
  readonly sessionsReadMax?: number;
}

/** Rows per conditional membership batch (a batch of ~100 rows stays well under Cassandra's 50 KiB limit). */
const MEMBER_BATCH = 100;
/** Parallel group-record reads in listSessions. */
const RECORD_READS_PARALLEL = 32;
/** Retries of a membership compare-and-set that lost to a concurrent change. */
const CAS_ATTEMPTS = 10;

const RECORD_COLUMNS = `kind, title, owner_id, created_at_ms, member_count, ${HEAD_COLUMNS}`;

/**
 * The MessageStore on Apache Cassandra (schema: deploy/cassandra/schema.cql), for deployments
 * that outgrow one machine. Any number of gateway processes may share a keyspace.
 *
 * - Logs are partitioned by (conversation, seq bucket); appends go through
 *   CassandraConversationLog: one owner process per conversation, seqs from blocks reserved
 *   with lightweight transactions, so seqs may skip (after a crash) but never repeat, and
 *   prevSeq is exact. The owner pipelines concurrent appends of a conversation (up to
 *   log.pipelineMax in flight, seqs and answers in issue order).
 * - Membership changes are conditional batches on the conversation's partition (member rows
 *   and member_count move together); a change larger than 100 users is applied in batches of
 *   100, each atomic, so only a concurrent change to the same group can interleave with it.
 * - markRead is a compare-and-set on the user's read_seq.
 * - Every read and write uses the configured consistency (LOCAL_QUORUM by default); transient
 *   failures reject with StoreUnavailableError.
 */
export class CassandraMessageStore implements MessageStore {
  readonly #session: CassandraSession;
  readonly #log: CassandraConversationLog;
  readonly #sessionsReadMax: number;
  readonly #q: ReturnType<typeof statements>;
  #closed = false;

  /** Takes a connected session on a keyspace with the current schema; use `openCassandraMessageStore`. */
  constructor(session: CassandraSession, options: CassandraMessageStoreOptions) {
    const clock = options.clock ?? systemClock;
    this.#session = session;
    this.#sessionsReadMax = options.sessionsReadMax ?? 100_000;
    this.#q = statements(options.keyspace);
    const processId = options.processId ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
    const leases = new SeqLeases(session, options.keyspace, clock, { ...options.lease, processId });
    this.#log = new CassandraConversationLog(session, options.keyspace, leases, clock, { ...options.log, seqsPerBucket: SEQS_PER_BUCKET });
  }

  async ensureDirect(conversationId: string, userA: string, userB: string, nowMs: number): Promise<ConversationRecord> {
    const q = this.#q;
    const created = await this.#session.casBatch([
      { query: q.createDirect, params: [BigInt(nowMs), conversationId] },
      { query: q.insertMember, params: [conversationId, userA, BigInt(nowMs)] },
      { query: q.insertMember, params: [conversationId, userB, BigInt(nowMs)] },
    ]);
    const record = created.applied ? emptyRecord(conversationId, "direct", "", "", 2, nowMs) : await this.getConversation(conversationId);
    if (record === undefined || record.kind !== "direct") throw new Error(`conversation ${conversationId} exists and is not direct`);
    // Also when it existed: repairs a session row lost to a failure after the batch.
    await Promise.all(
      [[userA, userB], [userB, userA]].map(([user, peer]) =>
        this.#session.write(q.setDirectIdentity, ["direct", peer, BigInt(record.createdAtMs), user, conversationId], true),
      ),
    );
    return record;
  }

  async createGroup(group: NewGroup, memberIds: readonly string[]): Promise<ConversationRecord> {
    const members = [...new Set([group.ownerId, ...memberIds])];
    const [first = [], ...rest] = chunks(members, MEMBER_BATCH);
    const created = await this.#session.casBatch([
      { query: this.#q.createGroup, params: [group.title, group.ownerId, BigInt(group.createdAtMs), first.length, group.id] },
      ...first.map((user) => this.#insertMember(group.id, user, group.createdAtMs)),
    ]);
    if (!created.applied) throw new Error(`conversation ${group.id} exists`);
    let count = first.length;
    for (const batch of rest) {
      const applied = await this.#session.casBatch([
        { query: this.#q.setMemberCount, params: [count + batch.length, group.id, count] },
        ...batch.map((user) => this.#insertMember(group.id, user, group.createdAtMs)),
      ]);
      if (!applied.applied) throw new Error(`group ${group.id} changed while it was being created`);
      count += batch.length;
    }
    await this.#writeGroupRows(group.id, members);
    return emptyRecord(group.id, "group", group.title, group.ownerId, members.length, group.createdAtMs);
  }

  async getConversation(conversationId: string): Promise<ConversationRecord | undefined> {
    const row = (await this.#session.read(this.#q.readRecord, [conversationId])).first();
    return row === null ? undefined : toRecord(row, conversationId);
  }

  async isMember(conversationId: string, userId: string): Promise<boolean> {
    return (await this.#session.read(this.#q.readMember, [conversationId, userId])).rowLength > 0;
  }

  async addMembers(conversationId: string, userIds: readonly string[], membersMax: number, nowMs: number): Promise<MembershipChange | "limit"> {
    const wanted = [...new Set(userIds)];
    let changed = 0;
    let memberCount = 0;
    for (let attempt = 0; ; attempt++) {
      if (attempt >= CAS_ATTEMPTS) throw new Error(`group ${conversationId}: too many concurrent membership changes`);
      const count = await this.#groupMemberCount(conversationId);
      const present = await this.#membersAmong(conversationId, wanted);
      const fresh = wanted.filter((u) => !present.has(u));
      if (count + fresh.length > membersMax) return "limit";
      memberCount = count;
      let lost = false;
      for (const batch of chunks(fresh, MEMBER_BATCH)) {
        const result = await this.#session.casBatch([
          { query: this.#q.setMemberCount, params: [memberCount + batch.length, conversationId, memberCount] },
          ...batch.map((user) => this.#insertMember(conversationId, user, nowMs)),
        ]);
        if (!result.applied) {
          lost = true;
          break;
        }
        memberCount += batch.length;
        changed += batch.length;
      }
      if (!lost) break;
    }
    // Every requested user is a member now; (re)writing their rows repairs a crash after the batch.
    await this.#writeGroupRows(conversationId, wanted);
    return { changed, memberCount };
  }

  async removeMembers(conversationId: string, userIds: readonly string[]): Promise<MembershipChange> {
    const unwanted = [...new Set(userIds)];
    let changed = 0;
    let memberCount = 0;
    for (let attempt = 0; ; attempt++) {
      if (attempt >= CAS_ATTEMPTS) throw new Error(`group ${conversationId}: too many concurrent membership changes`);
      memberCount = await this.#groupMemberCount(conversationId);
      const present = [...(await this.#membersAmong(conversationId, unwanted))];
      let lost = false;
      for (const batch of chunks(present, MEMBER_BATCH)) {
        const result = await this.#session.casBatch([
          { query: this.#q.setMemberCount, params: [memberCount - batch.length, conversationId, memberCount] },
          ...batch.map((user) => ({ query: this.#q.deleteMember, params: [conversationId, user] })),
        ]);
        if (!result.applied) {
          lost = true;
          break;
        }
        memberCount -= batch.length;
        changed += batch.length;
      }
      if (!lost) break;
    }
    // None of them is a member now: drop their rows (and so their read positions) where present.
    await forEachLimited(unwanted, RECORD_READS_PARALLEL, async (user) => {
      const row = (await this.#session.read(this.#q.readUserRow, [user, conversationId])).first();
      if (row !== null) await this.#session.write(this.#q.deleteUserRow, [user, conversationId], true);
    });
    return { changed, memberCount };
  }

  async listMembers(conversationId: string, afterUserId: string, limit: number): Promise<string[]> {
    if (limit <= 0) return [];
    const rows = await this.#session.readUpTo(this.#q.listMembers, [conversationId, afterUserId], Math.floor(limit));
    return rows.map((r) => str(r.get("member_id"))).filter((u) => u !== "");
  }

  append(message: NewMessage): Promise<AppendResult> {
    if (this.#closed) return Promise.reject(new Error("cassandra store is closed"));
    return this.#log.append(message);
  }

  async readRange(conversationId: string, afterSeq: number, upToSeq: number | undefined, limit: number): Promise<StoredMessage[]> {
    if (limit <= 0) return [];
    // Never above the head: a message above it is not acknowledged yet, or is being fenced.
    const head = (await this.#session.read(this.#q.readLastSeq, [conversationId])).first();
    if (head === null) return [];
    const lastSeq = num(head.get("last_seq"));
    const end = Math.min(upToSeq ?? lastSeq, lastSeq);
    const messages: StoredMessage[] = [];
    for (let b = bucketOf(afterSeq + 1, SEQS_PER_BUCKET); b <= bucketOf(end, SEQS_PER_BUCKET) && end > afterSeq; b++) {
      const rows = await this.#session.readUpTo(this.#q.readRange, [conversationId, BigInt(b), BigInt(afterSeq), BigInt(end)], limit - messages.length);
      messages.push(...rows.map(toMessage));
      if (messages.length >= limit) break;
    }
    return messages;
  }

  async listGroups(userId: string, limit: number): Promise<string[]> {
    if (limit <= 0) return [];
    const rows = await this.#session.readUpTo(this.#q.listUserRows, [userId], this.#sessionsReadMax);
    const ids: string[] = [];
    for (const row of rows) {
      if (ids.length >= limit) break;
      if (kindOf(row.get("kind")) === "group") ids.push(str(row.get("conversation_id")));
    }
    return ids;
  }

  async listSessions(userId: string, limit: number): Promise<SessionEntry[]> {
    if (limit <= 0) return [];
    const rows = await this.#session.readUpTo(this.#q.listUserRows, [userId], this.#sessionsReadMax);
    const sessions: SessionEntry[] = [];
    const groups: Row[] = [];
    for (const row of rows) {
      const kind = kindOf(row.get("kind"));
      if (kind === "group") groups.push(row);
      else if (kind === "direct") sessions.push(toDirectSession(row));
    }
    await forEachLimited(groups, RECORD_READS_PARALLEL, async (row) => {
      const id = str(row.get("conversation_id"));
      const record = await this.getConversation(id);
      if (record?.kind !== "group") return;
      sessions.push({
        conversationId: id,
        kind: "group",
        lastSeq: record.lastSeq,
        lastMessage: record.lastMessage,
        readSeq: num(row.get("read_seq")),
        peerUserId: "",
        title: record.title,
        updatedAtMs: Math.max(record.createdAtMs, record.lastMessage?.sentAtMs ?? 0),
      });
    });
    return sessions.sort(compareSessions).slice(0, limit);
  }

  async markRead(userId: string, conversationId: string, readSeq: number): Promise<number> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const row = (await this.#session.read(this.#q.readUserRow, [userId, conversationId])).first();
      // No row: not a member (the caller checks membership), so there is no position to keep.
      if (row === null) return readSeq;
      const stored = row.get("read_seq") as bigint | null;
      const current = num(stored);
      if (readSeq <= current) return current;
      const result = await this.#session.cas(this.#q.setReadSeq, [BigInt(readSeq), userId, conversationId, str(row.get("kind")), stored]);
      if (result.applied) return readSeq;
    }
    throw new Error(`markRead ${userId} ${conversationId}: too many concurrent updates`);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.#log.close();
    } finally {
      await this.#session.close();
    }
  }

  /** Conversations whose seqs this instance owns right now. */
  ownedConversationCount(): number {
    return this.#log.ownedCount();
  }

  async #groupMemberCount(conversationId: string): Promise<number> {
    const record = await this.getConversation(conversationId);
    if (record?.kind !== "group") throw new Error(`no group ${conversationId}`);
    return record.memberCount;
  }

  async #membersAmong(conversationId: string, userIds: readonly string[]): Promise<Set<string>> {
    const present = new Set<string>();
    for (const batch of chunks(userIds, MEMBER_BATCH)) {
      const rows = (await this.#session.read(this.#q.membersIn, [conversationId, batch], { fetchSize: batch.length })).rows;
      for (const row of rows) present.add(str(row.get("member_id")));
    }
    return present;
  }

  #insertMember(conversationId: string, userId: string, nowMs: number): Statement {
    return { query: this.#q.insertMember, params: [conversationId, userId, BigInt(nowMs)] };
  }

  async #writeGroupRows(conversationId: string, userIds: readonly string[]): Promise<void> {
    await forEachLimited(userIds, RECORD_READS_PARALLEL, (user) => this.#session.write(this.#q.setGroupIdentity, ["group", user, conversationId], true));
  }
}

/**
 * Connects, applies deploy/cassandra/schema.cql (creating the keyspace and missing tables)
 * and returns the store. Rejects with StoreUnavailableError when no node answers, and with an
 * Error when the keyspace holds an incompatible schema.
 */
export async function openCassandraMessageStore(options: CassandraMessageStoreOptions): Promise<CassandraMessageStore> {
  const session = new CassandraSession(options);
  try {
    await session.connect();
    await applySchema(session, { keyspace: options.keyspace, localDataCenter: options.localDataCenter, replicationFactor: options.replicationFactor ?? 1 });
    return new CassandraMessageStore(session, options);
  } catch (error) {
    await session.close().catch(() => {});
    throw error;
  }
}

function statements(ks: string) {
  return {
    createDirect: `UPDATE ${ks}.conversations SET kind = 'direct', title = '', owner_id = '', member_count = 2, created_at_ms = ?
      WHERE conversation_id = ? IF kind = null`,
    createGroup: `UPDATE ${ks}.conversations SET kind = 'group', title = ?, owner_id = ?, created_at_ms = ?, member_count = ?
      WHERE conversation_id = ? IF kind = null`,
    insertMember: `INSERT INTO ${ks}.conversations (conversation_id, member_id, joined_at_ms) VALUES (?, ?, ?)`,
    deleteMember: `DELETE FROM ${ks}.conversations WHERE conversation_id = ? AND member_id = ?`,
    setMemberCount: `UPDATE ${ks}.conversations SET member_count = ? WHERE conversation_id = ? IF member_count = ?`,
    readRecord: `SELECT ${RECORD_COLUMNS} FROM ${ks}.conversations WHERE conversation_id = ? LIMIT 1`,
    readLastSeq: `SELECT kind, last_seq FROM ${ks}.conversations WHERE conversation_id = ? LIMIT 1`,
    readMember: `SELECT member_id FROM ${ks}.conversations WHERE conversation_id = ? AND member_id = ?`,
    membersIn: `SELECT member_id FROM ${ks}.conversations WHERE conversation_id = ? AND member_id IN ?`,
    listMembers: `SELECT member_id FROM ${ks}.conversations WHERE conversation_id = ? AND member_id > ?`,
    setDirectIdentity: `UPDATE ${ks}.user_conversations SET kind = ?, peer_user_id = ?, created_at_ms = ? WHERE user_id = ? AND conversation_id = ?`,
    setGroupIdentity: `UPDATE ${ks}.user_conversations SET kind = ? WHERE user_id = ? AND conversation_id = ?`,
    readUserRow: `SELECT kind, read_seq FROM ${ks}.user_conversations WHERE user_id = ? AND conversation_id = ?`,
    deleteUserRow: `DELETE FROM ${ks}.user_conversations WHERE user_id = ? AND conversation_id = ?`,
    listUserRows: `SELECT conversation_id, kind, peer_user_id, created_at_ms, read_seq, ${HEAD_COLUMNS} FROM ${ks}.user_conversations WHERE user_id = ?`,
    setReadSeq: `UPDATE ${ks}.user_conversations SET read_seq = ? WHERE user_id = ? AND conversation_id = ? IF kind = ? AND read_seq = ?`,
    readRange: `SELECT ${MESSAGE_COLUMNS} FROM ${ks}.messages WHERE conversation_id = ? AND bucket = ? AND seq > ? AND seq <= ?`,
  };
}

function toRecord(row: Row, id: string): ConversationRecord | undefined {
  const kind = kindOf(row.get("kind"));
  if (kind === undefined) return undefined;
  const lastMessage = toPreview(row, id);
  return {
    id,
    kind,
    title: str(row.get("title")),
    ownerId: str(row.get("owner_id")),
    memberCount: num(row.get("member_count")),
    lastSeq: lastMessage?.seq ?? 0,
    lastMessage,
    createdAtMs: num(row.get("created_at_ms")),
  };
}

function toDirectSession(row: Row): SessionEntry {
  const conversationId = str(row.get("conversation_id"));
  const lastMessage = toPreview(row, conversationId);
  return {
    conversationId,
    kind: "direct",
    lastSeq: lastMessage?.seq ?? 0,
    lastMessage,
    readSeq: num(row.get("read_seq")),
    peerUserId: str(row.get("peer_user_id")),
    title: "",
    updatedAtMs: Math.max(num(row.get("created_at_ms")), lastMessage?.sentAtMs ?? 0),
  };
}

function emptyRecord(id: string, kind: "direct" | "group", title: string, ownerId: string, memberCount: number, createdAtMs: number): ConversationRecord {
  return { id, kind, title, ownerId, memberCount, lastSeq: 0, lastMessage: undefined, createdAtMs };
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Runs `fn` over `items` with at most `parallel` calls in flight. */
async function forEachLimited<T>(items: readonly T[], parallel: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(parallel, items.length) }, worker));
}
