import { chromium, type Browser, type BrowserContext, type Locator, type Page } from "playwright-core";
import { inject } from "vitest";

/**
 * How Chromium runs here: headless, as root (no sandbox), and without the background
 * services whose connections this machine's closed network refuses.
 */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

/** Debian's Chromium from the global setup ("" when this run has none; see test/global-setup/web.ts). */
export function chromiumPath(): string {
  return inject("chromiumPath");
}

/** A headless Chromium (playwright gives it a fresh temporary profile and removes it on close). */
export async function launchChromium(executablePath = chromiumPath()): Promise<{ browser: Browser; close(): Promise<void> }> {
  const browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
  return { browser, close: () => browser.close() };
}

/** Polls `condition` (which may be async) until it holds; fails with `what` and the last value seen. */
export async function waitUntil<T>(read: () => Promise<T> | T, test: (value: T) => boolean, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await read();
  while (!test(value)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last seen: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 50));
    value = await read();
  }
  return value;
}

/** The page's connection indicator. */
export function connection(page: Page): Locator {
  return page.getByTestId("connection");
}

/** The connection state the page shows (connecting, syncing, live, offline, ...). */
export async function connectionState(page: Page): Promise<string> {
  return (await connection(page).getAttribute("data-state")) ?? "";
}

/** Waits until the page shows `state`. */
export async function waitForState(page: Page, state: string, timeoutMs = 20_000): Promise<void> {
  await waitUntil(() => connectionState(page), (s) => s === state, `the page to show ${state}`, timeoutMs);
}

/** Opens the page at `url` and signs in as `userId` with the development form; resolves when live. */
export async function signIn(page: Page, url: string, userId: string): Promise<void> {
  await page.goto(url);
  await page.getByLabel("User name").fill(userId);
  await page.getByRole("button", { name: "Sign in" }).click();
  await waitForState(page, "live");
}

/** A new context (like another browser profile or device) with a page signed in as `userId`. */
export async function userPage(browser: Browser, url: string, userId: string): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on("pageerror", (error) => process.stderr.write(`[${userId}] page error: ${error.message}\n`));
  await signIn(page, url, userId);
  return { context, page };
}

/** The conversation's entry in the list, by the name shown. */
export function conversationEntry(page: Page, name: string): Locator {
  return page.locator("button.conversation").filter({ has: page.locator(".name", { hasText: new RegExp(`^${name}( \\(group\\))?$`) }) });
}

/** The unread count the list shows for a conversation (0 when it shows none). */
export async function unreadOf(page: Page, name: string): Promise<number> {
  const entry = conversationEntry(page, name);
  if ((await entry.count()) === 0) return -1;
  return Number(await entry.getAttribute("data-unread"));
}

/** Opens a conversation from the list. */
export async function openConversation(page: Page, name: string): Promise<void> {
  await conversationEntry(page, name).click();
  await page.locator("#thread-title", { hasText: name }).waitFor();
}

/** Starts (or opens) the direct chat with `peer`. */
export async function startChat(page: Page, peer: string): Promise<void> {
  await page.getByLabel("Chat with").fill(peer);
  await page.getByRole("button", { name: "Start chat" }).click();
  await page.locator("#thread-title", { hasText: peer }).waitFor();
}

/** Types a message into the open conversation and sends it with the Enter key. */
export async function sendText(page: Page, text: string): Promise<void> {
  const field = page.locator("#composer-text");
  await field.fill(text);
  await field.press("Enter");
}

/** The texts of the open conversation's messages that its log delivered, in order. */
export async function deliveredTexts(page: Page): Promise<string[]> {
  return page.locator('li.message[data-status="delivered"] .text').allTextContents();
}

/** The open conversation's sends that its log has not delivered back, as "status:text". */
export async function outgoing(page: Page): Promise<string[]> {
  const rows = page.locator("li.message.outgoing");
  const out: string[] = [];
  for (const row of await rows.all()) out.push(`${await row.getAttribute("data-status")}:${await row.locator(".text").textContent()}`);
  return out;
}

/** Waits until the open conversation shows exactly `texts` as delivered messages and nothing outgoing. */
export async function waitForThread(page: Page, texts: readonly string[], timeoutMs = 20_000): Promise<void> {
  await waitUntil(
    async () => ({ delivered: await deliveredTexts(page), outgoing: await outgoing(page) }),
    (v) => v.outgoing.length === 0 && JSON.stringify(v.delivered) === JSON.stringify(texts),
    `the thread to show ${JSON.stringify(texts)}`,
    timeoutMs,
  );
}
