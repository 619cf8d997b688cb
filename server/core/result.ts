/**
 * Expected outcomes of domain operations that are not successes. Each maps to exactly one
 * gRPC/Connect code at the edge (server/gateway/errors.ts).
 */
export type FailureReason =
  | "invalid_argument"
  | "body_too_large"
  | "not_member"
  | "conversation_not_found"
  | "out_of_range"
  | "failed_precondition"
  | "permission_denied"
  | "limit_exceeded"
  // Calls and live rooms (server/core/calls.ts).
  | "call_not_found"
  | "not_call_party"
  | "call_state"
  | "answered_elsewhere"
  | "already_in_call"
  | "room_not_found"
  | "room_full"
  | "role_not_allowed"
  | "media_unavailable"

  | "rate_limited";

/** A failed domain operation: why, and a message safe to show the caller. */
export interface Failure {
  readonly ok: false;
  readonly reason: FailureReason;
  readonly message: string;
  /** For rate_limited: the wait in ms until the same request would be allowed. */
  readonly retryAfterMs?: number;
}

/** A successful domain operation. */
export interface Success<T> {
  readonly ok: true;
  readonly value: T;
}

/** The result of a domain operation. */
export type Result<T> = Success<T> | Failure;

/** Wraps a value as a success. */
export function ok<T>(value: T): Success<T> {
  return { ok: true, value };
}

/** Builds a failure. */
export function fail(reason: FailureReason, message: string): Failure {
  return { ok: false, reason, message };
}

/**
 * Thrown by store adapters when the store did not answer or refused for a transient cause:
 * the outcome of a write is unknown (it may or may not have been applied), so the caller
 * retries with the same idempotency key. The gateway maps it to UNAVAILABLE.
 */
export class StoreUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StoreUnavailableError";
  }
}
