import type { ClientStore } from "../../../client/client-store.js";
import { IndexedDbClientStore, type IdbFactory, type IdbKeyRangeStatics } from "../../../client/indexeddb-client-store.js";
import { MemoryClientStore } from "../../../client/memory-client-store.js";
import type { SessionInfo } from "../model/chat-state.js";

/** How long opening IndexedDB may take before the page falls back to memory. */
const OPEN_TIMEOUT_MS = 5_000;

/** A session-list entry as the server last described it (SessionInfo without the SDK's cursor). */
export type CachedSession = Omit<SessionInfo, "cursorSeq">;

/**
 * The server's session list as last seen, kept beside the SDK's store: the ClientStore keeps
 * messages, cursors and the outbox of the conversations the SDK delivered, but no titles
 * and nothing of conversations never opened, and a page started without its server still
 * lists them all. Writes are whole records, one transaction per call.
 */
export interface SessionCache {
  load(): Promise<CachedSession[]>;
  put(sessions: readonly CachedSession[]): Promise<void>;
  remove(conversationId: string): Promise<void>;
}

/** Where this page keeps what the user has seen: the SDK's ClientStore and the session list. */
export interface DeviceStorage {
  /** "indexeddb": kept on this device across reloads; "memory": this page only. */
  readonly kind: "indexeddb" | "memory";
  /** Why it is memory, in words ("" for IndexedDB). */
  readonly why: string;
  readonly clientStore: ClientStore;
  readonly sessions: SessionCache;
  close(): Promise<void>;
}

/** An IndexedDB to use instead of the page's own (tests in Node use fake-indexeddb). */
export interface IndexedDbImpl {
  readonly factory: IdbFactory;
  readonly keyRange: IdbKeyRangeStatics;
}

/** The database name of one signed-in user of one gateway (IndexedDB is per origin already). */
export function storageName(baseUrl: string, userId: string): string {
  return `microchat:${baseUrl}:${userId}`;
}

/**
 * Opens the user's storage: IndexedDB when the page has it (two databases: the SDK's
 * ClientStore under `name`, the session list under `name + ":sessions"`), memory otherwise (no IndexedDB,
 * private modes that refuse it, an open that fails or hangs).
 */
export async function openDeviceStorage(name: string, impl?: IndexedDbImpl): Promise<DeviceStorage> {
  const g = globalThis as { indexedDB?: IdbFactory; IDBKeyRange?: IdbKeyRangeStatics };
  const factory = impl?.factory ?? g.indexedDB;
  const keyRange = impl?.keyRange ?? g.IDBKeyRange;
  if (factory === undefined || keyRange === undefined) return memoryStorage("this browser gives the page no IndexedDB");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("IndexedDB did not open in time")), OPEN_TIMEOUT_MS)));
  try {
    const [clientStore, sessions] = await Promise.race([Promise.all([IndexedDbClientStore.open({ name, indexedDB: factory, keyRange }), openSessions(factory, `${name}:sessions`)]), timeout]);
    return {
      kind: "indexeddb",
      why: "",
      clientStore,
      sessions: sessions.cache,
      async close() {
        sessions.close();
        await clientStore.close();
      },
    };
  } catch (error) {
    return memoryStorage(`IndexedDB could not be opened (${error instanceof Error ? error.message : String(error)})`);
  } finally {
    clearTimeout(timer);
  }
}

/** Storage for this page only. */
export function memoryStorage(why: string): DeviceStorage {
  const sessions = new Map<string, CachedSession>();
  const clientStore = new MemoryClientStore();
  return {
    kind: "memory",
    why,
    clientStore,
    sessions: {
      load: async () => [...sessions.values()],
      put: async (list) => void list.forEach((s) => sessions.set(s.conversationId, s)),
      remove: async (id) => void sessions.delete(id),
    },
    close: () => clientStore.close(),
  };
}

/* The few IndexedDB calls the session cache makes, typed as structurally as the SDK's adapter does. */
interface Req<T> {
  result: T;
  error: unknown;
  onsuccess: (() => void) | null;
  onerror: (() => void) | null;
}
interface SessionDb {
  transaction(
    stores: string[],
    mode: "readonly" | "readwrite",
  ): {
    objectStore(name: string): { getAll(): Req<unknown[]>; put(value: unknown): Req<unknown>; delete(key: string): Req<unknown> };
    oncomplete: (() => void) | null;
    onerror: (() => void) | null;
    onabort: (() => void) | null;
    error: unknown;
  };
  createObjectStore(name: string, options: { keyPath: string }): unknown;
  close(): void;
}

const SESSIONS = "sessions";

async function openSessions(factory: IdbFactory, name: string): Promise<{ cache: SessionCache; close(): void }> {
  const request = factory.open(name, 1) as unknown as Req<SessionDb> & { onupgradeneeded: (() => void) | null };
  request.onupgradeneeded = () => void request.result.createObjectStore(SESSIONS, { keyPath: "conversationId" });
  const db = await settle(request);
  const write = (body: (store: ReturnType<ReturnType<SessionDb["transaction"]>["objectStore"]>) => void) =>
    new Promise<void>((resolve, reject) => {
      const tx = db.transaction([SESSIONS], "readwrite");
      tx.oncomplete = () => resolve();
      tx.onerror = tx.onabort = () => reject(tx.error instanceof Error ? tx.error : new Error(String(tx.error)));
      body(tx.objectStore(SESSIONS));
    });
  const cache: SessionCache = {
    load: async () => (await settle(db.transaction([SESSIONS], "readonly").objectStore(SESSIONS).getAll())) as CachedSession[],
    put: (sessions) => write((store) => sessions.forEach((s) => store.put(s))),
    remove: (conversationId) => write((store) => store.delete(conversationId)),
  };
  return { cache, close: () => db.close() };
}

function settle<T>(request: Req<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error instanceof Error ? request.error : new Error(String(request.error)));
  });
}
