import { Code, ConnectError } from "@connectrpc/connect";
import { errors as joseErrors, jwtVerify, SignJWT } from "jose";
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

/** An HS256 verifier for `secret`, with `clockToleranceS` of leeway on exp/nbf. */
export function createTokenVerifier(secret: string, clockToleranceS = 5): TokenVerifier {
  const key = new TextEncoder().encode(secret);
  return {
    async verify(authorization) {
      if (authorization === null || authorization === "") throw unauthenticated("missing authorization header (expected: Bearer <JWT>)");
      const match = /^Bearer\s+(\S+)$/i.exec(authorization);
      if (match === null) throw unauthenticated("authorization header must be: Bearer <JWT>");
      let payload;
      try {
        ({ payload } = await jwtVerify(match[1]!, key, { algorithms: ["HS256"], clockTolerance: clockToleranceS }));
      } catch (error) {
        if (error instanceof joseErrors.JWTExpired) throw unauthenticated("token expired", error);
        if (error instanceof joseErrors.JWSSignatureVerificationFailed) throw unauthenticated("token signature is invalid", error);
        if (error instanceof joseErrors.JOSEAlgNotAllowed) throw unauthenticated("token algorithm must be HS256", error);
        if (error instanceof joseErrors.JWTClaimValidationFailed) throw unauthenticated(`token claim "${error.claim}" is invalid`, error);
        throw unauthenticated("token is malformed", error);
      }
      const sub = payload.sub;
      if (typeof sub !== "string" || !isUserId(sub)) throw unauthenticated("token subject must be a user id (1-64 of A-Z a-z 0-9 _ . @ -)");
      return { userId: sub, expiresAtMs: payload.exp === undefined ? Infinity : payload.exp * 1000 };
    },
  };
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
