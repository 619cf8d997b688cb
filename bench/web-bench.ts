/**
 * Web client benchmark: `npm run bench:web [-- --runs 3 --loads 10 --messages 100 --workers 0 --sqlite-sync full]`.
 *
 * Builds web/ and starts the server as `npm start` does (one worker per core unless
 * --workers says otherwise, SQLite with synchronous=full unless --sqlite-sync says otherwise,
 * in a temporary directory), seeds a
 * reader with 20 direct conversations of 10 messages, then, in Debian's Chromium:
 * - page load to live: opens the page signed in as the reader (#token=) and takes the time
 *   from navigation start to the moment the connection indicator says live (session list
 *   loaded, push stream subscribed, first sync done), `--loads` times in a new browser
 *   context (nothing cached) and as many times as a reload of the same context (assets cached);
 * - send-to-render: two browser contexts (alice and bob, bob's page open on the chat); alice's
 *   page sends `--messages` messages one at a time, each as soon as bob's page showed the one
 *   before. Latency = from the Enter key in alice's page to the message's row being inserted
 *   into bob's page (both read performance.timeOrigin + performance.now(), one machine clock).
 * - the same closed loop between two SDK clients in Node (ImClient in browser mode over
 *   HTTP/1.1, one process, one clock): what the server path costs without a browser, so the
 *   ratio of the two in one run is what the browser and the page add.
 * Each of `--runs` runs uses a fresh server. Prints every run's p50/p99 and the medians over
 * runs, the machine and its load average. Loopback only; bounded in count. Not a test:
 * nothing is asserted. Take figures under `flock /tmp/bench.lock npm run bench:web`.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { chromium, type Browser, type Page } from "playwright-core";
import { GatewayService } from "../gen/im/v1/gateway_pb.js";
import { ImClient } from "../client/im-client.js";
import { DEV_JWT_SECRET, mintToken } from "../server/gateway/auth.js";
import { CHROMIUM_ARGS } from "../test/support/browser.js";
import { startNodeProcess, type NodeProcess } from "../test/support/node-process.js";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "3" },
    loads: { type: "string", default: "10" },
    messages: { type: "string", default: "100" },
    workers: { type: "string", default: "0" },
    "sqlite-sync": { type: "string", default: "full" },
  },
});
const RUNS = Number(values.runs);
const LOADS = Number(values.loads);
const MESSAGES = Number(values.messages);
const WORKERS = values.workers!;
const SQLITE_SYNC = values["sqlite-sync"]!;
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SEED_CONVERSATIONS = 20;
const SEED_MESSAGES = 10;
/** Bound on one wait in the browser. */
const WAIT_MS = 30_000;

/**
 * Installed in every page before its own scripts: notes when the indicator first says live
 * (ms since navigation start) and when each delivered message row is inserted (epoch ms).
 */
const PROBE = `(() => {
  const bench = { liveAtMs: undefined, rendered: new Map() };
  window.__bench = bench;
  new MutationObserver((records) => {
    const now = performance.timeOrigin + performance.now();
    for (const r of records) {
      for (const n of r.addedNodes) {
        if (n.nodeType !== 1) continue;
        const rows = n.matches('li.message[data-status="delivered"]') ? [n] : n.querySelectorAll('li.message[data-status="delivered"]');
        for (const row of rows) {
          const text = row.querySelector('.text')?.textContent ?? '';
          if (!bench.rendered.has(text)) bench.rendered.set(text, now);
        }
      }
    }
    if (bench.liveAtMs === undefined && document.querySelector('[data-testid="connection"][data-state="live"]')) bench.liveAtMs = performance.now();
  }).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-state"] });
})();`;

/** What PROBE keeps, as functions that run in the page read it. */
interface Probe {
  liveAtMs: number | undefined;
  rendered: Map<string, number>;
}
type ProbeHost = { __bench?: Probe };

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

function median(xs: readonly number[]): number {
  return quantile([...xs].sort((a, b) => a - b), 0.5);
}

const ms = (x: number) => x.toFixed(1);

async function seed(port: number): Promise<void> {
  const gateway = createClient(GatewayService, createConnectTransport({ baseUrl: `http://127.0.0.1:${port}`, httpVersion: "1.1" }));
  for (let c = 0; c < SEED_CONVERSATIONS; c++) {
    const headers = { authorization: `Bearer ${await mintToken(DEV_JWT_SECRET, `peer${c}`)}` };
    for (let m = 0; m < SEED_MESSAGES; m++) {
      await gateway.send({ target: { case: "toUserId", value: "reader" }, clientMsgId: `seed-${c}-${m}`, body: { contentType: "text/plain; charset=utf-8", data: new TextEncoder().encode(`message ${m} from peer ${c}`) } }, { headers });
    }
  }
}

