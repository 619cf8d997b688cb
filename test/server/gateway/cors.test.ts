import http from "node:http";
import { cors as connectCors } from "@connectrpc/connect";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { DEV_JWT_SECRET, mintToken } from "../../../server/gateway/auth.js";
import { parseAllowedOrigins } from "../../../server/gateway/cors.js";
import { loadConfig } from "../../../server/config.js";
import { startServer, type RunningServer } from "../../../server/main.js";

function request(port: number, method: string, urlPath: string, headers: Record<string, string>, body?: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
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

const SEND = "/im.v1.GatewayService/Send";
const LIST = "/im.v1.ConversationService/ListConversations";
const preflight = (origin: string) => ({ origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization,content-type,connect-protocol-version" });

describe("parseAllowedOrigins()", () => {
  it.each([
    ["", []],
    ["https://app.example.com", ["https://app.example.com"]],
    [" http://localhost:5173 , https://a.example/ ", ["http://localhost:5173", "https://a.example"]],
    ["*", ["*"]],
  ])("parses %j", (raw, origins) => {
    expect(parseAllowedOrigins(raw)).toEqual(origins);
  });

  it.each(["app.example.com", "https://app.example.com/path", "ftp://files.example", "https://a.example?x=1"])("refuses %j, naming the setting", (raw) => {
    expect(() => parseAllowedOrigins(raw)).toThrow(/IM_ALLOWED_ORIGINS: .* is not an origin/);
  });
});

describe("CORS on the gateway", () => {
  let running: RunningServer | undefined;
  afterEach(async () => {
    await running?.stop();
    running = undefined;
  });

  async function gateway(flags: string[]): Promise<number> {
    running = await startServer(loadConfig(["--port", "0", "--store", "memory", "--log-level", "silent", ...flags], {}), pino({ level: "silent" }));
    return running.gateway.port;
  }

  it("sends no CORS header at all by default", async () => {
    const port = await gateway([]);
    const pre = await request(port, "OPTIONS", SEND, preflight("https://app.example.com"));
    expect(pre.headers["access-control-allow-origin"]).toBeUndefined();
    const token = await mintToken(DEV_JWT_SECRET, "alice");
    const call = await request(port, "POST", LIST, { origin: "https://app.example.com", "content-type": "application/json", authorization: `Bearer ${token}` }, "{}");
    expect(call.status).toBe(200);
    expect(call.headers["access-control-allow-origin"]).toBeUndefined();
  });

  it("answers preflights from an allowed origin with the Connect and gRPC-Web methods and headers", async () => {
    const port = await gateway(["--allowed-origins", "https://app.example.com,http://localhost:5173"]);
    const pre = await request(port, "OPTIONS", SEND, preflight("http://localhost:5173"));
    expect(pre.status).toBe(204);
    expect(pre.headers["access-control-allow-origin"]).toBe("http://localhost:5173");
    const allowedHeaders = String(pre.headers["access-control-allow-headers"]).toLowerCase().split(",");
    for (const h of [...connectCors.allowedHeaders, "Authorization"]) expect(allowedHeaders).toContain(h.toLowerCase());
    expect(String(pre.headers["access-control-allow-methods"]).split(",")).toEqual([...connectCors.allowedMethods]);
    expect(pre.headers["access-control-max-age"]).toBe("7200");
  });

  it("lets an allowed origin read answers, trailers included, and not another origin", async () => {
    const port = await gateway(["--allowed-origins", "https://app.example.com"]);
    const token = await mintToken(DEV_JWT_SECRET, "alice");
    const headers = { "content-type": "application/json", authorization: `Bearer ${token}` };
    const allowed = await request(port, "POST", LIST, { ...headers, origin: "https://app.example.com" }, "{}");
    expect(allowed.status).toBe(200);
    expect(allowed.headers["access-control-allow-origin"]).toBe("https://app.example.com");
    const exposed = String(allowed.headers["access-control-expose-headers"]).toLowerCase().split(",");
    for (const h of connectCors.exposedHeaders) expect(exposed).toContain(h.toLowerCase());
    const other = await request(port, "OPTIONS", SEND, preflight("https://evil.example"));
    expect(other.headers["access-control-allow-origin"]).toBeUndefined();
  });

  it("allows any origin with *", async () => {
    const port = await gateway(["--allowed-origins", "*"]);
    const pre = await request(port, "OPTIONS", SEND, preflight("https://anywhere.example"));
    expect(pre.headers["access-control-allow-origin"]).toBe("*");
  });
});
