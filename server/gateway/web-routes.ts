import { existsSync } from "node:fs";
import type http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Logger } from "pino";
import sirv from "sirv";
import { isUserId } from "../core/conversation-id.js";
import { mintToken } from "./auth.js";
import type { NodeHandlerFn } from "./cors.js";

type NodeServerRequest = Parameters<NodeHandlerFn>[0];
type NodeServerResponse = Parameters<NodeHandlerFn>[1];

/** Where `npm run build:web` puts the web client. */
export const DEFAULT_WEB_ASSETS_DIR = fileURLToPath(new URL("../../web/dist", import.meta.url));
/** The development token endpoint. */
export const DEV_TOKEN_PATH = "/dev/token";
/** Largest request body the development token endpoint reads. */
const DEV_TOKEN_BODY_MAX_BYTES = 1024;
/** Lifetime of a development token; the page fetches a new one before it expires. */
const DEV_TOKEN_TTL_S = 12 * 3600;

/** HTML may load scripts and styles from its own origin only; it may call any gateway (`?server=`). */
const HTML_SECURITY_HEADERS = {
  "Content-Security-Policy": "default-src 'self'; connect-src *; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
};

/** What the web routes are built from. */
export interface WebRoutesOptions {
  /** The built web client; default DEFAULT_WEB_ASSETS_DIR. */
  readonly assetsDir?: string;
  /**
   * The JWT secret to mint development tokens with, given only when the server runs on the
   * development secret (no IM_JWT_SECRET). Absent: the endpoint does not exist (404).
   */
  readonly devTokenSecret?: string;
  readonly logger: Logger;
}

/** Serves a request that no RPC route took; returns false to leave it to the caller (404). */
export type WebRoutes = (req: NodeServerRequest, res: NodeServerResponse) => boolean;

/**
 * The web client's routes on the gateway's port: the built assets at `/` (hashed files under
 * /assets/ cached for good, everything else revalidated), and in development the token
 * endpoint: `GET /dev/token` says it exists, `POST /dev/token {"userId": "alice"}` answers
 * `{"token", "userId", "expiresInS"}`.
 */
export function createWebRoutes(options: WebRoutesOptions): WebRoutes {
  const { logger, devTokenSecret } = options;
  const dir = options.assetsDir ?? DEFAULT_WEB_ASSETS_DIR;
  const built = existsSync(path.join(dir, "index.html"));
  const serve = built
    ? sirv(dir, {
        etag: true,
        setHeaders(res, pathname) {
          if (pathname.startsWith("/assets/")) res.setHeader("Cache-Control", "public, max-age=31536000, immutable");
          else res.setHeader("Cache-Control", "no-cache");
          if (pathname === "/" || pathname.endsWith(".html")) for (const [k, v] of Object.entries(HTML_SECURITY_HEADERS)) res.setHeader(k, v);
        },
      })
    : undefined;
  if (!built) logger.warn({ dir }, "the web client is not built, so / has no page: run npm run build:web (npm start builds it)");
  if (devTokenSecret !== undefined) {
    logger.warn(`development sign-in is on: ${DEV_TOKEN_PATH} mints a token for any user name because IM_JWT_SECRET is not set`);
  }

  return (req, res) => {
    const out = res as http.ServerResponse;
    const pathname = (req.url ?? "/").split("?")[0] ?? "/";
    if (pathname === DEV_TOKEN_PATH) {
      if (devTokenSecret === undefined) return false;
      void devToken(req, out, devTokenSecret).catch((error: unknown) => {
        logger.warn({ err: error }, "development token request failed");
        if (!out.headersSent) sendJson(out, 500, { error: "internal error" });
        else out.destroy();
      });
      return true;
    }
    if (req.method !== "GET" && req.method !== "HEAD") return false;
    if (serve === undefined) {
      if (pathname !== "/" && pathname !== "/index.html") return false;
      out.writeHead(503, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
      out.end("The web client is not built: run npm run build:web (npm start builds it).\n");
      return true;
    }
    // sirv indexes the directory when it is created, so it finds a file or calls next at once.
    let handled = true;
    serve(req as http.IncomingMessage, out, () => {
      handled = false;
    });
    return handled;
  };
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store", ...headers });
  res.end(JSON.stringify(body));
}

async function devToken(req: NodeServerRequest, res: http.ServerResponse, secret: string): Promise<void> {
  if (req.method === "GET" || req.method === "HEAD") {
    sendJson(res, 200, { devSignIn: true, request: `POST ${DEV_TOKEN_PATH} {"userId": "<name>"}` });
    return;
  }
  if (req.method !== "POST") {
    sendJson(res, 405, { error: `use POST ${DEV_TOKEN_PATH}` }, { allow: "GET, HEAD, POST" });
    return;
  }
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.byteLength;
    if (size > DEV_TOKEN_BODY_MAX_BYTES) {
      sendJson(res, 413, { error: `the request body is over ${DEV_TOKEN_BODY_MAX_BYTES} bytes` });
      return;
    }
    chunks.push(chunk);
  }
  let userId: unknown;
  try {
    userId = (JSON.parse(Buffer.concat(chunks).toString("utf8")) as { userId?: unknown } | null)?.userId;
  } catch {
    sendJson(res, 400, { error: 'the body must be JSON: {"userId": "<name>"}' });
    return;
  }
  if (typeof userId !== "string" || !isUserId(userId)) {
    sendJson(res, 400, { error: "a user name is 1-64 of A-Z a-z 0-9 _ . @ -" });
    return;
  }
  const token = await mintToken(secret, userId, DEV_TOKEN_TTL_S);
  sendJson(res, 200, { token, userId, expiresInS: DEV_TOKEN_TTL_S });
}
