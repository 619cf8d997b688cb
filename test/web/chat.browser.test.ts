import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { HISTORY_PAGE } from "../../web/src/model/chat-state.js";
import { startTestServer, waitFor, type TestServer } from "../support/test-server.js";
import {
  chromiumPath,
  conversationEntry,
  deliveredTexts,
  launchChromium,
  openConversation,
  outgoing,
  sendText,
  startChat,
  unreadOf,
  userPage,
  waitForThread,
  waitUntil,
} from "../support/browser.js";

const available = chromiumPath() !== "";
const activeId = (p: Page) => p.evaluate<string>("document.activeElement ? document.activeElement.id : ''");
if (!available) process.stderr.write("WARNING: no Chromium for this run: the web client's browser tests are skipped\n");

describe.skipIf(!available)("the web client in Chromium", () => {
  let chrome: { browser: Browser; close(): Promise<void> };
  let t: TestServer;
  beforeAll(async () => {
    chrome = await launchChromium();
  });
  afterAll(async () => {
    await chrome?.close();
  });
  afterEach(async () => {
    for (const context of chrome.browser.contexts()) await context.close();
    await t?.stop();
  });

  const page = async (user: string): Promise<Page> => (await userPage(chrome.browser, t.baseUrl, user)).page;

  it("lets two users chat both ways, each message once and in order", { timeout: 60_000 }, async () => {
    t = await startTestServer();
    const alice = await page("alice");
    const bob = await page("bob");
    await startChat(alice, "bob");
    await sendText(alice, "hello bob");
    await waitUntil(() => unreadOf(bob, "alice"), (n) => n === 1, "bob's unread count");
    await openConversation(bob, "alice");
    const expected = ["hello bob"];
    // Alternate, with bursts, so sends and pushes cross on the wire.
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < 3; i++) {
        await sendText(bob, `bob ${round}.${i}`);
        expected.push(`bob ${round}.${i}`);
      }
      await waitForThread(alice, expected);
      await sendText(alice, `alice ${round}`);
      expected.push(`alice ${round}`);
      await waitForThread(bob, expected);
    }
    await waitForThread(alice, expected);
    // Each page shows every message once, in log order (seqs 1..n).
    for (const p of [alice, bob]) {
      const seqs = await p.locator('li.message[data-status="delivered"]').evaluateAll((rows) => rows.map((r) => Number(r.getAttribute("data-seq"))));
      expect(seqs).toEqual(expected.map((_, i) => i + 1));
    }
    // Both read everything; the list shows no unread and the newest preview.
    await waitUntil(() => unreadOf(alice, "bob"), (n) => n === 0, "alice has read all");
    expect(await conversationEntry(bob, "alice").locator(".preview").textContent()).toBe("alice 3");
  });

  it("shows a user who was offline exactly the history, with unread counts, paging back with FetchRange", { timeout: 90_000 }, async () => {
    t = await startTestServer();
    const sdk = await t.client("alice");
    await waitFor(() => sdk.idle(), "alice's SDK live");
    const long = Array.from({ length: HISTORY_PAGE + 12 }, (_, i) => `direct ${i + 1}`);
    for (const body of long) await sdk.send({ toUserId: "carol", body });
    const { conversation } = await sdk.conversations.createGroup({ title: "team", memberUserIds: ["bob", "carol"] });
    const group = ["plan at 10", "agenda attached", "see you"];
    for (const body of group) await sdk.send({ conversationId: conversation!.conversationId, body });

    const carol = await page("carol");
    await waitUntil(() => unreadOf(carol, "team"), (n) => n === group.length, "the group's unread count");
    expect(await unreadOf(carol, "alice")).toBe(long.length);
    // Most recent activity first.
    expect(await carol.locator("button.conversation .name").allTextContents()).toEqual(["team (group)", "alice"]);

    await openConversation(carol, "team");
    await waitForThread(carol, group);
    await waitUntil(() => unreadOf(carol, "team"), (n) => n === 0, "the group read");

    await openConversation(carol, "alice");
    // The newest page first, then older pages on request, until the start of the log.
    await waitForThread(carol, long.slice(-HISTORY_PAGE));
    await carol.getByRole("button", { name: "Load older messages" }).click();
    await waitForThread(carol, long);
    await carol.getByText("Start of the conversation").waitFor();
    await waitUntil(() => unreadOf(carol, "alice"), (n) => n === 0, "the direct chat read");
    expect(new Set(await deliveredTexts(carol)).size).toBe(long.length);
  });

  it("loads older messages when scrolled to the top, keeps the place, and jumps to the newest on request", { timeout: 90_000 }, async () => {
    t = await startTestServer();
    const sdk = await t.client("alice");
    await waitFor(() => sdk.idle(), "alice's SDK live");
    const history = Array.from({ length: HISTORY_PAGE + 30 }, (_, i) => `old ${i + 1}`);
    for (const body of history) await sdk.send({ toUserId: "carol", body });
    const carol = await page("carol");
    await openConversation(carol, "alice");
    await waitForThread(carol, history.slice(-HISTORY_PAGE));
    await waitUntil(() => unreadOf(carol, "alice"), (n) => n === 0, "read at the bottom");
    const scroller = carol.locator(".scroller");
    await scroller.evaluate((el) => (el.scrollTop = 0));
    await waitForThread(carol, history);
    // The place is kept: the message that was at the top is still on screen, not the first one.
    expect(await scroller.evaluate((el) => el.scrollTop)).toBeGreaterThan(0);
    const jump = carol.getByRole("button", { name: /^Jump to newest/ });
    await jump.waitFor();
    await sdk.send({ toUserId: "carol", body: "something new" });
    await waitUntil(() => jump.textContent(), (text) => text === "Jump to newest (1 new)", "the new-message count on the jump button");
    // Not seen yet: the read position stays.
    expect(await unreadOf(carol, "alice")).toBe(1);
    await jump.click();
    await jump.waitFor({ state: "detached" });
    await waitUntil(() => unreadOf(carol, "alice"), (n) => n === 0, "read after the jump");
  });

  it("stops delivering a group to a removed member, who is told so in words", { timeout: 90_000 }, async () => {
    t = await startTestServer();
    const alice = await page("alice");
    const bob = await page("bob");
    const carol = await page("carol");
    await alice.getByText("New group").click();
    await alice.getByLabel("Group title").fill("trio");
    await alice.getByLabel("Members", { exact: true }).fill("bob, carol");
    await alice.getByRole("button", { name: "Create group" }).click();
    await alice.locator("#thread-title", { hasText: "trio" }).waitFor();
    await sendText(alice, "welcome");
    for (const p of [bob, carol]) {
      await waitUntil(() => unreadOf(p, "trio"), (n) => n === 1, "the group on every member's page");
      await openConversation(p, "trio");
    }
    await sendText(bob, "hi from bob");
    await sendText(carol, "hi from carol");
    const before = ["welcome", "hi from bob", "hi from carol"];
    for (const p of [alice, bob, carol]) await waitForThread(p, before);

    await alice.getByRole("button", { name: "Members" }).click();
    await alice.locator("[data-member=carol]").waitFor();
    // Only the owner removes others: bob cannot, and is told why.
    await bob.getByRole("button", { name: "Members" }).click();
    await bob.getByRole("button", { name: "Remove alice" }).click();
    await bob.locator("#members-panel .error", { hasText: "Not allowed: only the group's owner may do that" }).waitFor();
    await alice.getByRole("button", { name: "Remove carol" }).click();
    await waitUntil(() => alice.locator("[data-member]").evaluateAll((els) => els.map((e) => e.getAttribute("data-member"))), (m) => JSON.stringify(m) === '["alice","bob"]', "carol gone from the members");

    await sendText(alice, "only us now");
    const after = [...before, "only us now"];
    await waitForThread(bob, after);
    await waitForThread(alice, after);
    // What bob received by now, carol would have received too.
    await new Promise((r) => setTimeout(r, 500));
    expect(await deliveredTexts(carol)).toEqual(before);

    // The server tells carol's page at once: it says so and closes the composer.
    await carol.locator("p.removed").waitFor();
    expect(await carol.locator("#composer-text").isDisabled()).toBe(true);
    // After a reload, the group is gone from carol's list.
    await carol.reload();
    await carol.getByTestId("connection").and(carol.locator('[data-state="live"]')).waitFor();
    expect(await conversationEntry(carol, "trio").count()).toBe(0);
  });

  it("moves the unread count in the user's other tab when one tab reads", { timeout: 60_000 }, async () => {
    t = await startTestServer();
    const bobSession = await userPage(chrome.browser, t.baseUrl, "bob");
    const tabA = bobSession.page;
    const tabB = await bobSession.context.newPage();
    await tabB.goto(t.baseUrl);
    await tabB.getByLabel("User name").fill("bob");
    await tabB.getByRole("button", { name: "Sign in" }).click();
    await tabB.getByTestId("connection").and(tabB.locator('[data-state="live"]')).waitFor();
    const alice = await page("alice");
    await startChat(alice, "bob");
    for (const text of ["one", "two", "three"]) await sendText(alice, text);
    for (const tab of [tabA, tabB]) await waitUntil(() => unreadOf(tab, "alice"), (n) => n === 3, "three unread in each tab");
    await openConversation(tabA, "alice");
    await waitForThread(tabA, ["one", "two", "three"]);
    await waitUntil(() => unreadOf(tabB, "alice"), (n) => n === 0, "the other tab's unread count moved");
    expect(await tabB.title()).toBe("microchat");
    // Tab A, open on the chat, reads a new message for both tabs.
    await sendText(alice, "four");
    await waitForThread(tabA, ["one", "two", "three", "four"]);
    await waitUntil(() => unreadOf(tabB, "alice"), (n) => n === 0, "the other tab's unread count after the fourth message");
  });

  it("shows the server's refusals in words and keeps a failed send for retry", { timeout: 60_000 }, async () => {
    t = await startTestServer(["--max-body-bytes", "64"]);
    const alice = await page("alice");
    await alice.getByLabel("Chat with").fill("not a name!");
    await alice.getByRole("button", { name: "Start chat" }).click();
    await alice.getByText('"not a name!" is not a user name').waitFor();
    await startChat(alice, "bob");
    await sendText(alice, "x".repeat(100));
    const failed = alice.locator('li.message.outgoing[data-status="failed"]');
    await failed.locator(".error", { hasText: "Message too large (message body is 100 bytes; the limit is 64)" }).waitFor();
    await failed.getByRole("button", { name: "Retry" }).click();
    await failed.locator(".error", { hasText: "Message too large" }).waitFor();
    await failed.getByRole("button", { name: "Discard" }).click();
    await waitUntil(() => outgoing(alice), (o) => o.length === 0, "the failed send discarded");
    await sendText(alice, "short");
    await waitForThread(alice, ["short"]);
  });

  it("says why a tab beyond the user's connection limit stays offline, and connects once a slot is free", { timeout: 60_000 }, async () => {
    t = await startTestServer(["--max-connections-per-user", "1"]);
    const first = await userPage(chrome.browser, t.baseUrl, "bob");
    const second = await first.context.newPage();
    await second.goto(t.baseUrl);
    await second.getByLabel("User name").fill("bob");
    await second.getByRole("button", { name: "Sign in" }).click();
    await waitUntil(() => second.getByTestId("connection").textContent(), (text) => (text ?? "").includes("Too many open tabs or devices for this user"), "the refusal in words");
    await first.page.close();
    await waitUntil(() => second.getByTestId("connection").getAttribute("data-state"), (s) => s === "live", "the second tab live", 30_000);
  });

  it("keeps keyboard users in the flow: labelled fields, Enter sends, focus goes to the message field", { timeout: 60_000 }, async () => {
    t = await startTestServer();
    const alice = await page("alice");
    // Tab order from the top: sign out, then the new-chat field.
    await alice.getByRole("button", { name: "Sign out" }).focus();
    await alice.keyboard.press("Tab");
    expect(await activeId(alice)).toBe("new-chat-user");
    await alice.keyboard.type("bob");
    await alice.keyboard.press("Enter");
    await alice.locator("#thread-title", { hasText: "bob" }).waitFor();
    await waitUntil(() => activeId(alice), (id) => id === "composer-text", "focus on the message field");
    await alice.keyboard.type("line one");
    await alice.keyboard.press("Shift+Enter");
    await alice.keyboard.type("line two");
    await alice.keyboard.press("Enter");
    await waitForThread(alice, ["line one\nline two"]);
    expect(await alice.locator("#composer-text").inputValue()).toBe("");
    expect(await activeId(alice)).toBe("composer-text");
    // Every field has a label.
    const unlabelled = await alice.locator("input, textarea").evaluateAll((fields) => fields.filter((f) => (f as unknown as { labels: unknown[] }).labels.length === 0).map((f) => f.id));
    expect(unlabelled).toEqual([]);
  });
});
