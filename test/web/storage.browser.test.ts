import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { SyncRequestSchema, SyncResponseSchema } from "../../gen/im/v1/gateway_pb.js";
import { freePort } from "../support/server-process.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import {
  chromiumPath,
  connection,
  conversationEntry,
  launchChromium,
  openConversation,
  outgoing,
  sendText,
  signIn,
  startChat,
  unreadOf,
  userPage,
  waitForState,
  waitForThread,
  waitUntil,
} from "../support/browser.js";

const available = chromiumPath() !== "";

/** Counts the page's FetchRange calls (history the server had to send again). */
function countFetchRange(page: Page): { readonly n: number } {
  const counter = { n: 0 };
  page.on("request", (r) => {
    if (r.url().endsWith("/im.v1.GatewayService/FetchRange")) counter.n++;
  });
  return counter;
}

/** What the page's Sync calls asked from (conversation -> last_seq) and what they were sent ("conversation:seq"). */
interface SyncLog {
  readonly cursors: Map<string, number>[];
  readonly fetched: string[];
  /** Calls whose answer has not been read yet. */
  readonly reading: Set<Promise<void>>;
}

/** Records the page's Sync calls (Connect, binary): the cursors they carry and the messages they return. */
function recordSyncs(page: Page): SyncLog {
  const log: SyncLog = { cursors: [], fetched: [], reading: new Set() };
  page.on("requestfinished", (request) => {
    if (!request.url().endsWith("/im.v1.GatewayService/Sync")) return;
    const read = (async () => {
      const sent = fromBinary(SyncRequestSchema, request.postDataBuffer() ?? new Uint8Array());
      log.cursors.push(new Map(sent.cursors.map((c) => [c.conversationId, Number(c.lastSeq)])));
      const response = await request.response();
      if (response?.status() !== 200) return;
      const answer = fromBinary(SyncResponseSchema, await response.body());
      for (const update of answer.sessions) for (const m of update.messages) log.fetched.push(`${m.conversationId}:${m.seq}`);
    })().catch(() => undefined);
    log.reading.add(read);
    void read.then(() => log.reading.delete(read));
  });
  return log;
}

