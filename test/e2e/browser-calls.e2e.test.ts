import { randomBytes } from "node:crypto";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { CallState } from "../../gen/im/v1/call_pb.js";
import { LIVEKIT_WEBHOOK_PATH } from "../../server/media/livekit-webhook.js";
import { bundleCallApp, launchCallChromium, startPageServer, type PageServer } from "../support/call-browser.js";
import { startLivekit, type Livekit } from "../support/livekit.js";
import { freePort } from "../support/server-process.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

type App = {
  open(token: string, userId: string, deviceId: string): Promise<void>;
  call(to: string): Promise<string>;
  answer(): Promise<string>;
  framesDecoded(): Promise<number>;
  state(): { connection: string; ufrag: string };
  callState(callId: string): number;
  reconnect(): void;
  hangup(callId: string): Promise<void>;
  createLiveRoom(title: string): Promise<string>;
  setRole(roomId: string, userId: string, role: "viewer" | "speaker"): Promise<void>;
  joinLive(roomId: string, role: "host" | "viewer" | "speaker"): Promise<void>;
  tryPublish(): Promise<string>;
  canPublish(): boolean;
  liveFramesDecoded(): Promise<number>;
  log: string[];
};
declare const app: App;

/** Polls `read` in the page until `test` holds. */
async function until<T>(page: Page, read: (arg: string) => Promise<T> | T, test: (v: T) => boolean, what: string, arg = "", timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await page.evaluate(read, arg);
    if (test(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(v)}; log: ${JSON.stringify(await page.evaluate(() => app.log))})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

let browser: Browser;
let bundle: string;
beforeAll(async () => {
  [browser, bundle] = await Promise.all([launchCallChromium(), bundleCallApp()]);
});
afterAll(async () => {
  await browser?.close();
});

async function openPage(pages: PageServer, ts: TestServer, userId: string): Promise<Page> {
  const page = await browser.newPage();
  page.on("pageerror", (e) => process.stderr.write(`[${userId}] page error: ${e.message}\n`));
  await page.goto(pages.url);
  await page.waitForFunction(() => "app" in globalThis);
  const token = await ts.token(userId);
  await page.evaluate(([t, u]) => app.open(t!, u!, `${u}-web`), [token, userId]);
  return page;
}

describe("a one-to-one call between two Chromium pages", () => {
  let ts: TestServer;
  let pages: PageServer;
  beforeAll(async () => {
    ts = await startTestServer(["--call-keepalive-timeout-ms", "15000"]);
    pages = await startPageServer(ts.baseUrl, bundle);
  });
  afterAll(async () => {
    await pages?.close();
    await ts?.stop();
  });

  it("decodes video at both ends, and still after an ICE restart forced by a long-connection reconnect", async () => {
    const run = randomBytes(3).toString("hex");
    const alice = await openPage(pages, ts, `alice-${run}`);
    const bob = await openPage(pages, ts, `bob-${run}`);
    const callId = await alice.evaluate((to) => app.call(to), `bob-${run}`);
    await bob.evaluate(() => app.answer());
    for (const page of [alice, bob]) await until(page, () => app.framesDecoded(), (n) => n > 0, "frames decoded");
    // Both pages report connected media in their keepalives: the call is ACTIVE.
    await until(alice, (id) => app.callState(id), (s) => s === CallState.ACTIVE, "the call ACTIVE", callId);
    const ufragBefore = (await bob.evaluate(() => app.state())).ufrag;
    await bob.evaluate(() => app.reconnect());
    await until(bob, () => app.state().ufrag, (u) => u !== "" && u !== ufragBefore, "new ICE credentials on bob's side");
    const after = await Promise.all([alice, bob].map((p) => p.evaluate(() => app.framesDecoded())));
    for (const [i, page] of [alice, bob].entries()) {
      await until(page, () => app.framesDecoded(), (n) => n > after[i]! + 30, "frames still rising after the ICE restart");
      expect((await page.evaluate(() => app.state())).connection).toBe("connected");
    }
    await alice.evaluate((id) => app.hangup(id), callId);
    await until(bob, () => app.log.some((l) => l.startsWith("ended:")), (v) => v, "the call ended at bob");
    expect(await bob.evaluate((id) => app.callState(id), callId)).toBe(CallState.ENDED);
    await Promise.all([alice.close(), bob.close()]);
  });
});

describe.skipIf(!inject("livekitBuilt"))("a live room on LiveKit: a host page and two viewer pages", () => {
  const KEY = "browserkey";
  const SECRET = randomBytes(24).toString("hex");
  let ts: TestServer;
  let lk: Livekit;
  let pages: PageServer;
  beforeAll(async () => {
    const port = await freePort();
    ts = await startTestServer(["--livekit-url", `ws://127.0.0.1:${port}`, "--livekit-api-key", KEY, "--livekit-api-secret", SECRET, "--live-room-viewers-max", "2"]);
    lk = await startLivekit({ key: KEY, secret: SECRET, webhook: `${ts.baseUrl}${LIVEKIT_WEBHOOK_PATH}`, port });
    pages = await startPageServer(ts.baseUrl, bundle);
  });
  afterAll(async () => {
    await pages?.close();
    await ts?.stop();
    await lk?.stop();
  });

  it("viewers decode the host's video; a viewer's publish is refused until SetRole makes it a speaker", async () => {
    const run = randomBytes(3).toString("hex");
    const host = await openPage(pages, ts, `host-${run}`);
    const roomId = await host.evaluate(() => app.createLiveRoom("show"));
    await host.evaluate((id) => app.joinLive(id, "host"), roomId);
    const viewers = [await openPage(pages, ts, `v1-${run}`), await openPage(pages, ts, `v2-${run}`)];
    for (const v of viewers) await v.evaluate((id) => app.joinLive(id, "viewer"), roomId);
    for (const v of viewers) await until(v, () => app.liveFramesDecoded(), (n) => n > 0, "a viewer decoding the host's video");
    const refused = await viewers[0]!.evaluate(() => app.tryPublish());
    expect(refused).not.toBe("published");
    await host.evaluate(([id, user]) => app.setRole(id!, user!, "speaker"), [roomId, `v1-${run}`]);
    await until(viewers[0]!, () => app.canPublish(), (v) => v, "publish permission after SetRole");
    expect(await viewers[0]!.evaluate(() => app.tryPublish())).toBe("published");
    await until(host, () => app.liveFramesDecoded(), (n) => n > 0, "the host decoding the new speaker's video");
    await Promise.all([host, ...viewers].map((p) => p.close()));
    expect(lk.log()).toContain("livekit");
  });
});
