import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { IDBFactory, IDBKeyRange } from "fake-indexeddb";
import { afterAll } from "vitest";
import { IndexedDbClientStore, type IdbFactory, type IdbKeyRangeStatics } from "../../client/indexeddb-client-store.js";
import { MemoryClientStore } from "../../client/memory-client-store.js";
import { SqliteClientStore } from "../../client/sqlite-client-store.js";
import { clientStoreContract } from "./client-store-contract.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "client-store-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

clientStoreContract("MemoryClientStore", async ({ historyMax }) => ({ store: new MemoryClientStore({ historyMax }) }), { durable: false });

clientStoreContract("SqliteClientStore (node:sqlite)", async ({ historyMax }) => {
  const file = path.join(dir, `store-${++n}.sqlite`);
  return { store: new SqliteClientStore({ path: file, historyMax }), reopen: async () => new SqliteClientStore({ path: file, historyMax }) };
}, { durable: true });

// IndexedDB through fake-indexeddb (an in-memory IndexedDB for Node); a run in a real browser
// comes with the web client's browser tests.
clientStoreContract("IndexedDbClientStore (fake-indexeddb)", async ({ historyMax }) => {
  const factory = new IDBFactory() as unknown as IdbFactory;
  const keyRange = IDBKeyRange as unknown as IdbKeyRangeStatics;
  const name = `client-${++n}`;
  const openIt = () => IndexedDbClientStore.open({ name, indexedDB: factory, keyRange, historyMax });
  return { store: await openIt(), reopen: openIt };
}, { durable: true });
