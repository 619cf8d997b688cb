import type { ClientMessage } from "./client-message.js";
import type { PendingSend } from "./client-protocol.js";
import { HISTORY_MAX_DEFAULT, pageLimit, type ClientStore, type HistoryQuery, type StoredClientState } from "./client-store.js";

/*
 * The few IndexedDB types this adapter uses, declared structurally: the project compiles
 * without the DOM library, and any IndexedDB (a browser's, fake-indexeddb) fits them.
 */
interface IdbRequest<T = unknown> {
  result: T;
  error: unknown;
  onsuccess: ((this: unknown, ev: unknown) => unknown) | null;
  onerror: ((this: unknown, ev: unknown) => unknown) | null;
}
interface IdbOpenRequest extends IdbRequest<IdbDatabase> {
  onupgradeneeded: ((this: unknown, ev: unknown) => unknown) | null;
}
interface IdbCursor {
  readonly value: unknown;
  continue(): void;
  delete(): IdbRequest;
}
interface IdbIndex {
  count(query?: unknown): IdbRequest<number>;
  openCursor(query?: unknown, direction?: "next" | "prev"): IdbRequest<IdbCursor | null>;
  getKey(query: unknown): IdbRequest<unknown>;
}
interface IdbStore {
  put(value: unknown, key?: unknown): IdbRequest;
  count(query?: unknown): IdbRequest<number>;
  add(value: unknown): IdbRequest;
  get(key: unknown): IdbRequest<unknown>;
  delete(key: unknown): IdbRequest;
  getAll(): IdbRequest<unknown[]>;
  openCursor(query?: unknown, direction?: "next" | "prev"): IdbRequest<IdbCursor | null>;
  index(name: string): IdbIndex;
  createIndex(name: string, keyPath: string | string[], options?: { unique?: boolean }): IdbIndex;
}
interface IdbTransaction {
  objectStore(name: string): IdbStore;
  oncomplete: ((this: unknown, ev: unknown) => unknown) | null;
  onerror: ((this: unknown, ev: unknown) => unknown) | null;
  onabort: ((this: unknown, ev: unknown) => unknown) | null;
  error: unknown;
}
interface IdbDatabase {
  transaction(stores: string[], mode: "readonly" | "readwrite", options?: { durability?: "strict" | "relaxed" | "default" }): IdbTransaction;
  createObjectStore(name: string, options?: { keyPath?: string | string[]; autoIncrement?: boolean }): IdbStore;
  close(): void;
}
/** An IndexedDB factory (`globalThis.indexedDB`, or fake-indexeddb's). */
export interface IdbFactory {
  open(name: string, version?: number): IdbOpenRequest;
}
/** IDBKeyRange's one static this adapter needs. */
export interface IdbKeyRangeStatics {
  bound(lower: unknown, upper: unknown, lowerOpen?: boolean, upperOpen?: boolean): unknown;
}

const CURSORS = "cursors";
const MESSAGES = "messages";
const OUTBOX = "outbox";
const VERSION = 1;

/** Settings of the IndexedDB client store. */
export interface IndexedDbClientStoreOptions {
  /** The database name (one per signed-in user, e.g. `microchat-${userId}`). */
  readonly name: string;
  /** Default: globalThis.indexedDB. */
  readonly indexedDB?: IdbFactory;
  /** Default: globalThis.IDBKeyRange. */
  readonly keyRange?: IdbKeyRangeStatics;
  readonly historyMax?: number;
}

interface CursorRecord {
  conversationId: string;
  lastSeq: number;
  readSeq: number;
}

/**
 * A ClientStore in IndexedDB, for browsers: stores `cursors` (by conversation), `messages`
 * (by [conversation, seq]) and `outbox` (insertion-ordered, unique clientMsgId). Each write is
 * one transaction with strict durability, resolved on its `complete` event.
 */
export class IndexedDbClientStore implements ClientStore {
  readonly #db: IdbDatabase;
  readonly #range: IdbKeyRangeStatics;
  readonly #historyMax: number;

  private constructor(db: IdbDatabase, range: IdbKeyRangeStatics, historyMax: number) {
    this.#db = db;
    this.#range = range;
    this.#historyMax = historyMax;
  }

  /** Opens (and creates or upgrades) the database. */
  static async open(options: IndexedDbClientStoreOptions): Promise<IndexedDbClientStore> {
    const g = globalThis as { indexedDB?: IdbFactory; IDBKeyRange?: IdbKeyRangeStatics };
    const factory = options.indexedDB ?? g.indexedDB;
    const range = options.keyRange ?? g.IDBKeyRange;
    if (factory === undefined || range === undefined) throw new Error("no IndexedDB in this runtime: pass options.indexedDB and options.keyRange");
    const request = factory.open(options.name, VERSION);
    request.onupgradeneeded = () => {
      const db = request.result;
      db.createObjectStore(CURSORS, { keyPath: "conversationId" });
      db.createObjectStore(MESSAGES, { keyPath: ["conversationId", "seq"] });
      db.createObjectStore(OUTBOX, { autoIncrement: true }).createIndex("clientMsgId", "clientMsgId", { unique: true });
    };
    const db = await done(request);
    return new IndexedDbClientStore(db, range, options.historyMax ?? HISTORY_MAX_DEFAULT);
  }

