/**
 * Where the page's bearer token comes from, in this order:
 * 1. an auth hook: the page that embeds the client defines `window.microchatAuth` with a
 *    `token()` function returning the JWT (called before every connection);
 * 2. the URL fragment `#token=<JWT>` (kept in this tab's sessionStorage and removed from the
 *    address bar);
 * 3. in development only (the server has no IM_JWT_SECRET), a user name picked on the sign-in
 *    form, for which the gateway's `/dev/token` endpoint mints a token.
 */

import { Code, ConnectError } from "@connectrpc/connect";
import type { TokenSource } from "./token-source.js";

export type { TokenSource };


/** The auth hook an embedding page may define. */
export interface MicrochatAuthHook {
  token(): string | Promise<string>;
}

declare global {
  interface Window {
    microchatAuth?: MicrochatAuthHook;
  }
}

const TOKEN_KEY = "microchat.token";
const DEV_USER_KEY = "microchat.devUser";
/** A token is renewed this long before it expires. */
const RENEW_BEFORE_MS = 60_000;

/** The claims the page reads from a JWT (the server verifies it; the page only displays). */
export function readClaims(token: string): { sub: string; expMs: number } | undefined {
  try {
    const payload = token.split(".")[1] ?? "";
    const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(payload.length / 4) * 4, "="));
    const claims = JSON.parse(json) as { sub?: unknown; exp?: unknown };
    if (typeof claims.sub !== "string" || claims.sub === "") return undefined;
    return { sub: claims.sub, expMs: typeof claims.exp === "number" ? claims.exp * 1000 : Infinity };
  } catch {
    return undefined;
  }
}

/** A token source for a fixed token. */
function fixedToken(token: string, kind: "fragment"): TokenSource | undefined {
  const claims = readClaims(token);
  if (claims === undefined) return undefined;
  return { userId: claims.sub, kind, token: async () => token };
}

/** The development endpoint's token, or why there is none: in words, and the HTTP status (0: no answer). */
type DevTokenAnswer = { ok: true; token: string } | { ok: false; status: number; error: string; cause: string };

/** Asks the gateway's development endpoint for a token for `userId`. */
export async function requestDevToken(baseUrl: string, userId: string): Promise<DevTokenAnswer> {
  let response: Response;
  try {
    response = await fetch(new URL("dev/token", baseUrl), { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ userId }) });
  } catch (error) {
    const cause = (error as Error).message;
    return { ok: false, status: 0, error: `Cannot reach the server (${cause})`, cause };
  }
  if (response.status === 404) {
    const error = "This server issues no development tokens (it has IM_JWT_SECRET set): open the page with #token=<JWT> or sign in through your app";
    return { ok: false, status: 404, error, cause: error };
  }
  const body = (await response.json().catch(() => ({}))) as { token?: string; error?: string };
  if (!response.ok || typeof body.token !== "string") {
    const cause = body.error ?? `HTTP ${response.status}`;
    return { ok: false, status: response.status, error: `The server refused (${cause})`, cause };
  }
  return { ok: true, token: body.token };
}

/** How the gateway lets a person sign in: with development tokens, with a token, or not now (why, in words). */
export type SignInMode = { readonly mode: "dev" } | { readonly mode: "token" } | { readonly mode: "unreachable"; readonly error: string };

/** Asks the gateway whether it offers development sign-in (its endpoint answers 404 when it does not). */
export async function signInMode(baseUrl: string): Promise<SignInMode> {
  try {
    const response = await fetch(new URL("dev/token", baseUrl), { method: "GET" });
    if (response.ok) return { mode: "dev" };
    if (response.status === 404) return { mode: "token" };
    return { mode: "unreachable", error: `The server answered HTTP ${response.status}` };
  } catch (error) {
    return { mode: "unreachable", error: `Cannot reach the server (${(error as Error).message})` };
  }
}

/** A token source that mints development tokens for `userId`, renewing them before expiry. */
export function devTokens(baseUrl: string, userId: string, first: string): TokenSource {
  let current = first;
  return {
    userId,
    kind: "dev",
    async token() {
      const expMs = readClaims(current)?.expMs ?? 0;
      if (expMs - Date.now() > RENEW_BEFORE_MS) return current;
      const answer = await requestDevToken(baseUrl, userId);
      // No answer: retried like any unreachable server. A refusal: signing in again is needed.
      if (!answer.ok) throw new ConnectError(answer.cause, answer.status === 0 ? Code.Unavailable : Code.Unauthenticated);
      current = answer.token;
      return current;
    },
  };
}

/** The token source the page already has (hook, fragment, or this tab's earlier sign-in). */
export async function restoreSignIn(baseUrl: string): Promise<TokenSource | undefined> {
  const hook = window.microchatAuth;
  if (hook !== undefined) {
    const first = await hook.token();
    const claims = readClaims(first);
    if (claims !== undefined) return { userId: claims.sub, kind: "hook", token: async () => hook.token() };
  }
  const fragment = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fragment !== null && fragment !== "") {
    sessionStorage.setItem(TOKEN_KEY, fragment);
    history.replaceState(null, "", `${location.pathname}${location.search}`);
  }
  const stored = sessionStorage.getItem(TOKEN_KEY);
  if (stored !== null) {
    const source = fixedToken(stored, "fragment");
    if (source !== undefined) return source;
    sessionStorage.removeItem(TOKEN_KEY);
  }
  const devUser = sessionStorage.getItem(DEV_USER_KEY);
  if (devUser !== null) {
    const answer = await requestDevToken(baseUrl, devUser);
    if (answer.ok) return devTokens(baseUrl, devUser, answer.token);
    // A server that is down now: stay signed in; the page connects once it answers.
    if (answer.status === 0) return devTokens(baseUrl, devUser, "");
    sessionStorage.removeItem(DEV_USER_KEY);
  }
  return undefined;
}

/** Signs in with a development token for `userId`; resolves with the source or the refusal in words. */
export async function devSignIn(baseUrl: string, userId: string): Promise<TokenSource | string> {
  const answer = await requestDevToken(baseUrl, userId);
  if (!answer.ok) return answer.error;
  sessionStorage.setItem(DEV_USER_KEY, userId);
  return devTokens(baseUrl, userId, answer.token);
}

/** Signs in with a pasted token. */
export function tokenSignIn(token: string): TokenSource | string {
  const source = fixedToken(token.trim(), "fragment");
  if (source === undefined) return "That is not a token this page can read (expected a JWT with a sub claim)";
  sessionStorage.setItem(TOKEN_KEY, token.trim());
  return source;
}

/** Forgets this tab's sign-in. */
export function signOut(): void {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(DEV_USER_KEY);
}
