import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorDetailSchema, ErrorReason, type ErrorDetail } from "../../gen/im/v1/message_pb.js";
import { RequestErrorSchema, type RequestError } from "../../gen/im/v1/gateway_pb.js";
import { StoreUnavailableError, type Failure, type FailureReason, type Result } from "../core/result.js";

/** The one table from domain reasons to wire codes. */
const REASONS: Record<FailureReason, { code: Code; reason: ErrorReason }> = {
  invalid_argument: { code: Code.InvalidArgument, reason: ErrorReason.INVALID_ARGUMENT },
  body_too_large: { code: Code.InvalidArgument, reason: ErrorReason.BODY_TOO_LARGE },
  not_member: { code: Code.PermissionDenied, reason: ErrorReason.NOT_MEMBER },
  permission_denied: { code: Code.PermissionDenied, reason: ErrorReason.PERMISSION_DENIED },
  conversation_not_found: { code: Code.NotFound, reason: ErrorReason.CONVERSATION_NOT_FOUND },
  out_of_range: { code: Code.OutOfRange, reason: ErrorReason.OUT_OF_RANGE },
  failed_precondition: { code: Code.FailedPrecondition, reason: ErrorReason.FAILED_PRECONDITION },
  limit_exceeded: { code: Code.ResourceExhausted, reason: ErrorReason.LIMIT_EXCEEDED },
  call_not_found: { code: Code.NotFound, reason: ErrorReason.CALL_NOT_FOUND },
  not_call_party: { code: Code.PermissionDenied, reason: ErrorReason.NOT_CALL_PARTY },
  call_state: { code: Code.FailedPrecondition, reason: ErrorReason.CALL_STATE },
  answered_elsewhere: { code: Code.FailedPrecondition, reason: ErrorReason.ANSWERED_ELSEWHERE },
  already_in_call: { code: Code.FailedPrecondition, reason: ErrorReason.ALREADY_IN_CALL },
  room_not_found: { code: Code.NotFound, reason: ErrorReason.ROOM_NOT_FOUND },
  room_full: { code: Code.ResourceExhausted, reason: ErrorReason.ROOM_FULL },
  role_not_allowed: { code: Code.PermissionDenied, reason: ErrorReason.ROLE_NOT_ALLOWED },
  media_unavailable: { code: Code.Unavailable, reason: ErrorReason.MEDIA_UNAVAILABLE },
  rate_limited: { code: Code.ResourceExhausted, reason: ErrorReason.RATE_LIMITED },
};

const UNAVAILABLE_RETRY_MS = 500;

function detail(reason: ErrorReason, retryable: boolean, retryAfterMs = 0): ErrorDetail {
  return create(ErrorDetailSchema, { reason, retryable, retryAfterMs });
}

/** A domain failure as a ConnectError carrying an ErrorDetail. */
export function failureToConnectError(failure: Failure): ConnectError {
  const { code, reason } = REASONS[failure.reason];
  // Only a rate limit says when to come back; every other refusal stands.
  const retryAfterMs = failure.retryAfterMs;
  const value = retryAfterMs === undefined ? detail(reason, false) : detail(reason, true, Math.max(1, Math.ceil(retryAfterMs)));
  return new ConnectError(failure.message, code, undefined, [{ desc: ErrorDetailSchema, value }]);
}

/** An invalid request (protovalidate violations or a bad field) as INVALID_ARGUMENT. */
export function invalidArgument(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument, undefined, [
    { desc: ErrorDetailSchema, value: detail(ErrorReason.INVALID_ARGUMENT, false) },
  ]);
}

/** ErrorDetail reasons for refusals raised by the protocol layer, by code. */
const PROTOCOL_REASONS: Partial<Record<Code, ErrorReason>> = {
  [Code.InvalidArgument]: ErrorReason.INVALID_ARGUMENT,
  [Code.ResourceExhausted]: ErrorReason.LIMIT_EXCEEDED,
  [Code.Internal]: ErrorReason.INTERNAL,
};

/** connect-es's message for a request it could not decode (protocol/serialization.ts). */
const UNDECODABLE_PREFIX = "parse binary: ";
/** connect-es's message for a message over readMaxBytes (protocol/limit-io.ts); the size only when known. */
const OVER_LIMIT = /^message size (?:(\d+) )?is larger than configured readMaxBytes (\d+)$/;

/**
 * A refusal as this server documents it: with an ErrorDetail, and INVALID_ARGUMENT for a
 * request that cannot be decoded. connect-es raises some refusals itself, before any handler
 * runs and without details: a message over the read limit (RESOURCE_EXHAUSTED), and a message
 * that is not valid protobuf, which it calls INTERNAL though the fault is the client's.
 * `requestType` names the request message in the rewritten message. Errors that already carry
 * an ErrorDetail are returned as they are.
 */
export function withErrorDetail(error: ConnectError, requestType?: string): ConnectError {
  if (error.findDetails(ErrorDetailSchema).length > 0) return error;
  let { code, rawMessage: message } = error;
  // Worded as the long connection's own reader words them (lean-stream.ts).
  const over = code === Code.ResourceExhausted ? OVER_LIMIT.exec(message) : null;
  if (code === Code.Internal && message.startsWith(UNDECODABLE_PREFIX)) {
    code = Code.InvalidArgument;
    message = `a request message could not be decoded as ${requestType ?? "the request type"}: ${message.slice(UNDECODABLE_PREFIX.length)}`;
  } else if (over !== null) {
    message = `a request message ${over[1] === undefined ? "" : `of ${over[1]} bytes `}is over the limit of ${over[2]}`;
  }
  const reason = PROTOCOL_REASONS[code] ?? ErrorReason.UNSPECIFIED;
  const mapped = new ConnectError(message, code, error.metadata, [{ desc: ErrorDetailSchema, value: detail(reason, false) }], error.cause ?? error);
  mapped.details.push(...error.details);
  return mapped;
}

/**
 * Anything thrown inside a handler, as the ConnectError the client sees. Store outages are
 * UNAVAILABLE and retryable; ConnectErrors pass through (given an ErrorDetail when the
 * protocol layer raised them without one); everything else is INTERNAL with the original kept
 * in `cause` and no internals in the message.
 */
export function toConnectError(error: unknown): ConnectError {
  if (error instanceof ConnectError) return withErrorDetail(error);
  if (error instanceof StoreUnavailableError) {
    return new ConnectError("the message store is unavailable; retry with the same client_msg_id", Code.Unavailable, undefined, [
      { desc: ErrorDetailSchema, value: detail(ErrorReason.UNAVAILABLE, true, UNAVAILABLE_RETRY_MS) },
    ], error);
  }
  return new ConnectError("internal error", Code.Internal, undefined, [
    { desc: ErrorDetailSchema, value: detail(ErrorReason.INTERNAL, false) },
  ], error);
}

/** A ConnectError as the error frame of the long connection. */
export function toRequestError(error: ConnectError): RequestError {
  const found = error.findDetails(ErrorDetailSchema)[0];
  return create(RequestErrorSchema, {
    code: error.code,
    message: error.rawMessage,
    detail: found ?? detail(ErrorReason.UNSPECIFIED, false),
  });
}

/** The value of a successful result; a failure is thrown as its ConnectError. */
export function unwrap<T>(result: Result<T>): T {
  if (!result.ok) throw failureToConnectError(result);
  return result.value;
}
