import { Code, ConnectError } from "@connectrpc/connect";
import { createVerifier, TokenError } from "fast-jwt";
import { SignJWT } from "jose";
import { create } from "@bufbuild/protobuf";
import { ErrorDetailSchema, ErrorReason } from "../../gen/im/v1/message_pb.js";
import { isUserId } from "../core/conversation-id.js";

/** The development secret used when IM_JWT_SECRET is not set. Never use it in production. */
export const DEV_JWT_SECRET = "microchat-dev-secret-change-me";

/** Who is calling, from a verified token. */
export interface Principal {
  readonly userId: string;
  /** Token expiry in ms since the epoch; Infinity when the token has no `exp`. */
  readonly expiresAtMs: number;
}

/** Verifies bearer tokens (HS256 JWTs whose `sub` is the user id). */
export interface TokenVerifier {
  /** The principal, or a ConnectError UNAUTHENTICATED saying precisely what is wrong. */
  verify(authorization: string | null): Promise<Principal>;
}

function unauthenticated(message: string, cause?: unknown): ConnectError {
  return new ConnectError(message, Code.Unauthenticated, undefined, [
    { desc: ErrorDetailSchema, value: create(ErrorDetailSchema, { reason: ErrorReason.UNAUTHENTICATED, retryable: false }) },
  ], cause);
}

/**
 * An HS256 verifier for `secret`, with `clockToleranceS` of leeway on exp/nbf. Verification
 * is synchronous (fast-jwt on node:crypto's HMAC, a few microseconds) rather than WebCrypto's
 * promise per token, which cost about half a millisecond of CPU per accepted connection.
 */
export function createTokenVerifier(secret: string, clockToleranceS = 5): TokenVerifier {
  const verifyToken = createVerifier({ key: secret, algorithms: ["HS256"], clockTolerance: clockToleranceS * 1000 });
  return {
    async verify(authorization) {
      if (authorization === null || authorization === "") throw unauthenticated("missing authorization header (expected: Bearer <JWT>)");
      const match = /^Bearer\s+(\S+)$/i.exec(authorization);
      if (match === null) throw unauthenticated("authorization header must be: Bearer <JWT>");
      let payload: { sub?: unknown; exp?: unknown };
      try {
        payload = verifyToken(match[1]!) as { sub?: unknown; exp?: unknown };
      } catch (error) {
        throw unauthenticated(tokenProblem(error), error);
      }
      const sub = payload.sub;
      if (typeof sub !== "string" || !isUserId(sub)) throw unauthenticated("token subject must be a user id (1-64 of A-Z a-z 0-9 _ . @ -)");
      const exp = payload.exp;
      return { userId: sub, expiresAtMs: typeof exp === "number" ? exp * 1000 : Infinity };
    },
  };
}

/** What is wrong with a token, in the words every client sees. */
function tokenProblem(error: unknown): string {
  const codes = TokenError.codes;
  switch ((error as { code?: string } | null)?.code) {
    case codes.expired:
      return "token expired";
    case codes.invalidSignature:
      return "token signature is invalid";
    case codes.invalidAlgorithm:
      return "token algorithm must be HS256";
    case codes.inactive:
      return 'token claim "nbf" is invalid';
    case codes.invalidClaimType:
    case codes.invalidClaimValue:
      return "token has an invalid claim";
    default:
      return "token is malformed";
  }
}

/** Mints an HS256 token for `userId` valid for `ttlS` seconds (development, tests, the CLI). */
export async function mintToken(secret: string, userId: string, ttlS = 24 * 3600): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(userId)
    .setIssuedAt()
    .setExpirationTime(`${ttlS}s`)
    .sign(new TextEncoder().encode(secret));
}
