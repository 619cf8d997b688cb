import { Code, ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { ErrorDetailSchema, ErrorReason } from "../gen/im/v1/message_pb.js";
import type { Clock } from "../server/core/clock.js";
import type { Principal, TokenVerifier } from "../server/gateway/auth.js";

/**
 * Bearer tokens of the simulated deployment: `<user id>.<expiry in epoch ms>` (0: no expiry).
 * The verifier is the TokenVerifier port with the production verifier's rules that matter to
 * the gateway (a token names a user, expires, is refused with UNAUTHENTICATED), on the node's
 * clock; signatures are not simulated.
 */
export function mintToken(userId: string, expiresAtMs: number): string {
  return `${userId}.${expiresAtMs}`;
}

/** The production verifier's leeway on `exp` (createTokenVerifier's clockToleranceS). */
const CLOCK_TOLERANCE_MS = 5_000;

function unauthenticated(message: string): ConnectError {
  return new ConnectError(message, Code.Unauthenticated, undefined, [
    { desc: ErrorDetailSchema, value: create(ErrorDetailSchema, { reason: ErrorReason.UNAUTHENTICATED, retryable: false }) },
  ]);
}

/** Verifies simulated tokens against `clock` (a node's clock). */
export function createSimTokenVerifier(clock: Clock): TokenVerifier {
  return {
    async verify(authorization) {
      const match = authorization === null ? null : /^Bearer (\S+)\.(\d+)$/.exec(authorization);
      if (match === null) throw unauthenticated("authorization header must be: Bearer <token>");
      const expiresAtMs = Number(match[2]);
      if (expiresAtMs !== 0 && clock.nowMs() > expiresAtMs + CLOCK_TOLERANCE_MS) throw unauthenticated("token expired");
      const principal: Principal = { userId: match[1]!, expiresAtMs: expiresAtMs === 0 ? Infinity : expiresAtMs };
      return principal;
    },
  };
}