  async load(): Promise<StoredClientState> {
    const tx = this.#db.transaction([CURSORS, OUTBOX], "readonly");
    const cursors = done(tx.objectStore(CURSORS).getAll()) as Promise<CursorRecord[]>;
    const outbox = done(tx.objectStore(OUTBOX).getAll()) as Promise<PendingSend[]>;
    return { cursors: (await cursors).map((c) => ({ conversationId: c.conversationId, lastSeq: c.lastSeq, readSeq: c.readSeq })), outbox: await outbox };
  }

  async appendMessages(conversationId: string, messages: readonly ClientMessage[], lastSeq: number): Promise<void> {
    await this.#write([CURSORS, MESSAGES], (tx) => {
      const store = tx.objectStore(MESSAGES);
      for (const m of messages) store.put({ ...m, conversationId });
      this.#moveCursor(tx, conversationId, (c) => (c.lastSeq = Math.max(c.lastSeq, lastSeq)));
      const all = this.#range.bound([conversationId, -Infinity], [conversationId, Infinity]);
      const count = store.count(all);
      count.onsuccess = () => {
        let excess = count.result - this.#historyMax;
        if (excess <= 0) return;
        const scan = store.openCursor(all, "next");
        scan.onsuccess = () => {
          const cursor = scan.result;
          if (cursor === null || excess <= 0) return;
          cursor.delete();
          excess--;
          cursor.continue();
        };
      };
    });
  }

  async setReadSeq(conversationId: string, readSeq: number): Promise<void> {
    await this.#write([CURSORS], (tx) => this.#moveCursor(tx, conversationId, (c) => (c.readSeq = Math.max(c.readSeq, readSeq))));
  }

  async messages(conversationId: string, query?: HistoryQuery): Promise<ClientMessage[]> {
    const limit = pageLimit(query);
    if (limit === 0) return [];
    const tx = this.#db.transaction([MESSAGES], "readonly");
    const range = this.#range.bound([conversationId, -Infinity], [conversationId, query?.beforeSeq ?? Infinity], false, query?.beforeSeq !== undefined);
    const out: ClientMessage[] = [];
    const scan = tx.objectStore(MESSAGES).openCursor(range, "prev");
    await new Promise<void>((resolve, reject) => {
      scan.onsuccess = () => {
        const cursor = scan.result;
        if (cursor === null) return resolve();
        out.push(cursor.value as ClientMessage);
        if (out.length >= limit) return resolve();
        cursor.continue();
      };
      scan.onerror = () => reject(toError(scan.error));
    });
    return out.reverse();
  }

  async removeConversation(conversationId: string): Promise<void> {
    await this.#write([CURSORS, MESSAGES], (tx) => {
      tx.objectStore(CURSORS).delete(conversationId);
      tx.objectStore(MESSAGES).delete(this.#range.bound([conversationId, -Infinity], [conversationId, Infinity]));
    });
  }

  async addOutbox(send: PendingSend): Promise<void> {
    await this.#write([OUTBOX], (tx) => {
      const store = tx.objectStore(OUTBOX);
      const existing = store.index("clientMsgId").getKey(send.clientMsgId);
      existing.onsuccess = () => {
        if (existing.result === undefined) store.add({ clientMsgId: send.clientMsgId, conversationId: send.conversationId, toUserId: send.toUserId, contentType: send.contentType, data: send.data });
      };
    });
  }

  async removeOutbox(clientMsgId: string): Promise<void> {
    await this.#write([OUTBOX], (tx) => {
      const store = tx.objectStore(OUTBOX);
      const key = store.index("clientMsgId").getKey(clientMsgId);
      key.onsuccess = () => {
        if (key.result !== undefined) store.delete(key.result);
      };
    });
  }

  async close(): Promise<void> {
    this.#db.close();
  }

  #moveCursor(tx: IdbTransaction, conversationId: string, move: (c: CursorRecord) => void): void {
    const store = tx.objectStore(CURSORS);
    const get = store.get(conversationId);
    get.onsuccess = () => {
      const c = (get.result as CursorRecord | undefined) ?? { conversationId, lastSeq: 0, readSeq: 0 };
      move(c);
      store.put(c);
    };
  }

  /** Runs `body` in one readwrite transaction; resolves once it committed. */
  #write(stores: string[], body: (tx: IdbTransaction) => void): Promise<void> {
    const tx = this.#db.transaction(stores, "readwrite", { durability: "strict" });
    return new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(toError(tx.error));
      tx.onabort = () => reject(toError(tx.error ?? new Error("transaction aborted")));
      body(tx);
    });
  }
}

function done<T>(request: IdbRequest<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(toError(request.error));
  });
}

function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
