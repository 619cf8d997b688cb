import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync, type SQLOutputValue, type StatementSync } from "node:sqlite";
import { toPreview, type ConversationKind, type ConversationRecord, type SessionEntry, type StoredMessage } from "../core/model.js";
import type { AppendResult, MembershipChange, MessageStore, NewGroup, NewMessage } from "./message-store.js";
import {
  GROUP_COMMIT_BYTES_MAX,
  GROUP_COMMIT_QUEUE_MAX,
  GROUP_COMMIT_WRITES_MAX,
  mapSqliteError as mapError,
  SqliteGroupCommit,
} from "./sqlite-group-commit.js";

/** Options of `openSqliteMessageStore`. */
export interface SqliteMessageStoreOptions {
  /** The database file (its directory is created), or ":memory:" for a private, non-durable store. */
  readonly path: string;
  /** "full" (default): a resolved write is fsynced. "normal": an OS crash may lose the last commits. */
  readonly synchronous?: "full" | "normal";
  /** How long a write waits for another process's lock before StoreUnavailableError. */
  readonly busyTimeoutMs?: number;
  /**
   * Group commit: most writes (appends, markRead, ...) made durable by one transaction.
   * Default GROUP_COMMIT_WRITES_MAX (256); 1 commits every write on its own.
   */
  readonly batchWritesMax?: number;
  /** Group commit: most bytes (bodies and ids) per transaction. Default GROUP_COMMIT_BYTES_MAX (1 MiB). */
  readonly batchBytesMax?: number;
  /** Writes waiting for a transaction before new ones reject with StoreUnavailableError. Default 10 000. */
  readonly writeQueueMax?: number;
  /** Called after each committed transaction with the number of writes it answered (metrics, tests). */
  readonly onCommit?: (writes: number) => void;
}

/** The schema this code writes, kept in PRAGMA user_version. */
export const SQLITE_SCHEMA_VERSION = 1;