async function liveAfterLoad(page: Page, url: string, reload: boolean): Promise<number> {
  if (reload) await page.reload();
  else await page.goto(url);
  await page.waitForFunction(() => (globalThis as ProbeHost).__bench?.liveAtMs !== undefined, undefined, { timeout: WAIT_MS });
  return page.evaluate(() => (globalThis as ProbeHost).__bench!.liveAtMs!);
}

async function pageLoads(browser: Browser, baseUrl: string): Promise<{ cold: number[]; warm: number[] }> {
  const url = `${baseUrl}/#token=${await mintToken(DEV_JWT_SECRET, "reader")}`;
  const cold: number[] = [];
  const warm: number[] = [];
  for (let i = 0; i < LOADS; i++) {
    const context = await browser.newContext();
    await context.addInitScript(PROBE);
    const page = await context.newPage();
    cold.push(await liveAfterLoad(page, url, false));
    warm.push(await liveAfterLoad(page, url, true));
    await context.close();
  }
  return { cold, warm };
}

async function sendToRender(browser: Browser, baseUrl: string, run: number): Promise<number[]> {
  const open = async (user: string) => {
    const context = await browser.newContext();
    await context.addInitScript(PROBE);
    const page = await context.newPage();
    await page.goto(`${baseUrl}/#token=${await mintToken(DEV_JWT_SECRET, user)}`);
    await page.waitForFunction(() => (globalThis as ProbeHost).__bench?.liveAtMs !== undefined, undefined, { timeout: WAIT_MS });
    return page;
  };
  const alice = await open(`alice${run}`);
  const bob = await open(`bob${run}`);
  await alice.getByLabel("Chat with").fill(`bob${run}`);
  await alice.getByRole("button", { name: "Start chat" }).click();
  const send = (text: string) =>
    alice.evaluate<number, string>((body) => {
      const w = globalThis as unknown as { document: { getElementById(id: string): { value: string; dispatchEvent(e: unknown): void } }; performance: { timeOrigin: number; now(): number }; KeyboardEvent: new (type: string, init: object) => unknown };
      const field = w.document.getElementById("composer-text");
      field.value = body;
      const t0 = w.performance.timeOrigin + w.performance.now();
      field.dispatchEvent(new w.KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
      return t0;
    }, text);
  const rendered = (text: string) => bob.waitForFunction((t) => (globalThis as ProbeHost).__bench!.rendered.get(t), text, { timeout: WAIT_MS, polling: 5 }).then((h) => h.jsonValue() as Promise<number>);
  // The first message creates the conversation; bob opens it, then the measured ones follow.
  await send("warm-up");
  await bob.locator("button.conversation").first().click();
  await rendered("warm-up");
  const latencies: number[] = [];
  for (let i = 0; i < MESSAGES; i++) {
    const text = `run ${run} message ${i}`;
    const t0 = await send(text);
    latencies.push((await rendered(text)) - t0);
  }
  await alice.context().close();
  await bob.context().close();
  return latencies;
}

async function sdkSendToDeliver(baseUrl: string, run: number): Promise<number[]> {
  const client = async (user: string) => {
    const c = new ImClient({ transport: createConnectTransport({ baseUrl, httpVersion: "1.1" }), mode: "browser", token: await mintToken(DEV_JWT_SECRET, user) });
    c.start();
    return c;
  };
  const alice = await client(`sdk-alice${run}`);
  const bob = await client(`sdk-bob${run}`);
  try {
    const deadline = Date.now() + WAIT_MS;
    while (!(alice.idle() && bob.idle()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    let wake: ((at: number) => void) | undefined;
    bob.on("message", () => wake?.(performance.now()));
    const latencies: number[] = [];
    let failed = 0;
    for (let i = 0; i <= MESSAGES; i++) {
      let timer: NodeJS.Timeout | undefined;
      const arrived = new Promise<number>((resolve, reject) => {
        wake = resolve;
        timer = setTimeout(() => reject(new Error("no delivery within the bound")), WAIT_MS);
      });
      const t0 = performance.now();
      const sent = alice.send({ toUserId: `sdk-bob${run}`, body: `sdk ${i}` });
      // A send the SDK gives up on is counted, not timed.
      const t1 = await Promise.race([arrived, sent.then(() => arrived)]).catch(() => undefined);
      clearTimeout(timer);
      if (t1 === undefined) failed++;
      else if (i > 0) latencies.push(t1 - t0); // the first one creates the conversation
    }
    if (failed > 0) process.stdout.write(`  SDK loop: ${failed} sends failed (not timed)\n`);
    return latencies;
  } finally {
    await alice.close();
    await bob.close();
  }
}

function assetSizes(): { raw: number; gzip: number } {
  const dir = path.join(ROOT, "web/dist/assets");
  let raw = 0;
  let gzip = 0;
  for (const f of readdirSync(dir)) {
    const bytes = readFileSync(path.join(dir, f));
    raw += bytes.byteLength;
    gzip += gzipSync(bytes).byteLength;
  }
  return { raw, gzip };
}

async function main(): Promise<void> {
  const startLoad = loadavg().map((x) => x.toFixed(2)).join(" ");
  execFileSync(process.execPath, [path.join(ROOT, "node_modules/vite/bin/vite.js"), "build", "web", "--logLevel", "warn"], { cwd: ROOT, stdio: "inherit" });
  const chromiumPath = /^CHROMIUM=(.+)$/m.exec(execFileSync("bash", [path.join(ROOT, "scripts/chromium.sh")], { encoding: "utf8" }))?.[1];
  if (chromiumPath === undefined) throw new Error("scripts/chromium.sh found no Chromium");
  const chromiumVersion = execFileSync(chromiumPath, ["--version"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  const sizes = assetSizes();
  process.stdout.write(
    `web benchmark: ${RUNS} runs, ${LOADS} page loads each (cold and warm), ${MESSAGES} messages each; server workers ${WORKERS} (0: one per core), SQLite synchronous=${SQLITE_SYNC}\n` +
      `machine: ${cpus().length} x ${cpus()[0]?.model ?? "unknown CPU"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${chromiumVersion}; load average at start ${startLoad}\n` +
      `client assets: ${(sizes.raw / 1024).toFixed(0)} KiB (${(sizes.gzip / 1024).toFixed(0)} KiB gzipped)\n`,
  );
  const browser = await chromium.launch({ executablePath: chromiumPath, args: CHROMIUM_ARGS });
  const rows: { cold50: number; cold99: number; warm50: number; warm99: number; lat50: number; lat99: number; sdk50: number; sdk99: number; load: string }[] = [];
  try {
    for (let run = 1; run <= RUNS; run++) {
      const load = loadavg().map((x) => x.toFixed(2)).join(" ");
      const dir = mkdtempSync(path.join(tmpdir(), "im-web-bench-"));
      let node: NodeProcess | undefined;
      try {
        node = await startNodeProcess(["--port", "0", "--workers", WORKERS, "--data-dir", dir, "--sqlite-sync", SQLITE_SYNC]);
        const baseUrl = `http://127.0.0.1:${node.port}`;
        await seed(node.port);
        const { cold, warm } = await pageLoads(browser, baseUrl);
        const latencies = await sendToRender(browser, baseUrl, run);
        const sdk = await sdkSendToDeliver(baseUrl, run);
        const s = (xs: number[]) => [...xs].sort((a, b) => a - b);
        const row = {
          cold50: quantile(s(cold), 0.5),
          cold99: quantile(s(cold), 0.99),
          warm50: quantile(s(warm), 0.5),
          warm99: quantile(s(warm), 0.99),
          lat50: quantile(s(latencies), 0.5),
          lat99: quantile(s(latencies), 0.99),
          sdk50: quantile(s(sdk), 0.5),
          sdk99: quantile(s(sdk), 0.99),
          load,
        };
        rows.push(row);
        process.stdout.write(
          `run ${run} (load ${load}): load to live cold p50 ${ms(row.cold50)} p99 ${ms(row.cold99)} ms, warm p50 ${ms(row.warm50)} p99 ${ms(row.warm99)} ms; send-to-render p50 ${ms(row.lat50)} p99 ${ms(row.lat99)} ms (n=${latencies.length}); SDK send-to-deliver p50 ${ms(row.sdk50)} p99 ${ms(row.sdk99)} ms (n=${sdk.length}); browser/SDK p50 ratio ${(row.lat50 / row.sdk50).toFixed(2)}\n`,
        );
      } finally {
        node?.kill("SIGTERM");
        await node?.exited;
        rmSync(dir, { recursive: true, force: true });
      }
    }
  } finally {
    await browser.close();
  }
  const m = (key: keyof (typeof rows)[number]) => ms(median(rows.map((r) => r[key] as number)));
  process.stdout.write(
    `\n| figure | p50 (ms) | p99 (ms) |\n| --- | --- | --- |\n` +
      `| page load to live, new context (nothing cached) | ${m("cold50")} | ${m("cold99")} |\n` +
      `| page load to live, reload (assets cached) | ${m("warm50")} | ${m("warm99")} |\n` +
      `| send-to-render, two browser contexts | ${m("lat50")} | ${m("lat99")} |\n` +
      `| send-to-deliver, two SDK clients in Node (same server, same run) | ${m("sdk50")} | ${m("sdk99")} |\n` +
      `\nmedians over ${rows.length} runs; load average at start ${startLoad}, at the end ${loadavg().map((x) => x.toFixed(2)).join(" ")}\n`,
  );
}

await main();
