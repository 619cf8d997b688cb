import { SignJWT, UnsecuredJWT } from "jose";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { createTokenVerifier, mintToken } from "../../../server/gateway/auth.js";

const SECRET = "test-secret";
const key = new TextEncoder().encode(SECRET);
const now = () => Math.floor(Date.now() / 1000);

async function signed(claims: Record<string, unknown>, alg = "HS256", secret = key): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg }).sign(secret);
}

describe("createTokenVerifier()", () => {
  const verifier = createTokenVerifier(SECRET);

  it("accepts a token minted for a user, with its expiry", async () => {
    const token = await mintToken(SECRET, "alice", 60);
    const principal = await verifier.verify(`Bearer ${token}`);
    expect(principal.userId).toBe("alice");
    expect(Math.abs(principal.expiresAtMs - (now() + 60) * 1000)).toBeLessThanOrEqual(1000);
    expect((await verifier.verify(`bearer ${await signed({ sub: "bob" })}`)).expiresAtMs).toBe(Infinity);
  });

  it.each([
    ["no header", async () => null, "missing authorization header (expected: Bearer <JWT>)"],
    ["another scheme", async () => "Basic abc", "authorization header must be: Bearer <JWT>"],
    ["garbage", async () => "Bearer not.a.jwt", "token is malformed"],
    ["an expired token", async () => `Bearer ${await signed({ sub: "alice", exp: now() - 60 })}`, "token expired"],
    ["a token not valid yet", async () => `Bearer ${await signed({ sub: "alice", nbf: now() + 3600 })}`, 'token claim "nbf" is invalid'],
    ["another secret", async () => `Bearer ${await signed({ sub: "alice" }, "HS256", new TextEncoder().encode("other"))}`, "token signature is invalid"],
    ["HS512", async () => `Bearer ${await signed({ sub: "alice" }, "HS512")}`, "token algorithm must be HS256"],
    ["an unsigned token (alg none)", async () => `Bearer ${new UnsecuredJWT({ sub: "alice" }).encode()}`, "token is malformed"],
    ["no subject", async () => `Bearer ${await signed({})}`, "token subject must be a user id (1-64 of A-Z a-z 0-9 _ . @ -)"],
    ["a subject that is no user id", async () => `Bearer ${await signed({ sub: "not valid!" })}`, "token subject must be a user id (1-64 of A-Z a-z 0-9 _ . @ -)"],
  ])("refuses %s with UNAUTHENTICATED", async (_case, header, message) => {
    const error = await verifier.verify(await header()).then(() => undefined, (e: unknown) => e as ConnectError);
    expect(error?.code).toBe(Code.Unauthenticated);
    expect(error?.rawMessage).toBe(message);
  });

  it("allows the clock tolerance on exp", async () => {
    const token = await signed({ sub: "alice", exp: now() - 2 });
    expect((await verifier.verify(`Bearer ${token}`)).userId).toBe("alice");
  });
});