const BUSY_TIMEOUT_MS_DEFAULT = 5_000;
/** Above any seq, so an open upper bound stays one prepared statement. */
const SEQ_UNBOUNDED = Number.MAX_SAFE_INTEGER;
/** What a write counts against batchBytesMax besides its ids and body: row overhead. */
const WRITE_BYTES_BASE = 64;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS conversations (
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, title TEXT NOT NULL, owner_id TEXT NOT NULL,
  member_count INTEGER NOT NULL, last_seq INTEGER NOT NULL,
  last_prev_seq INTEGER, last_message_id TEXT, last_sender_id TEXT, last_sent_at_ms INTEGER,
  last_content_type TEXT, last_data BLOB, last_client_msg_id TEXT,
  created_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS members (
  conversation_id TEXT NOT NULL, user_id TEXT NOT NULL, read_seq INTEGER NOT NULL,
  PRIMARY KEY (conversation_id, user_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS members_by_user ON members (user_id, conversation_id);
CREATE TABLE IF NOT EXISTS direct_sessions (
  user_id TEXT NOT NULL, conversation_id TEXT NOT NULL, peer_user_id TEXT NOT NULL,
  last_seq INTEGER NOT NULL, read_seq INTEGER NOT NULL, updated_at_ms INTEGER NOT NULL,
  PRIMARY KEY (user_id, conversation_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS direct_sessions_by_conversation ON direct_sessions (conversation_id);
CREATE TABLE IF NOT EXISTS messages (
  conversation_id TEXT NOT NULL, seq INTEGER NOT NULL, prev_seq INTEGER NOT NULL,
  message_id TEXT NOT NULL, sender_id TEXT NOT NULL, sent_at_ms INTEGER NOT NULL,
  content_type TEXT NOT NULL, data BLOB NOT NULL, client_msg_id TEXT NOT NULL,
  PRIMARY KEY (conversation_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS messages_dedup ON messages (conversation_id, sender_id, client_msg_id);
`;

const MESSAGE_COLUMNS = "conversation_id, seq, prev_seq, message_id, sender_id, sent_at_ms, content_type, data, client_msg_id";
const HEAD_COLUMNS =
  "c.last_prev_seq, c.last_message_id, c.last_sender_id, c.last_sent_at_ms, c.last_content_type, c.last_data, c.last_client_msg_id";

type Row = Record<string, SQLOutputValue>;

/** A conversation's head as the appends of the current transaction left it. */
interface PendingHead {
  readonly kind: ConversationKind;
  readonly lastSeq: number;
  /** The last message appended in this transaction; undefined until one is. */
  readonly last: StoredMessage | undefined;
  /** The latest sentAtMs among them: a direct session's activity time. */
  readonly sentAtMsMax: number;
}

/**
 * The embedded default store on node:sqlite, one file in WAL mode.
 *
 * Writes are group-committed (SqliteGroupCommit): every mutation submitted in one turn of the
 * event loop runs in one BEGIN IMMEDIATE transaction, in submission order, and is answered
 * after its COMMIT, so a burst of appends costs one fsync instead of one each. Every mutation
 * joins the batch, not only appends: markRead is as frequent as messages (each reader sends
 * one), ensureDirect precedes the first message of a pair, and one queue keeps the mutations
 * of this store in the order they were issued (an append issued after an addMembers runs
 * after it). Reads run at once, outside the queue: a read sees every write that was answered
 * before it was issued.
 *
 * Several processes may share the file: BEGIN IMMEDIATE takes the write lock before the first
 * read, and each append reads the head under it, so appends stay linearizable per
 * conversation across processes and batches.
 *
 * The driver is synchronous: a transaction blocks the event loop while it runs (and for up to
 * busyTimeoutMs while another process holds the write lock).
 */
export class SqliteMessageStore implements MessageStore {
  readonly #db: DatabaseSync;
  readonly #sql: ReturnType<typeof prepareStatements>;
  readonly #writes: SqliteGroupCommit;
  /** The heads moved by the appends of the current transaction, not written yet. */
  readonly #heads = new Map<string, PendingHead>();
  #closed = false;

  /** Takes an open database whose schema is current; use `openSqliteMessageStore`. */
  constructor(db: DatabaseSync, options: Omit<SqliteMessageStoreOptions, "path" | "synchronous" | "busyTimeoutMs"> = {}) {
    this.#db = db;
    this.#sql = prepareStatements(db);
    this.#writes = new SqliteGroupCommit(db, {
      writesMax: options.batchWritesMax ?? GROUP_COMMIT_WRITES_MAX,
      bytesMax: options.batchBytesMax ?? GROUP_COMMIT_BYTES_MAX,
      queueMax: options.writeQueueMax ?? GROUP_COMMIT_QUEUE_MAX,
      onCommit: options.onCommit,
      deferred: { begin: () => this.#heads.clear(), flush: () => this.#flushHeads() },
    });
  }

  ensureDirect(conversationId: string, userA: string, userB: string, nowMs: number): Promise<ConversationRecord> {
    return this.#write(WRITE_BYTES_BASE + conversationId.length + userA.length + userB.length, () => {
      const sql = this.#sql;
      if (sql.insertConversation.run(conversationId, "direct", "", "", 2, nowMs).changes > 0) {
        sql.insertDirectSession.run(userA, conversationId, userB, nowMs);
        sql.insertDirectSession.run(userB, conversationId, userA, nowMs);
      }
      return toRecord(sql.getConversation.get(conversationId)!);
    });
  }

  createGroup(group: NewGroup, memberIds: readonly string[]): Promise<ConversationRecord> {
    return this.#write(WRITE_BYTES_BASE + group.title.length + idsBytes(memberIds), () => {
      const sql = this.#sql;
      const members = new Set([group.ownerId, ...memberIds]);
      const inserted = sql.insertConversation.run(group.id, "group", group.title, group.ownerId, members.size, group.createdAtMs);
      if (inserted.changes === 0) throw new Error(`conversation ${group.id} exists`);
      for (const user of members) sql.insertMember.run(group.id, user);
      return toRecord(sql.getConversation.get(group.id)!);
    });
  }

  async getConversation(conversationId: string): Promise<ConversationRecord | undefined> {
    return this.#read(() => {
      const row = this.#sql.getConversation.get(conversationId);
      return row === undefined ? undefined : toRecord(row);
    });
  }

  async isMember(conversationId: string, userId: string): Promise<boolean> {
    return this.#read(() => this.#sql.isMember.get(conversationId, userId, userId, conversationId) !== undefined);
  }

  addMembers(conversationId: string, userIds: readonly string[], membersMax: number): Promise<MembershipChange | "limit"> {
    return this.#write(WRITE_BYTES_BASE + idsBytes(userIds), () => {
      const sql = this.#sql;
      const count = this.#groupMemberCount(conversationId);
      const fresh = [...new Set(userIds)].filter((u) => sql.isMember.get(conversationId, u, u, conversationId) === undefined);
      if (count + fresh.length > membersMax) return "limit";
      for (const user of fresh) sql.insertMember.run(conversationId, user);
      sql.setMemberCount.run(count + fresh.length, conversationId);
      return { changed: fresh.length, memberCount: count + fresh.length };
    });
  }

  removeMembers(conversationId: string, userIds: readonly string[]): Promise<MembershipChange> {
    return this.#write(WRITE_BYTES_BASE + idsBytes(userIds), () => {
      const sql = this.#sql;
      const count = this.#groupMemberCount(conversationId);
      let changed = 0;
      for (const user of new Set(userIds)) changed += Number(sql.deleteMember.run(conversationId, user).changes);
      sql.setMemberCount.run(count - changed, conversationId);
      return { changed, memberCount: count - changed };
    });
  }

  async listMembers(conversationId: string, afterUserId: string, limit: number): Promise<string[]> {
    return this.#read(() =>
      this.#sql.listMembers.all(conversationId, afterUserId, conversationId, afterUserId, bound(limit)).map((r) => str(r.user_id)),
    );
  }

  append(message: NewMessage): Promise<AppendResult> {
    // Copied now: the caller may reuse its buffer before the batch runs.
    const data = message.data.slice();
    const bytes = WRITE_BYTES_BASE + data.byteLength + message.clientMsgId.length + message.messageId.length + message.conversationId.length;
    return this.#write(
      bytes,
      (): AppendResult => {
        const sql = this.#sql;
        const { conversationId: id } = message;
        let head = this.#heads.get(id);
        if (head === undefined) {
          const row = sql.getHead.get(id);
          if (row === undefined) throw new Error(`append to missing conversation ${id}`);
          head = { kind: kind(row.kind), lastSeq: num(row.last_seq), last: undefined, sentAtMsMax: 0 };
        }
        // Also finds an append of the same batch: it ran earlier in this transaction.
        const original = sql.findDuplicate.get(id, message.senderId, message.clientMsgId);
        if (original !== undefined) return { message: toMessage(original), duplicate: true };
        const prevSeq = head.lastSeq;
        const stored: StoredMessage = { ...message, data, seq: prevSeq + 1, prevSeq };
        sql.insertMessage.run(
          id, stored.seq, prevSeq, stored.messageId, stored.senderId, stored.sentAtMs, stored.contentType, stored.data, stored.clientMsgId,
        );
        // The head moves once per conversation and transaction (#flushHeads), to the last append.
        this.#heads.set(id, { kind: head.kind, lastSeq: stored.seq, last: stored, sentAtMsMax: Math.max(head.sentAtMsMax, stored.sentAtMs) });
        return { message: stored, duplicate: false };
      },
      false,
    );
  }

  async readRange(conversationId: string, afterSeq: number, upToSeq: number | undefined, limit: number): Promise<StoredMessage[]> {
    return this.#read(() =>
      this.#sql.readRange.all(conversationId, afterSeq, upToSeq ?? SEQ_UNBOUNDED, bound(limit)).map((r) => toMessage(r)),
    );
  }

  async listSessions(userId: string, limit: number): Promise<SessionEntry[]> {
    return this.#read(() => this.#sql.listSessions.all(userId, userId, bound(limit)).map(toSession));
  }

  async listGroups(userId: string, limit: number): Promise<string[]> {
    return this.#read(() => this.#sql.listGroups.all(userId, bound(limit)).map((r) => str(r.conversation_id)));
  }

  markRead(userId: string, conversationId: string, readSeq: number): Promise<number> {
    return this.#write(WRITE_BYTES_BASE + userId.length + conversationId.length, () => {
      const sql = this.#sql;
      const row = sql.markDirectRead.get(readSeq, userId, conversationId) ?? sql.markGroupRead.get(readSeq, conversationId, userId);
      // No row: not a member (the caller checks membership), so there is no position to keep.
      return row === undefined ? readSeq : num(row.read_seq);
    });
  }

  /** Commits the writes still queued, then closes the file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#writes.drain();
    this.#db.close();
  }

  #groupMemberCount(conversationId: string): number {
    const head = this.#sql.getHead.get(conversationId);
    if (head === undefined || head.kind !== "group") throw new Error(`no group ${conversationId}`);
    return num(head.member_count);
  }

  /** Runs `body` on the open database, mapping transient failures to StoreUnavailableError. */
  #read<T>(body: () => T): T {
    if (this.#closed) throw new Error("store is closed");
    try {
      return body();
    } catch (error) {
      throw mapError(error);
    }
  }

  /** Queues `body` for the next group commit; resolves once it is durable. Only appends pass `barrier = false`. */
  #write<T>(bytes: number, body: () => T, barrier = true): Promise<T> {
    if (this.#closed) return Promise.reject(new Error("store is closed"));
    return this.#writes.submit(bytes, body, barrier);
  }

  /** Moves the head (and a direct conversation's session entries) of every conversation appended to since the last flush. */
  #flushHeads(): void {
    const sql = this.#sql;
    for (const [id, head] of this.#heads) {
      const m = head.last;
      if (m === undefined) continue;
      sql.setHead.run(m.seq, m.prevSeq, m.messageId, m.senderId, m.sentAtMs, m.contentType, toPreview(m).data, m.clientMsgId, id);
      if (head.kind === "direct") sql.advanceDirectSessions.run(m.seq, head.sentAtMsMax, id);
    }
    this.#heads.clear();
  }
}

/**
 * Opens (creating when missing) the store at `options.path`: WAL journal, synchronous FULL by
 * default, a busy timeout, and the schema created or checked. Throws when the file holds a
 * newer schema than this code knows.
 */
export function openSqliteMessageStore(options: SqliteMessageStoreOptions): SqliteMessageStore {
  if (options.path !== ":memory:") mkdirSync(dirname(options.path), { recursive: true });
  const db = new DatabaseSync(options.path, {
    timeout: options.busyTimeoutMs ?? BUSY_TIMEOUT_MS_DEFAULT,
    readBigInts: false,
    enableForeignKeyConstraints: false,
  });
  try {
    db.exec("PRAGMA journal_mode = WAL");
    db.exec(`PRAGMA synchronous = ${options.synchronous === "normal" ? "NORMAL" : "FULL"}`);
    migrate(db);
    return new SqliteMessageStore(db, options);
  } catch (error) {
    db.close();
    throw mapError(error);
  }
}

function migrate(db: DatabaseSync): void {
  // Under the write lock, so processes opening a fresh file together create the schema once.
  transact(db, transactionStatements(db), () => {
    const version = num(db.prepare("PRAGMA user_version").get()?.user_version);
    if (version > SQLITE_SCHEMA_VERSION) {
      throw new Error(`database schema version ${version} is newer than this server's ${SQLITE_SCHEMA_VERSION}`);
    }
    if (version < SQLITE_SCHEMA_VERSION) db.exec(`${SCHEMA}; PRAGMA user_version = ${SQLITE_SCHEMA_VERSION}`);
  });
}

interface TransactionStatements {
  readonly begin: StatementSync;
  readonly commit: StatementSync;
  readonly rollback: StatementSync;
}

/** Runs `body` in a BEGIN IMMEDIATE transaction: the write lock is taken before the first read. */
function transact<T>(db: DatabaseSync, sql: TransactionStatements, body: () => T): T {
  sql.begin.run();
  try {
    const result = body();
    sql.commit.run();
    return result;
  } catch (error) {
    // A failed statement or COMMIT may leave the transaction open; the first error says more.
    if (db.isTransaction) {
      try {
        sql.rollback.run();
      } catch {}
    }
    throw error;
  }
}

function transactionStatements(db: DatabaseSync): TransactionStatements {
  return { begin: db.prepare("BEGIN IMMEDIATE"), commit: db.prepare("COMMIT"), rollback: db.prepare("ROLLBACK") };
}

function prepareStatements(db: DatabaseSync) {
  const p = (sql: string): StatementSync => db.prepare(sql);
  return {
    insertConversation: p(
      `INSERT INTO conversations (id, kind, title, owner_id, member_count, last_seq, created_at_ms)
       VALUES (?, ?, ?, ?, ?, 0, ?) ON CONFLICT (id) DO NOTHING`,
    ),
    getConversation: p("SELECT * FROM conversations WHERE id = ?"),
    getHead: p("SELECT kind, last_seq, member_count FROM conversations WHERE id = ?"),
    setHead: p(
      `UPDATE conversations SET last_seq = ?, last_prev_seq = ?, last_message_id = ?, last_sender_id = ?, last_sent_at_ms = ?,
       last_content_type = ?, last_data = ?, last_client_msg_id = ? WHERE id = ?`,
    ),
    setMemberCount: p("UPDATE conversations SET member_count = ? WHERE id = ?"),
    insertDirectSession: p(
      "INSERT INTO direct_sessions (user_id, conversation_id, peer_user_id, last_seq, read_seq, updated_at_ms) VALUES (?, ?, ?, 0, 0, ?)",
    ),
    advanceDirectSessions: p(
      "UPDATE direct_sessions SET last_seq = ?1, updated_at_ms = MAX(updated_at_ms, ?2) WHERE conversation_id = ?3",
    ),
    insertMember: p("INSERT INTO members (conversation_id, user_id, read_seq) VALUES (?, ?, 0) ON CONFLICT DO NOTHING"),
    deleteMember: p("DELETE FROM members WHERE conversation_id = ? AND user_id = ?"),
    isMember: p(
      `SELECT 1 AS one FROM members WHERE conversation_id = ? AND user_id = ?
       UNION ALL SELECT 1 FROM direct_sessions WHERE user_id = ? AND conversation_id = ? LIMIT 1`,
    ),
    listMembers: p(
      `SELECT user_id FROM members WHERE conversation_id = ? AND user_id > ?
       UNION ALL SELECT user_id FROM direct_sessions WHERE conversation_id = ? AND user_id > ?
       ORDER BY user_id LIMIT ?`,
    ),
    findDuplicate: p(`SELECT ${MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? AND sender_id = ? AND client_msg_id = ?`),
    insertMessage: p(`INSERT INTO messages (${MESSAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
    readRange: p(`SELECT ${MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?`),
    // Direct sessions carry the user's own position and order; the preview is the head's.
    listSessions: p(
      `SELECT s.conversation_id AS id, 'direct' AS kind, s.last_seq, s.read_seq, s.peer_user_id, '' AS title, s.updated_at_ms,
       ${HEAD_COLUMNS} FROM direct_sessions s JOIN conversations c ON c.id = s.conversation_id WHERE s.user_id = ?
       UNION ALL
       SELECT c.id, c.kind, c.last_seq, m.read_seq, '', c.title, MAX(c.created_at_ms, COALESCE(c.last_sent_at_ms, 0)), ${HEAD_COLUMNS}
       FROM members m JOIN conversations c ON c.id = m.conversation_id WHERE m.user_id = ?
       ORDER BY updated_at_ms DESC, id ASC LIMIT ?`,
    ),
    listGroups: p("SELECT conversation_id FROM members WHERE user_id = ? LIMIT ?"),
    markDirectRead: p(
      "UPDATE direct_sessions SET read_seq = MAX(read_seq, ?) WHERE user_id = ? AND conversation_id = ? RETURNING read_seq",
    ),
    markGroupRead: p("UPDATE members SET read_seq = MAX(read_seq, ?) WHERE conversation_id = ? AND user_id = ? RETURNING read_seq"),
  };
}

function idsBytes(ids: readonly string[]): number {
  let bytes = 0;
  for (const id of ids) bytes += id.length + 16;
  return bytes;
}

/** SQLite treats a negative LIMIT as none; the contract wants "at most limit". */
function bound(limit: number): number {
  return Math.max(0, Math.floor(limit));
}

/** A message from a row; `p` is the column prefix ("last_" for a head's preview columns). */
function toMessage(r: Row, p = "", conversationId = str(r.conversation_id)): StoredMessage {
  return {
    conversationId,
    seq: num(r[`${p}seq`]),
    prevSeq: num(r[`${p}prev_seq`]),
    messageId: str(r[`${p}message_id`]),
    senderId: str(r[`${p}sender_id`]),
    sentAtMs: num(r[`${p}sent_at_ms`]),
    contentType: str(r[`${p}content_type`]),
    data: bytes(r[`${p}data`]),
    clientMsgId: str(r[`${p}client_msg_id`]),
  };
}

/** A row of a conversation, or a session row carrying the head's columns, as its preview. */
function lastMessage(r: Row, conversationId: string): StoredMessage | undefined {
  return num(r.last_seq) === 0 ? undefined : toMessage(r, "last_", conversationId);
}

function toRecord(r: Row): ConversationRecord {
  const id = str(r.id);
  return {
    id,
    kind: kind(r.kind),
    title: str(r.title),
    ownerId: str(r.owner_id),
    memberCount: num(r.member_count),
    lastSeq: num(r.last_seq),
    lastMessage: lastMessage(r, id),
    createdAtMs: num(r.created_at_ms),
  };
}

function toSession(r: Row): SessionEntry {
  const conversationId = str(r.id);
  return {
    conversationId,
    kind: kind(r.kind),
    lastSeq: num(r.last_seq),
    lastMessage: lastMessage(r, conversationId),
    readSeq: num(r.read_seq),
    peerUserId: str(r.peer_user_id),
    title: str(r.title),
    updatedAtMs: num(r.updated_at_ms),
  };
}

// Column readers: a value of the wrong type means the file is not what this code wrote.
const num = (v: SQLOutputValue | undefined): number => (typeof v === "number" ? v : corrupt("integer", v));
const str = (v: SQLOutputValue | undefined): string => (typeof v === "string" ? v : corrupt("text", v));
const bytes = (v: SQLOutputValue | undefined): Uint8Array => (v instanceof Uint8Array ? v : corrupt("blob", v));
const kind = (v: SQLOutputValue | undefined): ConversationKind => (v === "direct" || v === "group" ? v : corrupt("kind", v));

function corrupt(expected: string, got: SQLOutputValue | undefined): never {
  throw new Error(`sqlite store: expected a ${expected} column, got ${typeof got === "string" ? JSON.stringify(got) : typeof got}`);
}
