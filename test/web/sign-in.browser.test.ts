import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { mintToken } from "../../server/gateway/auth.js";
import { freePort } from "../support/server-process.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import {
  chromiumPath,
  connection,
  launchChromium,
  openConversation,
  sendText,
  signIn,
  startChat,
  unreadOf,
  waitForState,
  waitForThread,
  waitUntil,
} from "../support/browser.js";

const available = chromiumPath() !== "";
const SECRET = "a-production-secret";

describe.skipIf(!available)("signing in to the web client, protocols and origins", () => {
  let chrome: { browser: Browser; close(): Promise<void> };
  const servers: TestServer[] = [];
  beforeAll(async () => {
    chrome = await launchChromium();
  });
  afterAll(async () => {
    await chrome?.close();
  });
  afterEach(async () => {
    for (const context of chrome.browser.contexts()) await context.close();
    for (const s of servers.splice(0)) await s.stop();
  });

  const server = async (flags: string[] = []) => {
    const s = await startTestServer(flags);
    servers.push(s);
    return s;
  };
  const newPage = async (): Promise<Page> => (await chrome.browser.newContext()).newPage();

  it("with a secret set, offers no development sign-in and takes the token from the URL fragment", { timeout: 60_000 }, async () => {
    const t = await server(["--jwt-secret", SECRET]);
    const page = await newPage();
    await page.goto(t.baseUrl);
    await page.getByLabel("Token").waitFor();
    expect(await page.getByLabel("User name").count()).toBe(0);
    await page.getByText("This server needs a token").waitFor();

    await page.goto(`${t.baseUrl}/#token=${await mintToken(SECRET, "dave")}`);
    await waitForState(page, "live");
    expect(await page.getByTestId("me").textContent()).toBe("dave");
    expect(page.url()).not.toContain("token=");
    // This tab keeps the sign-in across a reload, until it signs out.
    await page.reload();
    await waitForState(page, "live");
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("Token").waitFor();
  });

  it("says in words why a token is refused", { timeout: 60_000 }, async () => {
    const t = await server(["--jwt-secret", SECRET]);
    const page = await newPage();
    await page.goto(t.baseUrl);
    await page.getByLabel("Token").fill(await mintToken("some-other-secret", "mallory"));
    await page.getByRole("button", { name: "Sign in" }).click();
    await waitUntil(() => connection(page).textContent(), (text) => (text ?? "").includes("Not signed in, or the sign-in expired: sign in again (token signature is invalid)"), "the refusal in words");
    await page.getByLabel("Token").waitFor({ state: "detached" });
  });

  it("takes tokens from an auth hook defined by the embedding page", { timeout: 60_000 }, async () => {
    const t = await server(["--jwt-secret", SECRET]);
    const page = await newPage();
    const token = await mintToken(SECRET, "erin");
    await page.addInitScript(`window.microchatAuth = { calls: 0, token() { this.calls++; return Promise.resolve(${JSON.stringify(token)}); } };`);
    await page.goto(t.baseUrl);
    await waitForState(page, "live");
    expect(await page.getByTestId("me").textContent()).toBe("erin");
    expect(await page.evaluate<number>("window.microchatAuth.calls")).toBeGreaterThan(1);
  });

  it("chats between a gRPC-Web page and a Connect page", { timeout: 60_000 }, async () => {
    const t = await server();
    const grpcWeb = await newPage();
    await signIn(grpcWeb, `${t.baseUrl}/?protocol=grpc-web`, "alice");
    const connect = await newPage();
    await signIn(connect, t.baseUrl, "bob");
    const seen: string[] = [];
    grpcWeb.on("request", (r) => seen.push(r.headers()["content-type"] ?? ""));
    await startChat(grpcWeb, "bob");
    await sendText(grpcWeb, "over grpc-web");
    await waitUntil(() => unreadOf(connect, "alice"), (n) => n === 1, "bob's unread");
    await openConversation(connect, "alice");
    await sendText(connect, "over connect");
    for (const p of [grpcWeb, connect]) await waitForThread(p, ["over grpc-web", "over connect"]);
    expect(seen.some((c) => c.startsWith("application/grpc-web"))).toBe(true);
  });

  it("stays signed in when reloaded while its gateway is down, and connects when it is back", { timeout: 90_000 }, async () => {
    // The page comes from one server; the gateway it talks to (on another port) goes away.
    const pages = await server([]);
    const port = await freePort();
    const origin = `http://127.0.0.1:${pages.port}`;
    let gateway = await startTestServer(["--port", String(port), "--allowed-origins", origin]);
    const page = await newPage();
    await signIn(page, `${origin}/?server=${encodeURIComponent(gateway.baseUrl)}`, "alice");
    await gateway.stop();
    await page.reload();
    await waitForState(page, "offline");
    expect(await connection(page).textContent()).toContain("Cannot reach the server");
    expect(await page.getByTestId("me").textContent()).toBe("alice");
    gateway = await startTestServer(["--port", String(port), "--allowed-origins", origin]);
    servers.push(gateway);
    await waitForState(page, "live", 30_000);
  });

  it("works from another origin only when that origin is allowed", { timeout: 90_000 }, async () => {
    // localhost and 127.0.0.1 are different origins for the browser: the page comes from one
    // and calls the gateway at the other.
    const open = await server([]);
    const blocked = await newPage();
    await blocked.goto(`http://localhost:${open.port}/?server=${encodeURIComponent(open.baseUrl)}`);
    await blocked.getByText("Cannot reach the server").waitFor();

    const port = await freePort();
    const allowed = await server(["--port", String(port), "--allowed-origins", `http://localhost:${port}`]);
    const page = await newPage();
    await signIn(page, `http://localhost:${port}/?server=${encodeURIComponent(allowed.baseUrl)}`, "alice");
    const bob = await newPage();
    await signIn(bob, allowed.baseUrl, "bob");
    await startChat(page, "bob");
    await sendText(page, "across origins");
    await waitUntil(() => unreadOf(bob, "alice"), (n) => n === 1, "bob's unread");
    await openConversation(bob, "alice");
    await waitForThread(bob, ["across origins"]);
  });
});
