import { cors as connectCors } from "@connectrpc/connect";
import type { connectNodeAdapter } from "@connectrpc/connect-node";
import corsMiddleware from "cors";

/** A node:http / node:http2 request handler, as connectNodeAdapter returns. */
export type NodeHandlerFn = ReturnType<typeof connectNodeAdapter>;

/** Headers a browser app sends besides the protocols' own: the bearer token. */
const APP_HEADERS = ["Authorization"];
/** How long a browser may cache a preflight answer, in seconds. */
const PREFLIGHT_MAX_AGE_S = 7200;

/**
 * Parses the allowed-origins setting: comma-separated origins (scheme://host[:port], as a
 * browser sends them in `Origin`), or `*` for any origin; empty: none. Throws an Error naming
 * the setting and the entry that is not an origin.
 */
export function parseAllowedOrigins(raw: string): readonly string[] {
  const origins: string[] = [];
  for (const entry of raw.split(",").map((s) => s.trim()).filter((s) => s !== "")) {
    if (entry === "*") {
      origins.push(entry);
      continue;
    }
    let url: URL | undefined;
    try {
      url = new URL(entry);
    } catch {
      url = undefined;
    }
    if (url === undefined || (url.protocol !== "http:" && url.protocol !== "https:") || url.origin !== entry.replace(/\/$/, "")) {
      throw new Error(`--allowed-origins / IM_ALLOWED_ORIGINS: ${JSON.stringify(entry)} is not an origin (scheme://host[:port], no path)`);
    }
    origins.push(url.origin);
  }
  return origins;
}

/**
 * Wraps the gateway's request handler with CORS for the given origins, so browser apps served
 * from those origins can call it with the Connect and gRPC-Web protocols: preflights are
 * answered with the methods and headers connect-es lists (plus Authorization), and responses
 * expose the protocols' headers and trailers. With no origins, the handler is returned as it
 * is and no CORS header is ever sent (same-origin only).
 */
export function withCors(allowedOrigins: readonly string[], handler: NodeHandlerFn): NodeHandlerFn {
  if (allowedOrigins.length === 0) return handler;
  const middleware = corsMiddleware({
    origin: allowedOrigins.includes("*") ? "*" : [...allowedOrigins],
    methods: [...connectCors.allowedMethods],
    allowedHeaders: [...connectCors.allowedHeaders, ...APP_HEADERS],
    exposedHeaders: [...connectCors.exposedHeaders],
    maxAge: PREFLIGHT_MAX_AGE_S,
  });
  return (req, res) => middleware(req, res, () => handler(req, res));
}
