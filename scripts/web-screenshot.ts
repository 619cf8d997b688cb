/**
 * The README's screenshot of the web client: `npm run screenshot:web [-- --out docs/images/web-chat.png]`.
 *
 * Builds web/, starts a server on the memory store on a free loopback port, lets three users
 * talk through the SDK (a group and two direct chats, one of them unread), opens alice's page
 * in Debian's Chromium (scripts/chromium.sh installs it when missing), opens the group and
 * saves a PNG. Everything it starts, it stops.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { pino } from "pino";
import { ImClient } from "../client/im-client.js";
import { loadConfig } from "../server/config.js";
import { DEV_JWT_SECRET, mintToken } from "../server/gateway/auth.js";
import { startServer } from "../server/main.js";
import { CHROMIUM_ARGS } from "../test/support/browser.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const { values } = parseArgs({ options: { out: { type: "string", default: "docs/images/web-chat.png" } } });
const out = path.resolve(ROOT, values.out!);

execFileSync(process.execPath, [path.join(ROOT, "node_modules/vite/bin/vite.js"), "build", "web", "--logLevel", "warn"], { cwd: ROOT, stdio: "inherit" });
const chromiumPath = /^CHROMIUM=(.+)$/m.exec(execFileSync("bash", [path.join(ROOT, "scripts/chromium.sh")], { encoding: "utf8" }))?.[1];
if (chromiumPath === undefined) throw new Error("scripts/chromium.sh found no Chromium");

const server = await startServer(loadConfig(["--port", "0", "--store", "memory", "--log-level", "silent"], {}), pino({ level: "silent" }));
const baseUrl = `http://127.0.0.1:${server.gateway.port}`;
const clients: ImClient[] = [];
const sdk = async (userId: string): Promise<ImClient> => {
  const client = new ImClient({ transport: createGrpcTransport({ baseUrl }), token: await mintToken(DEV_JWT_SECRET, userId) });
  clients.push(client);
  client.start();
  return client;
};

try {
  const alice = await sdk("alice");
  const bob = await sdk("bob");
  const carol = await sdk("carol");
  const dave = await sdk("dave");
  await bob.send({ toUserId: "alice", body: "Are we still on for Friday?" });
  await alice.send({ toUserId: "bob", body: "Yes, 10:00 in the small room." });
  const { conversation } = await alice.conversations.createGroup({ title: "Launch plan", memberUserIds: ["bob", "carol", "dave"] });
  const group = conversation!.conversationId;
  const lines: [ImClient, string][] = [
    [alice, "Morning all. Release candidate is tagged; the changelog is in the usual place."],
    [bob, "Load test from last night: p99 stayed flat up to 12k connections."],
    [carol, "Docs are updated for the new web client, screenshots included."],
    [dave, "I'll watch the dashboards during the rollout."],
    [alice, "Great. Rollout at 14:00, one region first."],
    [carol, "I will post in the status channel when it starts."],
  ];
  for (const [client, body] of lines) await client.send({ conversationId: group, body });
  await dave.send({ toUserId: "alice", body: "Can you review my pull request after lunch?" });
  await dave.send({ toUserId: "alice", body: "It's the one about reconnect backoff." });

  const browser = await chromium.launch({ executablePath: chromiumPath, args: CHROMIUM_ARGS });
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 720 }, deviceScaleFactor: 1 });
    await page.goto(`${baseUrl}/#token=${await mintToken(DEV_JWT_SECRET, "alice")}`);
    await page.locator('[data-testid="connection"][data-state="live"]').waitFor();
    await page.locator("button.conversation", { hasText: "Launch plan" }).click();
    await page.locator("li.message", { hasText: "status channel" }).waitFor();
    await page.locator("#composer-text").fill("Sounds good, see you at 14:00");
    mkdirSync(path.dirname(out), { recursive: true });
    await page.screenshot({ path: out });
    process.stdout.write(`wrote ${path.relative(ROOT, out)}\n`);
  } finally {
    await browser.close();
  }
} finally {
  await Promise.all(clients.map((c) => c.close()));
  await server.stop();
}
