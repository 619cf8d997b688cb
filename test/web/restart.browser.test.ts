import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { spawnServer, type ServerProcess } from "../support/server-process.js";
import { chromiumPath, connection, launchChromium, openConversation, sendText, startChat, unreadOf, userPage, waitForState, waitForThread, waitUntil } from "../support/browser.js";

const available = chromiumPath() !== "";

describe.skipIf(!available)("the web client across a server restart", () => {
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
  });

  it("shows offline on both pages when the server is killed, recovers when it is back, and loses or doubles nothing", { timeout: 120_000 }, async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), "im-web-restart-"));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    let server: ServerProcess = await spawnServer(["--data-dir", dataDir, "--workers", "1"]);
    cleanups.push(() => void server.child.kill("SIGKILL"));
    const url = `http://127.0.0.1:${server.port}/`;
    const alice: Page = (await userPage(chrome.browser, url, "alice")).page;
    const bob: Page = (await userPage(chrome.browser, url, "bob")).page;
    cleanups.push(async () => {
      for (const context of chrome.browser.contexts()) await context.close();
    });

    await startChat(alice, "bob");
    await sendText(alice, "before 1");
    await waitUntil(() => unreadOf(bob, "alice"), (n) => n === 1, "bob sees the chat");
    await openConversation(bob, "alice");
    await sendText(bob, "before 2");
    const before = ["before 1", "before 2"];
    for (const p of [alice, bob]) await waitForThread(p, before);

    // A send in flight when the server dies: the server is frozen first, so the request is
    // on the wire, unanswered, when the kill cuts its connection. It must be sent again.
    server.child.kill("SIGSTOP");
    await sendText(alice, "in flight");
    await waitUntil(() => alice.locator('li.message.outgoing[data-status="pending"]').count(), (n) => n === 1, "the send on its way");
    await new Promise((r) => setTimeout(r, 300));
    server.child.kill("SIGKILL");
    await server.exited;
    for (const p of [alice, bob]) await waitForState(p, "offline");
    expect(await connection(alice).textContent()).toContain("Offline, reconnecting");

    // Sent while the server is down: pending until it is back.
    await sendText(alice, "while down (alice)");
    await sendText(bob, "while down (bob)");
    await waitUntil(() => alice.locator('li.message.outgoing[data-status="pending"]').count(), (n) => n >= 1, "alice's send pending");

    server = await spawnServer(["--data-dir", dataDir, "--workers", "1"], { port: server.port });
    for (const p of [alice, bob]) await waitForState(p, "live", 30_000);

    // Both pages end with the same log, each message once; alice's two sends in her order.
    const logOf = async (p: Page) => p.locator('li.message[data-status="delivered"] .text').allTextContents();
    await waitUntil(
      async () => [await logOf(alice), await logOf(bob)],
      ([a, b]) => a!.length === 5 && JSON.stringify(a) === JSON.stringify(b),
      "both pages to show all five messages",
      30_000,
    );
    const log = await logOf(alice);
    expect(log.slice(0, 2)).toEqual(before);
    expect([...log].sort()).toEqual([...before, "in flight", "while down (alice)", "while down (bob)"].sort());
    expect(log.indexOf("in flight")).toBeLessThan(log.indexOf("while down (alice)"));
    for (const p of [alice, bob]) await waitForThread(p, log);
    const seqs = await alice.locator('li.message[data-status="delivered"]').evaluateAll((rows) => rows.map((r) => Number(r.getAttribute("data-seq"))));
    expect(seqs).toEqual([1, 2, 3, 4, 5]);

    // A page loaded now reads the same log from the store.
    const carolView: Page = (await userPage(chrome.browser, url, "bob")).page;
    await openConversation(carolView, "alice");
    await waitForThread(carolView, log);
  });
});
