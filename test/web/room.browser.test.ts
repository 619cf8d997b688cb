import { randomBytes } from "node:crypto";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { LIVEKIT_WEBHOOK_PATH } from "../../server/media/livekit-webhook.js";
import { CALL_CHROMIUM_ARGS } from "../support/call-browser.js";
import { startLivekit, type Livekit } from "../support/livekit.js";
import { freePort } from "../support/server-process.js";
import { startTestServer, waitFor, type TestServer } from "../support/test-server.js";
import { chromiumPath, openConversation, userPage, waitUntil } from "../support/browser.js";

const KEY = "webroomkey";
const SECRET = randomBytes(24).toString("hex");

/** The room view's phase ("" when the page holds no room). */
async function phase(page: Page): Promise<string> {
  const room = page.getByTestId("room");
  return (await room.count()) === 0 ? "" : ((await room.getAttribute("data-phase")) ?? "");
}

/** For each tile the page shows: identity, name and live-room role shown, and the decoded width of its video (0: none yet). */
async function tiles(page: Page): Promise<{ identity: string; name: string; role: string; width: number; audio: boolean }[]> {
  return page.getByTestId("tile").evaluateAll((els) =>
    els.map((el) => ({
      identity: el.getAttribute("data-identity") ?? "",
      name: el.querySelector(".tile-name")?.textContent ?? "",
      role: el.querySelector(".tile-role")?.textContent ?? "",
      width: (el.querySelector("video") as HTMLVideoElement | null)?.videoWidth ?? 0,
      audio: el.querySelector("audio") !== null,
    })),
  );
}

/** Waits until the page shows exactly `others` besides itself, each with decoded video. */
async function waitForOthers(page: Page, me: string, others: readonly string[], what: string): Promise<void> {
  await waitUntil(
    () => tiles(page),
    (ts) => {
      const remote = ts.filter((t) => t.identity !== me);
      return ts.some((t) => t.identity === me) && remote.length === others.length && others.every((o) => remote.some((t) => t.identity === o && t.name === o && t.width > 0));
    },
    what,
    45_000,
  );
}

