import { createHmac } from "node:crypto";
import type { IceServerEntry, IceServerSet } from "../core/call-model.js";

/** Where STUN/TURN servers are and how their credentials are made. */
export interface TurnOptions {
  /** stun:/turn:/turns: URLs; empty: no ICE servers (host candidates only). */
  readonly urls: readonly string[];
  /** The TURN server's shared secret (coturn `static-auth-secret`); empty: no TURN credentials. */
  readonly secret: string;
  /** Credential lifetime in seconds. */
  readonly ttlS: number;
}

/**
 * TURN REST credentials (the "TURN REST API" draft, coturn's `use-auth-secret`): username
 * `<expiry unix seconds>:<user id>`, password base64(HMAC-SHA1(secret, username)). The TURN
 * server checks the signature and the expiry itself, so the platform and coturn share only
 * the secret. STUN URLs are listed without credentials.
 */
export function turnCredentials(options: TurnOptions, userId: string, nowMs: number): IceServerSet {
  if (options.urls.length === 0) return { iceServers: [], expiresAtMs: 0 };
  const stun = options.urls.filter((u) => u.startsWith("stun:"));
  const turn = options.urls.filter((u) => !u.startsWith("stun:"));
  const servers: IceServerEntry[] = [];
  if (stun.length > 0) servers.push({ urls: stun, username: "", credential: "" });
  if (turn.length === 0 || options.secret === "") return { iceServers: servers, expiresAtMs: 0 };
  const expiresS = Math.floor(nowMs / 1000) + options.ttlS;
  const username = `${expiresS}:${userId}`;
  const credential = createHmac("sha1", options.secret).update(username).digest("base64");
  servers.push({ urls: turn, username, credential });
  return { iceServers: servers, expiresAtMs: expiresS * 1000 };
}

/** Splits a comma-separated URL list, dropping empty entries. */
export function parseUrlList(value: string): string[] {
  return value.split(",").map((u) => u.trim()).filter((u) => u !== "");
}
