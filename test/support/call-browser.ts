import { execFile } from "node:child_process";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { build } from "esbuild";
import { chromium, type Browser } from "playwright-core";
import { CHROMIUM_ARGS } from "./browser.js";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/**
 * The flags the WebRTC tests need on top of the browser tests' own: fake camera and
 * microphone, loopback candidates, no mDNS names.
 */
export const CALL_CHROMIUM_ARGS = [
  ...CHROMIUM_ARGS,
  "--use-fake-ui-for-media-stream",
  "--use-fake-device-for-media-stream",
  "--allow-loopback-in-peer-connection",
  "--disable-features=WebRtcHideLocalIpsWithMdns",
  "--autoplay-policy=no-user-gesture-required",
];

/** Debian's chromium (scripts/chromium.sh installs it when missing) with media flags, driven by playwright-core. */
export async function launchCallChromium(): Promise<Browser> {
  const { stdout } = await run("bash", [`${ROOT}scripts/chromium.sh`], { timeout: 600_000 });
  const executablePath = /^CHROMIUM=(.+)$/m.exec(stdout)?.[1];
  if (executablePath === undefined) throw new Error(`scripts/chromium.sh printed no path: ${stdout}`);
  return chromium.launch({ executablePath, args: CALL_CHROMIUM_ARGS, headless: true });
}

/** test/browser/call-app.ts bundled for the browser. */
export async function bundleCallApp(): Promise<string> {
  const out = await build({
    entryPoints: [`${ROOT}test/browser/call-app.ts`],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "chrome120",
    write: false,
    logLevel: "silent",
  });
  return out.outputFiles[0]!.text;
}

/** A loopback HTTP origin for the test pages. */
export interface PageServer {
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Serves the page and its bundle from http://127.0.0.1:<port>/ (a secure context that gathers
 * ICE candidates), and passes every other request through to the gateway at `gatewayUrl`,
 * so the SDK's unary calls and Subscribe stream are same-origin.
 */
export async function startPageServer(gatewayUrl: string, bundle: string): Promise<PageServer> {
  const gateway = new URL(gatewayUrl);
  const server = http.createServer((req, res) => {
    if (req.method === "GET" && (req.url === "/" || req.url?.startsWith("/?"))) {
      res.writeHead(200, { "content-type": "text/html" });
      res.end('<!doctype html><html><body><script type="module" src="/app.js"></script></body></html>');
      return;
    }
    if (req.method === "GET" && req.url === "/app.js") {
      res.writeHead(200, { "content-type": "text/javascript" });
      res.end(bundle);
      return;
    }
    const upstream = http.request(
      { host: gateway.hostname, port: gateway.port, method: req.method, path: req.url, headers: req.headers, agent: false },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on("error", () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    res.on("close", () => upstream.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