describe.skipIf(!available)("the web client's history on the device (IndexedDB in Chromium)", () => {
  let chrome: { browser: Browser; close(): Promise<void> };
  const cleanups: (() => Promise<void> | void)[] = [];
  beforeAll(async () => {
    chrome = await launchChromium();
  });
  afterAll(async () => {
    await chrome?.close();
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
    for (const context of chrome.browser.contexts()) await context.close();
  });

  /** A server on the embedded store in `dataDir`, on `port`: stopped and started again on the same data. */
  async function server(dataDir: string, port: number): Promise<TestServer> {
    const t = await startTestServer(["--store", "sqlite", "--data-dir", dataDir, "--port", String(port), "--reconnect-spread-ms", "0"]);
    cleanups.push(() => t.stop().catch(() => undefined));
    return t;
  }

  it(
    "shows the stored history after a reload while the server is down, and sends what was written offline once, with its client_msg_id",
    { timeout: 150_000 },
    async () => {
      const dataDir = mkdtempSync(path.join(os.tmpdir(), "im-web-storage-"));
      cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
      const port = await freePort();
      let t = await server(dataDir, port);
      const url = `http://127.0.0.1:${port}/`;
      const alice = (await userPage(chrome.browser, url, "alice")).page;
      const bob = (await userPage(chrome.browser, url, "bob")).page;
      await alice.getByTestId("storage").waitFor();
      expect(await alice.getByTestId("storage").getAttribute("data-kind")).toBe("indexeddb");

      await startChat(alice, "bob");
      for (const text of ["one", "two"]) await sendText(alice, text);
      await waitUntil(() => unreadOf(bob, "alice"), (n) => n === 2, "bob sees the chat");
      await openConversation(bob, "alice");
      await sendText(bob, "three");
      await waitForThread(alice, ["one", "two", "three"]);
      // A group alice never opened: listed offline too, by its title.
      const sdk = await t.client("carol");
      const { conversation } = await sdk.conversations.createGroup({ title: "team", memberUserIds: ["alice"] });
      await sdk.send({ conversationId: conversation!.conversationId, body: "hello team" });
      await waitUntil(() => unreadOf(alice, "team"), (n) => n === 1, "alice sees the group");

      // The page's service worker has kept the page itself, so it opens while the server is down.
      await alice.evaluate(async () => void (await navigator.serviceWorker.ready));
      await t.stop();
      await waitForState(alice, "offline");
      const fetches = countFetchRange(alice);
      await alice.reload();
      await waitUntil(() => connection(alice).getAttribute("data-state"), (s) => s === "offline" || s === "connecting", "the reloaded page offline");
      // Before any server answered: the list, previews, unread counts and the thread, from the device.
      await waitUntil(() => unreadOf(alice, "team"), (n) => n === 1, "the stored group with its unread count");
      expect(await conversationEntry(alice, "bob").locator(".preview").textContent()).toBe("three");
      await openConversation(alice, "bob");
      await waitForThread(alice, ["one", "two", "three"]);
      expect(await connection(alice).getAttribute("data-state")).not.toBe("live");

      // Written while the server is down, then the page is reloaded: still there, still pending.
      await sendText(alice, "written offline");
      await waitUntil(() => outgoing(alice), (o) => o.length === 1 && o[0] === "pending:written offline", "the offline send pending");
      const clientMsgId = await alice.locator("li.message.outgoing").getAttribute("data-client-msg-id");
      expect(clientMsgId).toMatch(/^[0-9a-f]{32}$/);
      await alice.reload();
      await openConversation(alice, "bob");
      await waitUntil(() => outgoing(alice), (o) => o.length === 1 && o[0] === "pending:written offline", "the send pending after the reload");
      expect(await alice.locator("li.message.outgoing").getAttribute("data-client-msg-id")).toBe(clientMsgId);

      // Back: the send goes out once, with the same client_msg_id; nothing was fetched again.
      const reconnect = recordSyncs(alice);
      t = await server(dataDir, port);
      await waitForState(alice, "live", 30_000);
      const all = ["one", "two", "three", "written offline"];
      await waitForThread(alice, all, 30_000);
      await waitForThread(bob, all, 30_000);
      const row = bob.locator('li.message[data-status="delivered"]', { hasText: "written offline" });
      expect(await row.count()).toBe(1);
      expect(await row.getAttribute("data-client-msg-id")).toBe(clientMsgId);
      expect(await bob.locator('li.message[data-status="delivered"]').evaluateAll((rows) => rows.map((r) => Number(r.getAttribute("data-seq"))))).toEqual([1, 2, 3, 4]);
      expect(fetches.n).toBe(0);
      // Sync resumed from the stored cursors (the group's one message, bob's chat up to "three"):
      // nothing alice stored came again.
      await Promise.all(reconnect.reading);
      expect(reconnect.cursors.length).toBeGreaterThan(0);
      expect(reconnect.cursors[0]!.get(conversation!.conversationId)).toBe(1);
      expect(reconnect.cursors[0]!.get("d:alice:bob")).toBe(3);
      expect(reconnect.fetched.filter((m) => m !== "d:alice:bob:4")).toEqual([]);

      // The server's list only adds what is new: a message sent while the page was closed
      // arrives after the stored ones, without fetching history.
      await alice.goto("about:blank");
      await sendText(bob, "while you were away");
      const reload = recordSyncs(alice);
      await alice.goto(url);
      await waitForState(alice, "live", 30_000);
      await openConversation(alice, "bob");
      await waitForThread(alice, [...all, "while you were away"]);
      expect(fetches.n).toBe(0);
      // Only the one message missing from the device was fetched, by a Sync from the stored cursor.
      await Promise.all(reload.reading);
      expect(reload.cursors[0]!.get("d:alice:bob")).toBe(4);
      expect(reload.fetched).toEqual(["d:alice:bob:5"]);
    },
  );

  it("keeps history in the page's memory when the browser gives it no IndexedDB, and says so", { timeout: 60_000 }, async () => {
    const t = await startTestServer();
    cleanups.push(() => t.stop());
    const context = await chrome.browser.newContext();
    await context.addInitScript(() => Object.defineProperty(window, "indexedDB", { get: () => undefined, configurable: true }));
    const alice = await context.newPage();
    await signIn(alice, `${t.baseUrl}/`, "alice");
    const note = alice.getByTestId("storage");
    await note.waitFor();
    expect(await note.getAttribute("data-kind")).toBe("memory");
    expect(await note.textContent()).toContain("History kept in this page only (this browser gives the page no IndexedDB)");
    const bob = (await userPage(chrome.browser, t.baseUrl, "bob")).page;
    await startChat(alice, "bob");
    await sendText(alice, "from memory");
    await waitUntil(() => unreadOf(bob, "alice"), (n) => n === 1, "bob's copy");
    await waitForThread(alice, ["from memory"]);
  });
});
