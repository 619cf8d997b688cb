import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createTokenVerifier, DEV_JWT_SECRET } from "../../../server/gateway/auth.js";
import { createWebRoutes, DEV_TOKEN_PATH, type WebRoutesOptions } from "../../../server/gateway/web-routes.js";
import { loadConfig } from "../../../server/config.js";
import { startServer, type RunningServer } from "../../../server/main.js";

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(port: number, method: string, urlPath: string, body?: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, method, path: urlPath, headers, agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (c: string) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** The routes on a bare HTTP server that answers 404 for what they leave. */
async function serveRoutes(options: WebRoutesOptions): Promise<{ port: number; close(): Promise<void> }> {
  const routes = createWebRoutes(options);
  const server = http.createServer((req, res) => {
    if (!routes(req, res)) {
      res.writeHead(404);
      res.end("left");
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { port: (server.address() as { port: number }).port, close: () => new Promise((r) => server.close(() => r())) };
}

/** A logger whose lines are kept. */
function capturingLogger(): { logger: pino.Logger; lines: () => string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().split("\n").filter((l) => l !== ""));
      done();
    },
  });
  return { logger: pino({ level: "info" }, stream), lines: () => lines };
}

describe("createWebRoutes()", () => {
  let dir: string;
  const servers: { close(): Promise<void> }[] = [];
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "im-web-assets-"));
    mkdirSync(path.join(dir, "assets"));
    writeFileSync(path.join(dir, "index.html"), "<!doctype html><title>t</title>");
    writeFileSync(path.join(dir, "assets", "index-abc123.js"), "console.log(1)");
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close();
  });

  it("serves the built page at / without caching it, and hashed assets for good", async () => {
    const s = await serveRoutes({ assetsDir: dir, logger: pino({ level: "silent" }) });
    servers.push(s);
    const page = await request(s.port, "GET", "/");
    expect(page.status).toBe(200);
    expect(page.headers["content-type"]).toMatch(/^text\/html/);
    expect(page.headers["cache-control"]).toBe("no-cache");
    expect(page.headers["content-security-policy"]).toContain("default-src 'self'");
    expect(page.body).toContain("<title>t</title>");
    const asset = await request(s.port, "GET", "/assets/index-abc123.js");
    expect(asset.status).toBe(200);
    expect(asset.headers["content-type"]).toMatch(/javascript/);
    expect(asset.headers["cache-control"]).toContain("immutable");
  });

  it.each([
    ["an unknown path", "GET", "/nothing-here"],
    ["a path out of the assets folder", "GET", "/../package.json"],
    ["an encoded path out of the assets folder", "GET", "/%2e%2e/package.json"],
    ["a POST to the page", "POST", "/"],
  ])("leaves %s to the caller", async (_what, method, urlPath) => {
    const s = await serveRoutes({ assetsDir: dir, logger: pino({ level: "silent" }) });
    servers.push(s);
    const answer = await request(s.port, method, urlPath);
    expect(answer.status).toBe(404);
    expect(answer.body).toBe("left");
  });

  it("says how to build the client when it is not built, and logs it", async () => {
    const { logger, lines } = capturingLogger();
    const s = await serveRoutes({ assetsDir: path.join(dir, "missing"), logger });
    servers.push(s);
    const page = await request(s.port, "GET", "/");
    expect(page.status).toBe(503);
    expect(page.body).toContain("npm run build:web");
    expect(lines().some((l) => l.includes("the web client is not built"))).toBe(true);
  });

  it("mints a development token for a user name and logs that development sign-in is on", async () => {
    const { logger, lines } = capturingLogger();
    const s = await serveRoutes({ assetsDir: dir, devTokenSecret: DEV_JWT_SECRET, logger });
    servers.push(s);
    expect(lines().some((l) => l.includes("development sign-in is on"))).toBe(true);
    expect((await request(s.port, "GET", DEV_TOKEN_PATH)).status).toBe(200);
    const answer = await request(s.port, "POST", DEV_TOKEN_PATH, JSON.stringify({ userId: "alice" }), { "content-type": "application/json" });
    expect(answer.status).toBe(200);
    expect(answer.headers["cache-control"]).toBe("no-store");
    const { token, userId } = JSON.parse(answer.body) as { token: string; userId: string };
    expect(userId).toBe("alice");
    const principal = await createTokenVerifier(DEV_JWT_SECRET).verify(`Bearer ${token}`);
    expect(principal.userId).toBe("alice");
    expect(principal.expiresAtMs).toBeGreaterThan(Date.now());
  });

  it.each([
    ["a user name with a space", JSON.stringify({ userId: "a b" }), 400, "a user name is 1-64"],
    ["no user name", JSON.stringify({}), 400, "a user name is 1-64"],
    ["a body that is not JSON", "alice", 400, "the body must be JSON"],
    ["a body over the bound", JSON.stringify({ userId: "x".repeat(2000) }), 413, "over 1024 bytes"],
  ])("refuses %s with a precise error", async (_what, body, status, error) => {
    const s = await serveRoutes({ assetsDir: dir, devTokenSecret: DEV_JWT_SECRET, logger: pino({ level: "silent" }) });
    servers.push(s);
    const answer = await request(s.port, "POST", DEV_TOKEN_PATH, body, { "content-type": "application/json" });
    expect(answer.status).toBe(status);
    expect((JSON.parse(answer.body) as { error: string }).error).toContain(error);
  });

  it("has no token endpoint without the development secret", async () => {
    const { logger, lines } = capturingLogger();
    const s = await serveRoutes({ assetsDir: dir, logger });
    servers.push(s);
    for (const method of ["GET", "POST"]) {
      const answer = await request(s.port, method, DEV_TOKEN_PATH, JSON.stringify({ userId: "alice" }));
      expect(answer.status).toBe(404);
    }
    expect(lines().some((l) => l.includes("development sign-in"))).toBe(false);
  });
});

describe("the gateway's web routes", () => {
  let running: RunningServer | undefined;
  afterEach(async () => {
    await running?.stop();
    running = undefined;
  });

  async function gateway(flags: string[]): Promise<number> {
    running = await startServer(loadConfig(["--port", "0", "--store", "memory", "--log-level", "silent", ...flags], {}), pino({ level: "silent" }));
    return running.gateway.port;
  }

  it("offers development tokens when the server runs on the development secret", async () => {
    const port = await gateway([]);
    const answer = await request(port, "POST", DEV_TOKEN_PATH, JSON.stringify({ userId: "bob" }));
    expect(answer.status).toBe(200);
    // Routes the gateway owns come first: /stats still answers.
    expect((await request(port, "GET", "/stats")).status).toBe(200);
  });

  it("answers 404 at the token endpoint when a secret is set", async () => {
    const port = await gateway(["--jwt-secret", "a-real-secret"]);
    expect((await request(port, "POST", DEV_TOKEN_PATH, JSON.stringify({ userId: "bob" }))).status).toBe(404);
    expect((await request(port, "GET", DEV_TOKEN_PATH)).status).toBe(404);
  });
});
