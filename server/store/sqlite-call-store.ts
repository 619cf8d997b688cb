import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync, type SQLOutputValue, type StatementSync } from "node:sqlite";
import type { CallRecord } from "../core/call-model.js";
import type { LiveRoomRecord } from "../core/live-room.js";
import { StoreUnavailableError } from "../core/result.js";
import { indexedDeadline, parseCall, serializeCall, type CallStore, type CreateCallOutcome } from "./call-store.js";

/** Options of `openSqliteCallStore`. */
export interface SqliteCallStoreOptions {
  /** The database file (its directory is created), or ":memory:" for a private store. */
  readonly path: string;
  /** "full" (default): every write is fsynced; "normal": an OS crash may lose the last ones. */
  readonly synchronous?: "full" | "normal";
  /** How long a write waits for another process's lock before StoreUnavailableError. */
  readonly busyTimeoutMs?: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS calls (
  call_id TEXT PRIMARY KEY, version INTEGER NOT NULL, deadline_ms INTEGER NOT NULL,
  claimed_until_ms INTEGER NOT NULL, claimed_by TEXT NOT NULL, record TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS calls_by_deadline ON calls (deadline_ms);
CREATE TABLE IF NOT EXISTS call_keys (
  caller_id TEXT NOT NULL, client_call_id TEXT NOT NULL, call_id TEXT NOT NULL,
  PRIMARY KEY (caller_id, client_call_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS call_keys_by_call ON call_keys (call_id);
CREATE TABLE IF NOT EXISTS call_slots (user_id TEXT PRIMARY KEY, call_id TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS call_slots_by_call ON call_slots (call_id);
CREATE TABLE IF NOT EXISTS live_rooms (room_id TEXT PRIMARY KEY, version INTEGER NOT NULL, record TEXT NOT NULL) WITHOUT ROWID;
`;

/** SQLite primary result codes that mean "try again": BUSY, LOCKED, IOERR, FULL. */
const TRANSIENT_CODES = new Set([5, 6, 10, 13]);

type Row = Record<string, SQLOutputValue>;

/**
 * CallStore on node:sqlite: one file (calls.sqlite beside the message store) in WAL mode,
 * shared by the workers of a node. Every mutation is one BEGIN IMMEDIATE transaction, which
 * makes create, update and claimDue atomic across processes: the write lock serialises
 * them, so two workers claiming one deadline cannot both get it.
 */
export class SqliteCallStore implements CallStore {
  readonly #db: DatabaseSync;
  readonly #sql: ReturnType<typeof prepare>;
  #closed = false;

  /** Takes an open database with the schema; use `openSqliteCallStore`. */
  constructor(db: DatabaseSync) {
    this.#db = db;
    this.#sql = prepare(db);
  }

  async get(callId: string): Promise<CallRecord | undefined> {
    return this.#run(() => {
      const row = this.#sql.getCall.get(callId);
      return row === undefined ? undefined : parseCall(String(row.record));
    });
  }

  async findByClientCallId(callerId: string, clientCallId: string): Promise<CallRecord | undefined> {
    return this.#run(() => {
      const row = this.#sql.getByKey.get(callerId, clientCallId);
      return row === undefined ? undefined : parseCall(String(row.record));
    });
  }

  async callOf(userId: string): Promise<string | undefined> {
    return this.#run(() => {
      const row = this.#sql.getSlot.get(userId);
      return row === undefined ? undefined : String(row.call_id);
    });
  }

  async create(call: CallRecord, slotUsers: readonly string[]): Promise<CreateCallOutcome> {
    return this.#transaction((): CreateCallOutcome => {
      const sql = this.#sql;
      const known = sql.getByKey.get(call.callerId, call.clientCallId);
      if (known !== undefined) return { kind: "duplicate", call: parseCall(String(known.record)) };
      const busy = new Map<string, string>();
      for (const user of slotUsers) {
        const row = sql.getSlot.get(user);
        if (row !== undefined) busy.set(user, String(row.call_id));
      }
      if (busy.size > 0) return { kind: "busy", busy };
      sql.insertCall.run(call.callId, call.version, indexedDeadline(call), serializeCall(call));
      sql.insertKey.run(call.callerId, call.clientCallId, call.callId);
      for (const user of slotUsers) sql.insertSlot.run(user, call.callId);
      return { kind: "created" };
    });
  }

  async alias(callerId: string, clientCallId: string, callId: string): Promise<string> {
    return this.#transaction(() => {
      const row = this.#sql.getKey.get(callerId, clientCallId);
      if (row !== undefined) return String(row.call_id);
      this.#sql.insertKey.run(callerId, clientCallId, callId);
      return callId;
    });
  }

  async update(call: CallRecord, expectedVersion: number, released: readonly string[]): Promise<boolean> {
    return this.#transaction(() => {
      const sql = this.#sql;
      const changes = sql.updateCall.run(call.version, indexedDeadline(call), serializeCall(call), call.callId, expectedVersion).changes;
      if (Number(changes) === 0) return false;
      for (const user of released) sql.releaseSlot.run(user, call.callId);
      return true;
    });
  }

  async claimDue(nowMs: number, limit: number, claimerId: string, leaseMs: number): Promise<CallRecord[]> {
    return this.#transaction(() => {
      const sql = this.#sql;
      const rows = sql.due.all(nowMs, nowMs, Math.max(0, Math.floor(limit)));
      for (const row of rows) sql.claim.run(nowMs + leaseMs, claimerId, String(row.call_id));
      return rows.map((row: Row) => parseCall(String(row.record)));
    });
  }

  async delete(callId: string, expectedVersion: number): Promise<boolean> {
    return this.#transaction(() => {
      const sql = this.#sql;
      if (Number(sql.deleteCall.run(callId, expectedVersion).changes) === 0) return false;
      sql.deleteKeys.run(callId);
      sql.deleteSlots.run(callId);
      return true;
    });
  }

  async getRoom(roomId: string): Promise<LiveRoomRecord | undefined> {
    return this.#run(() => {
      const row = this.#sql.getRoom.get(roomId);
      return row === undefined ? undefined : (JSON.parse(String(row.record)) as LiveRoomRecord);
    });
  }

  async putRoom(room: LiveRoomRecord, expectedVersion: number): Promise<boolean> {
    return this.#transaction(() => {
      const sql = this.#sql;
      const text = JSON.stringify(room);
      if (expectedVersion === 0) return Number(sql.insertRoom.run(room.roomId, room.version, text).changes) > 0;
      return Number(sql.updateRoom.run(room.version, text, room.roomId, expectedVersion).changes) > 0;
    });
  }

  async deleteRoom(roomId: string): Promise<void> {
    this.#transaction(() => this.#sql.deleteRoom.run(roomId));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }

  #run<T>(body: () => T): T {
    if (this.#closed) throw new Error("call store is closed");
    try {
      return body();
    } catch (error) {
      throw mapError(error);
    }
  }

  #transaction<T>(body: () => T): T {
    return this.#run(() => {
      const sql = this.#sql;
      sql.begin.run();
      try {
        const result = body();
        sql.commit.run();
        return result;
      } catch (error) {
        if (this.#db.isTransaction) {
          try {
            sql.rollback.run();
          } catch {}
        }
        throw error;
      }
    });
  }
}

/** Opens (creating when missing) the call store at `options.path`. */
export function openSqliteCallStore(options: SqliteCallStoreOptions): SqliteCallStore {
  if (options.path !== ":memory:") mkdirSync(dirname(options.path), { recursive: true });
  const db = new DatabaseSync(options.path, { timeout: options.busyTimeoutMs ?? 5_000, readBigInts: false });
  try {
    db.exec("PRAGMA journal_mode = WAL");
    db.exec(`PRAGMA synchronous = ${options.synchronous === "normal" ? "NORMAL" : "FULL"}`);
    db.exec(SCHEMA);
  } catch (error) {
    db.close();
    throw mapError(error);
  }
  return new SqliteCallStore(db);
}

function prepare(db: DatabaseSync) {
  const p = (sql: string): StatementSync => db.prepare(sql);
  return {
    begin: p("BEGIN IMMEDIATE"),
    commit: p("COMMIT"),
    rollback: p("ROLLBACK"),
    getCall: p("SELECT record FROM calls WHERE call_id = ?"),
    getByKey: p("SELECT c.record FROM call_keys k JOIN calls c ON c.call_id = k.call_id WHERE k.caller_id = ? AND k.client_call_id = ?"),
    getKey: p("SELECT call_id FROM call_keys WHERE caller_id = ? AND client_call_id = ?"),
    getSlot: p("SELECT call_id FROM call_slots WHERE user_id = ?"),
    insertCall: p("INSERT INTO calls (call_id, version, deadline_ms, claimed_until_ms, claimed_by, record) VALUES (?, ?, ?, 0, '', ?)"),
    insertKey: p("INSERT INTO call_keys (caller_id, client_call_id, call_id) VALUES (?, ?, ?)"),
    insertSlot: p("INSERT INTO call_slots (user_id, call_id) VALUES (?, ?)"),
    updateCall: p("UPDATE calls SET version = ?, deadline_ms = ?, record = ?, claimed_until_ms = 0, claimed_by = '' WHERE call_id = ? AND version = ?"),
    releaseSlot: p("DELETE FROM call_slots WHERE user_id = ? AND call_id = ?"),
    due: p("SELECT call_id, record FROM calls WHERE deadline_ms <= ? AND claimed_until_ms <= ? ORDER BY deadline_ms LIMIT ?"),
    claim: p("UPDATE calls SET claimed_until_ms = ?, claimed_by = ? WHERE call_id = ?"),
    deleteCall: p("DELETE FROM calls WHERE call_id = ? AND version = ?"),
    deleteKeys: p("DELETE FROM call_keys WHERE call_id = ?"),
    deleteSlots: p("DELETE FROM call_slots WHERE call_id = ?"),
    getRoom: p("SELECT record FROM live_rooms WHERE room_id = ?"),
    insertRoom: p("INSERT INTO live_rooms (room_id, version, record) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"),
    updateRoom: p("UPDATE live_rooms SET version = ?, record = ? WHERE room_id = ? AND version = ?"),
    deleteRoom: p("DELETE FROM live_rooms WHERE room_id = ?"),
  };
}

function mapError(error: unknown): unknown {
  if (error instanceof StoreUnavailableError) return error;
  const errcode = (error as { errcode?: unknown } | null)?.errcode;
  if (typeof errcode === "number" && TRANSIENT_CODES.has(errcode & 0xff)) {
    return new StoreUnavailableError(`sqlite call store unavailable: ${(error as Error).message}`, { cause: error });
  }
  return error;
}
