import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { DatabaseSync } from "node:sqlite";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { StoreUnavailableError } from "../../../server/core/result.js";
import type { NewMessage } from "../../../server/store/message-store.js";
import { openSqliteMessageStore, SQLITE_SCHEMA_VERSION, type SqliteMessageStore } from "../../../server/store/sqlite-message-store.js";
import { describeMessageStoreContract } from "./message-store-contract.js";

const dir = mkdtempSync(join(tmpdir(), "sqlite-message-store-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let fileCounter = 0;
let lastPath = "";
function freshPath(): string {
  lastPath = join(dir, `nested/db-${++fileCounter}.sqlite`);
  return lastPath;
}

describeMessageStoreContract("SqliteMessageStore in memory", () => openSqliteMessageStore({ path: ":memory:" }));

describeMessageStoreContract("SqliteMessageStore on a file", () => openSqliteMessageStore({ path: freshPath() }), {
  durable: { reopen: () => openSqliteMessageStore({ path: lastPath }) },
});

function message(senderId: string, clientMsgId: string): NewMessage {
  return {
    conversationId: "g:shared",
    senderId,
    clientMsgId,
    messageId: `${senderId}-${clientMsgId}`,
    sentAtMs: 1,
    contentType: "text/plain",
    data: new TextEncoder().encode(clientMsgId),
  };
}

describe("SqliteMessageStore on a shared file", () => {
  const opened: SqliteMessageStore[] = [];
  const openOn = (path: string, busyTimeoutMs?: number): SqliteMessageStore => {
    const store = openSqliteMessageStore({ path, ...(busyTimeoutMs === undefined ? {} : { busyTimeoutMs }) });
    opened.push(store);
    return store;
  };
  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close();
  });

  it("keeps seqs unique and the chain exact when two stores (worker processes) interleave appends", async () => {
    const path = freshPath();
    const a = openOn(path);
    const b = openOn(path);
    await a.createGroup({ id: "g:shared", title: "", ownerId: "w1", createdAtMs: 1 }, ["w2"]);
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) => (i % 3 === 0 ? a : b).append(message(i % 3 === 0 ? "w1" : "w2", `c${i}`))),
    );
    // Each one retries its first ten appends through the other store: all duplicates.
    for (let i = 0; i < 10; i++) {
      const retry = await (i % 3 === 0 ? b : a).append(message(i % 3 === 0 ? "w1" : "w2", `c${i}`));
      expect(retry).toEqual({ message: results[i]!.message, duplicate: true });
    }
    expect(results.map((r) => r.message.seq).sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    for (const store of [a, b]) {
      const log = await store.readRange("g:shared", 0, undefined, 1_000);
      expect(log.map((m) => [m.seq, m.prevSeq])).toEqual(log.map((_, i) => [i + 1, i]));
      expect((await store.getConversation("g:shared"))?.lastSeq).toBe(100);
    }
  });

  it("keeps seqs unique and the chain exact when two real processes append at once", async () => {
    const path = freshPath();
    const setup = openOn(path);
    await setup.createGroup({ id: "g:shared", title: "", ownerId: "w1", createdAtMs: 1 }, ["w2"]);
    const worker = join(dir, "append-worker.mts");
    const storeUrl = new URL("../../../server/store/sqlite-message-store.ts", import.meta.url).href;
    writeFileSync(
      worker,
      `import { existsSync, writeFileSync } from "node:fs";
      import { openSqliteMessageStore } from ${JSON.stringify(storeUrl)};
      const [path, sender, count] = process.argv.slice(2);
      const store = openSqliteMessageStore({ path });
      // A barrier, so the two processes really append at the same time.
      writeFileSync(path + "." + sender + ".ready", "");
      while (!existsSync(path + ".w1.ready") || !existsSync(path + ".w2.ready")) await new Promise((r) => setTimeout(r, 2));
      for (let i = 0; i < Number(count); i++) {
        await store.append({ conversationId: "g:shared", senderId: sender, clientMsgId: "c" + i, messageId: sender + i,
          sentAtMs: 1, contentType: "text/plain", data: new Uint8Array([i & 0xff]) });
        // Like a worker between requests; without a pause SQLite's busy wait lets one writer hog the lock.
        await new Promise((r) => setTimeout(r, 1));
      }
      await store.close();`,
    );
    const run = (sender: string) => promisify(execFile)(process.execPath, ["--import", "tsx", worker, path, sender, "150"]);
    await Promise.all([run("w1"), run("w2")]);
    const log = await setup.readRange("g:shared", 0, undefined, 1_000);
    expect(log.map((m) => [m.seq, m.prevSeq])).toEqual(Array.from({ length: 300 }, (_, i) => [i + 1, i]));
    for (const sender of ["w1", "w2"]) {
      expect(log.filter((m) => m.senderId === sender).map((m) => m.clientMsgId)).toEqual(Array.from({ length: 150 }, (_, i) => `c${i}`));
    }
  });

  it("reopens a file written with the schema, which keeps its version", async () => {
    const path = freshPath();
    const first = openOn(path);
    await first.createGroup({ id: "g:shared", title: "kept", ownerId: "w1", createdAtMs: 1 }, []);
    await first.append(message("w1", "c1"));
    await first.close();
    const second = openOn(path);
    expect(await second.getConversation("g:shared")).toMatchObject({ title: "kept", lastSeq: 1, memberCount: 1 });
    await second.close();
    const raw = new DatabaseSync(path);
    try {
      expect(raw.prepare("PRAGMA user_version").get()).toEqual({ user_version: SQLITE_SCHEMA_VERSION });
      expect(raw.prepare("PRAGMA journal_mode").get()).toEqual({ journal_mode: "wal" });
    } finally {
      raw.close();
    }
  });

  it("refuses a file with a newer schema", () => {
    const path = freshPath();
    openOn(path);
    const raw = new DatabaseSync(path);
    raw.exec(`PRAGMA user_version = ${SQLITE_SCHEMA_VERSION + 1}`);
    raw.close();
    expect(() => openSqliteMessageStore({ path })).toThrow(/newer/);
  });

  it("rejects with StoreUnavailableError, keeping the cause, while another process holds the write lock", async () => {
    const path = freshPath();
    const store = openOn(path, 20);
    await store.createGroup({ id: "g:shared", title: "", ownerId: "w1", createdAtMs: 1 }, []);
    const other = new DatabaseSync(path);
    other.exec("BEGIN IMMEDIATE");
    try {
      const error: unknown = await store.append(message("w1", "c1")).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StoreUnavailableError);
      expect((error as StoreUnavailableError).cause).toMatchObject({ errcode: 5 });
    } finally {
      other.exec("ROLLBACK");
      other.close();
    }
    expect((await store.append(message("w1", "c1"))).message.seq).toBe(1);
  });
});
