import { DatabaseSync, type SQLOutputValue, type StatementSync } from "node:sqlite";
import type { ClientMessage } from "./client-message.js";
import type { PendingSend } from "./client-protocol.js";
import { HISTORY_MAX_DEFAULT, pageLimit, type ClientStore, type HistoryQuery, type StoredClientState } from "./client-store.js";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS client_cursors (
  conversation_id TEXT PRIMARY KEY,
  last_seq INTEGER NOT NULL,
  read_seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS client_messages (
  conversation_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  prev_seq INTEGER NOT NULL,
  message_id TEXT NOT NULL,
  sender_id TEXT NOT NULL,
  sent_at_ms INTEGER NOT NULL,
  content_type TEXT NOT NULL,
  data BLOB NOT NULL,
  client_msg_id TEXT NOT NULL,
  PRIMARY KEY (conversation_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS client_outbox (
  position INTEGER PRIMARY KEY AUTOINCREMENT,
  client_msg_id TEXT NOT NULL UNIQUE,
  conversation_id TEXT NOT NULL,
  to_user_id TEXT NOT NULL,
  content_type TEXT NOT NULL,
  data BLOB NOT NULL
);`;

/** Settings of the SQLite client store. */
export interface SqliteClientStoreOptions {
  /** The database file (":memory:" for a throwaway one). */
  readonly path: string;
  /** Messages kept per conversation. */
  readonly historyMax?: number;
}

/**
 * A ClientStore in one SQLite file through node:sqlite (desktop apps, CLIs, bots): WAL with
 * synchronous=FULL, so a resolved write survives a crash or power loss. Every write is one
 * transaction.
 */
export class SqliteClientStore implements ClientStore {
  readonly #db: DatabaseSync;
  readonly #historyMax: number;
  readonly #sql: ReturnType<typeof prepare>;

  constructor(options: SqliteClientStoreOptions) {
    this.#db = new DatabaseSync(options.path);
    this.#db.exec("PRAGMA journal_mode = WAL");
    this.#db.exec("PRAGMA synchronous = FULL");
    this.#db.exec(SCHEMA);
    this.#historyMax = options.historyMax ?? HISTORY_MAX_DEFAULT;
    this.#sql = prepare(this.#db);
  }

  async load(): Promise<StoredClientState> {
    const cursors = this.#sql.cursors.all().map((r) => ({ conversationId: String(r.conversation_id), lastSeq: num(r.last_seq), readSeq: num(r.read_seq) }));
    const outbox = this.#sql.outbox.all().map(
      (r): PendingSend => ({ clientMsgId: String(r.client_msg_id), conversationId: String(r.conversation_id), toUserId: String(r.to_user_id), contentType: String(r.content_type), data: bytes(r.data) }),
    );
    return { cursors, outbox };
  }

  async appendMessages(conversationId: string, messages: readonly ClientMessage[], lastSeq: number): Promise<void> {
    this.#transaction(() => {
      for (const m of messages) {
        this.#sql.putMessage.run(conversationId, m.seq, m.prevSeq, m.messageId, m.senderId, m.sentAtMs, m.contentType, m.data, m.clientMsgId);
      }
      this.#sql.moveLast.run(conversationId, lastSeq);
      this.#sql.prune.run(conversationId, conversationId, this.#historyMax);
    });
  }

  async setReadSeq(conversationId: string, readSeq: number): Promise<void> {
    this.#sql.moveRead.run(conversationId, readSeq);
  }

  async messages(conversationId: string, query?: HistoryQuery): Promise<ClientMessage[]> {
    const rows = this.#sql.page.all(conversationId, query?.beforeSeq ?? Number.MAX_SAFE_INTEGER, pageLimit(query));
    return rows.reverse().map((r) => ({
      conversationId,
      seq: num(r.seq),
      prevSeq: num(r.prev_seq),
      messageId: String(r.message_id),
      senderId: String(r.sender_id),
      sentAtMs: num(r.sent_at_ms),
      contentType: String(r.content_type),
      data: bytes(r.data),
      clientMsgId: String(r.client_msg_id),
    }));
  }

  async removeConversation(conversationId: string): Promise<void> {
    this.#transaction(() => {
      this.#sql.dropMessages.run(conversationId);
      this.#sql.dropCursor.run(conversationId);
    });
  }

  async addOutbox(send: PendingSend): Promise<void> {
    this.#sql.addOutbox.run(send.clientMsgId, send.conversationId, send.toUserId, send.contentType, send.data);
  }

  async removeOutbox(clientMsgId: string): Promise<void> {
    this.#sql.removeOutbox.run(clientMsgId);
  }

  async close(): Promise<void> {
    if (this.#db.isOpen) this.#db.close();
  }

  #transaction(body: () => void): void {
    this.#sql.begin.run();
    try {
      body();
      this.#sql.commit.run();
    } catch (error) {
      this.#sql.rollback.run();
      throw error;
    }
  }
}

function prepare(db: DatabaseSync) {
  const p = (sql: string): StatementSync => db.prepare(sql);
  return {
    begin: p("BEGIN IMMEDIATE"),
    commit: p("COMMIT"),
    rollback: p("ROLLBACK"),
    cursors: p("SELECT conversation_id, last_seq, read_seq FROM client_cursors"),
    outbox: p("SELECT client_msg_id, conversation_id, to_user_id, content_type, data FROM client_outbox ORDER BY position"),
    putMessage: p("INSERT OR REPLACE INTO client_messages (conversation_id, seq, prev_seq, message_id, sender_id, sent_at_ms, content_type, data, client_msg_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"),
    moveLast: p("INSERT INTO client_cursors (conversation_id, last_seq, read_seq) VALUES (?1, ?2, 0) ON CONFLICT (conversation_id) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)"),
    moveRead: p("INSERT INTO client_cursors (conversation_id, last_seq, read_seq) VALUES (?1, 0, ?2) ON CONFLICT (conversation_id) DO UPDATE SET read_seq = max(read_seq, excluded.read_seq)"),
    prune: p("DELETE FROM client_messages WHERE conversation_id = ? AND seq <= (SELECT seq FROM client_messages WHERE conversation_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)"),
    page: p("SELECT seq, prev_seq, message_id, sender_id, sent_at_ms, content_type, data, client_msg_id FROM client_messages WHERE conversation_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?"),
    dropMessages: p("DELETE FROM client_messages WHERE conversation_id = ?"),
    dropCursor: p("DELETE FROM client_cursors WHERE conversation_id = ?"),
    addOutbox: p("INSERT OR IGNORE INTO client_outbox (client_msg_id, conversation_id, to_user_id, content_type, data) VALUES (?, ?, ?, ?, ?)"),
    removeOutbox: p("DELETE FROM client_outbox WHERE client_msg_id = ?"),
  };
}

function num(v: SQLOutputValue | undefined): number {
  return typeof v === "bigint" ? Number(v) : Number(v ?? 0);
}

function bytes(v: SQLOutputValue | undefined): Uint8Array {
  return v instanceof Uint8Array ? new Uint8Array(v) : new Uint8Array();
}
