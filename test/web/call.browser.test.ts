import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CALL_CHROMIUM_ARGS } from "../support/call-browser.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { chromiumPath, startChat, userPage, waitUntil } from "../support/browser.js";

const available = chromiumPath() !== "";

/** The call panel's phase ("" when the page holds no call). */
async function phase(page: Page): Promise<string> {
  const panel = page.getByTestId("call");
  return (await panel.count()) === 0 ? "" : ((await panel.getAttribute("data-phase")) ?? "");
}

/** What the call panel says. */
async function callWords(page: Page): Promise<string> {
  return (await page.locator(".call-state").textContent()) ?? "";
}

/** Width of the video the page decodes from the other side (0 while none). */
async function remoteVideoWidth(page: Page): Promise<number> {
  return page.getByTestId("remote-video").evaluate((v) => (v as HTMLVideoElement).videoWidth).catch(() => 0);
}

describe.skipIf(!available)("the web client's one-to-one calls (Chromium with fake camera and microphone)", () => {
  let browser: Browser;
  let t: TestServer;
  beforeAll(async () => {
    browser = await chromium.launch({ executablePath: chromiumPath(), args: CALL_CHROMIUM_ARGS });
  });
  afterAll(async () => {
    await browser?.close();
  });
  afterEach(async () => {
    for (const context of browser.contexts()) await context.close();
    await t?.stop();
  });

  /** alice and bob signed in, alice's page on their direct chat. */
  async function pair(): Promise<{ alice: Page; bob: Page }> {
    t = await startTestServer();
    const alice = (await userPage(browser, t.baseUrl, "alice")).page;
    const bob = (await userPage(browser, t.baseUrl, "bob")).page;
    await startChat(alice, "bob");
    return { alice, bob };
  }

  it("rings the callee, connects video both ways once accepted, and ends on both pages when one hangs up", { timeout: 90_000 }, async () => {
    const { alice, bob } = await pair();
    expect(await phase(alice)).toBe("");
    await alice.getByRole("button", { name: "Call", exact: true }).click();
    await waitUntil(() => phase(bob), (p) => p === "incoming", "bob's incoming call");
    expect(await callWords(bob)).toBe("alice is calling you");
    await waitUntil(() => phase(alice), (p) => p === "ringing", "alice hearing it ring");
    expect(await callWords(alice)).toBe("Ringing… bob");
    const callId = await alice.getByTestId("call").getAttribute("data-call-id");
    expect(await bob.getByTestId("call").getAttribute("data-call-id")).toBe(callId);
    // One call at a time: the button is off while it rings.
    expect(await alice.getByRole("button", { name: "Call", exact: true }).isDisabled()).toBe(true);

    await bob.getByRole("button", { name: "Accept" }).click();
    await waitUntil(() => phase(bob), (p) => p === "connected", "bob connected", 30_000);
    await waitUntil(() => phase(alice), (p) => p === "connected", "alice connected", 30_000);
    // Media flows both ways: each page decodes the other's fake camera.
    await waitUntil(() => remoteVideoWidth(alice), (w) => w > 0, "alice decoding bob's video", 30_000);
    await waitUntil(() => remoteVideoWidth(bob), (w) => w > 0, "bob decoding alice's video", 30_000);

    await bob.getByRole("button", { name: "Hang up" }).click();
    await waitUntil(() => phase(alice), (p) => p === "ended", "the call ended at alice's", 20_000);
    expect(await callWords(alice)).toBe("Call ended");
    expect(await phase(bob)).toBe("ended");
    await alice.getByRole("button", { name: "Close" }).click();
    expect(await phase(alice)).toBe("");
    expect(await alice.getByRole("button", { name: "Call", exact: true }).isDisabled()).toBe(false);
  });

  it("tells the caller the call was declined, and the callee that the caller cancelled", { timeout: 60_000 }, async () => {
    const { alice, bob } = await pair();
    await alice.getByRole("button", { name: "Call", exact: true }).click();
    await waitUntil(() => phase(bob), (p) => p === "incoming", "bob's incoming call");
    await bob.getByRole("button", { name: "Decline" }).click();
    await waitUntil(() => phase(alice), (p) => p === "ended", "the declined call ended at alice's");
    expect(await callWords(alice)).toBe("Call declined");
    await alice.getByRole("button", { name: "Close" }).click();

    // Hanging up while it rings cancels: bob's banner goes.
    await alice.getByRole("button", { name: "Call", exact: true }).click();
    await waitUntil(() => phase(bob), (p) => p === "incoming", "bob's second incoming call");
    await alice.getByRole("button", { name: "Hang up" }).click();
    await waitUntil(() => phase(bob), (p) => p === "ended", "the cancelled call ended at bob's");
    expect(await callWords(bob)).toBe("Call cancelled");
  });
});