describe.skipIf(chromiumPath() === "" || !inject("livekitBuilt"))("the web client's room view on LiveKit (Chromium with fake camera and microphone)", () => {
  let browser: Browser;
  let t: TestServer;
  let lk: Livekit;
  beforeAll(async () => {
    const port = await freePort();
    t = await startTestServer(["--livekit-url", `ws://127.0.0.1:${port}`, "--livekit-api-key", KEY, "--livekit-api-secret", SECRET, "--live-room-viewers-max", "4"]);
    lk = await startLivekit({ key: KEY, secret: SECRET, webhook: `${t.baseUrl}${LIVEKIT_WEBHOOK_PATH}`, port });
    browser = await chromium.launch({ executablePath: chromiumPath(), args: CALL_CHROMIUM_ARGS });
  });
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
    await lk?.stop();
  });
  afterEach(async () => {
    for (const context of browser.contexts()) await context.close();
  });

  it("shows three members of a group call each other's video with names, and drops the one who leaves", { timeout: 150_000 }, async () => {
    const run = randomBytes(3).toString("hex");
    const [a, b, c] = ["alice", "bob", "carol"].map((u) => `${u}-${run}`) as [string, string, string];
    const sdk = await t.client(a);
    await waitFor(() => sdk.idle(), "alice's SDK live");
    await sdk.conversations.createGroup({ title: `team-${run}`, memberUserIds: [b, c] });
    const pages: Record<string, Page> = {};
    for (const u of [a, b, c]) {
      pages[u] = (await userPage(browser, t.baseUrl, u)).page;
      await openConversation(pages[u]!, `team-${run}`);
    }
    const [alice, bob, carol] = [pages[a]!, pages[b]!, pages[c]!];

    await alice.getByRole("button", { name: "Start group call" }).click();
    for (const p of [bob, carol]) {
      await waitUntil(() => phase(p), (v) => v === "invited", "the group call ringing");
      expect(await p.getByTestId("room").getByRole("status").textContent()).toBe(`${a} started a group call`);
      // A group call rings in the room view only, not as a one-to-one call.
      expect(await p.getByTestId("call").count()).toBe(0);
    }
    // From the banner on one page, from the conversation's own button on the other.
    await bob.getByTestId("room").getByRole("button", { name: "Join" }).click();
    await carol.getByRole("button", { name: "Join group call" }).click();

    await waitForOthers(alice, a, [b, c], "alice seeing bob's and carol's video");
    await waitForOthers(bob, b, [a, c], "bob seeing alice's and carol's video");
    await waitForOthers(carol, c, [a, b], "carol seeing alice's and bob's video");
    const callId = await alice.getByTestId("room").getAttribute("data-call-id");
    expect(callId).not.toBe("");
    expect(await bob.getByTestId("room").getAttribute("data-call-id")).toBe(callId);
    // Controls in reading order: camera, microphone, leave; entering the room focused the first.
    expect(await alice.getByTestId("room").getByRole("button").allTextContents()).toEqual(["Turn camera off", "Mute microphone", "Leave"]);
    for (const p of [alice, bob, carol]) expect(await p.evaluate(() => document.activeElement?.textContent)).toBe("Turn camera off");

    // Turning a camera off takes its video from the others' tiles; on again brings it back.
    await bob.getByRole("button", { name: "Turn camera off" }).click();
    await waitUntil(() => tiles(alice), (ts) => ts.some((x) => x.identity === b && x.width === 0), "bob's video gone from alice's tile");
    await bob.getByRole("button", { name: "Turn camera on" }).click();
    await waitForOthers(alice, a, [b, c], "bob's video back at alice's");
    // Likewise the microphone: a muted one plays nothing at the others'.
    await waitUntil(() => tiles(alice), (ts) => ts.some((x) => x.identity === b && x.audio), "bob's sound playing at alice's");
    await bob.getByRole("button", { name: "Mute microphone" }).click();
    await waitUntil(() => tiles(alice), (ts) => ts.some((x) => x.identity === b && !x.audio), "bob's sound muted at alice's");
    await bob.getByRole("button", { name: "Unmute microphone" }).click();
    await waitUntil(() => tiles(alice), (ts) => ts.some((x) => x.identity === b && x.audio), "bob's sound back at alice's");

    await carol.getByRole("button", { name: "Leave" }).click();
    expect(await phase(carol)).toBe("");
    await waitForOthers(alice, a, [b], "carol's tile gone from alice's page");
    await waitForOthers(bob, b, [a], "carol's tile gone from bob's page");
    // Two remain: the call goes on.
    expect(await phase(alice)).toBe("joined");

    await bob.getByRole("button", { name: "Leave" }).click();
    await waitUntil(() => phase(alice), (v) => v === "ended", "the call ending at alice's once she is alone");
    expect(await alice.getByTestId("room").getByRole("status").textContent()).toBe("The group call ended");
  });

  it("shows a viewer the host's video without publish controls, until the host makes it a speaker", { timeout: 120_000 }, async () => {
    const run = randomBytes(3).toString("hex");
    const [h, v] = [`host-${run}`, `viewer-${run}`];
    const host = (await userPage(browser, t.baseUrl, h)).page;
    await host.getByLabel("Live room title").fill("show");
    await host.getByRole("button", { name: "Go live" }).click();
    await waitUntil(() => phase(host), (p) => p === "joined", "the host in the live room");
    expect(await host.getByTestId("room").getAttribute("data-role")).toBe("host");
    const roomId = (await host.getByTestId("live-room-id").textContent()) ?? "";
    expect(roomId).not.toBe("");

    const viewer = (await userPage(browser, t.baseUrl, v)).page;
    await viewer.getByLabel("Live room id").fill(roomId);
    await viewer.getByRole("button", { name: "Watch" }).click();
    await waitForOthers(viewer, v, [h], "the viewer decoding the host's video");
    const room = viewer.getByTestId("room");
    expect(await room.getAttribute("data-role")).toBe("viewer");
    expect(await room.getByRole("status").textContent()).toBe("You are watching");
    expect(await room.getByRole("button").allTextContents()).toEqual(["Leave"]);
    expect(await viewer.evaluate(() => document.activeElement?.textContent)).toBe("Leave");
    expect((await tiles(viewer)).map((x) => `${x.identity}:${x.role}`)).toEqual([`${v}:viewer`, `${h}:host`]);

    await waitUntil(() => tiles(host), (ts) => ts.some((x) => x.identity === v && x.role === "viewer"), "the viewer on the host's page");
    await host.getByRole("button", { name: `Make ${v} a speaker` }).click();
    await waitUntil(() => room.getAttribute("data-role"), (r) => r === "speaker", "the viewer promoted");
    expect(await room.getByRole("button").allTextContents()).toEqual(["Turn camera on", "Unmute microphone", "Leave"]);
    await room.getByRole("button", { name: "Turn camera on" }).click();
    await waitForOthers(host, h, [v], "the host decoding the new speaker's video");
    expect((await tiles(host)).find((x) => x.identity === v)?.role).toBe("speaker");
  });
});
