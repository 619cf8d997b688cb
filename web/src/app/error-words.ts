import { Code, ConnectError } from "@connectrpc/connect";
import { DisconnectReason, type Disconnect } from "../../../gen/im/v1/gateway_pb.js";
import { ErrorDetailSchema, ErrorReason } from "../../../gen/im/v1/message_pb.js";

/** What the server said, as a person reads it; the server's own message follows in brackets. */
const REASONS: Partial<Record<ErrorReason, string>> = {
  [ErrorReason.INVALID_ARGUMENT]: "Not accepted",
  [ErrorReason.UNAUTHENTICATED]: "Not signed in, or the sign-in expired: sign in again",
  [ErrorReason.NOT_MEMBER]: "You are not a member of this conversation",
  [ErrorReason.CONVERSATION_NOT_FOUND]: "This conversation does not exist",
  [ErrorReason.BODY_TOO_LARGE]: "Message too large",
  [ErrorReason.OUT_OF_RANGE]: "Out of range",
  [ErrorReason.FAILED_PRECONDITION]: "Not possible for this conversation",
  [ErrorReason.LIMIT_EXCEEDED]: "Limit reached",
  [ErrorReason.UNAVAILABLE]: "The server's store is unavailable; retrying",
  [ErrorReason.INTERNAL]: "The server failed (internal error)",
  [ErrorReason.PERMISSION_DENIED]: "Not allowed: only the group's owner may do that",
  [ErrorReason.TOO_MANY_CONNECTIONS]: "Too many open tabs or devices for this user: close one and this page reconnects",
  [ErrorReason.RATE_LIMITED]: "Sending too fast: wait a moment",
  [ErrorReason.CALL_NOT_FOUND]: "This call is over or does not exist",
  [ErrorReason.NOT_CALL_PARTY]: "You are not part of this call",
  [ErrorReason.CALL_STATE]: "Not possible in this call now",
  [ErrorReason.ANSWERED_ELSEWHERE]: "Answered on another device",
  [ErrorReason.ALREADY_IN_CALL]: "Already in a call",
  [ErrorReason.ROOM_NOT_FOUND]: "This room does not exist",
  [ErrorReason.ROOM_FULL]: "The room is full",
  [ErrorReason.ROLE_NOT_ALLOWED]: "Not allowed in this room",
  [ErrorReason.MEDIA_UNAVAILABLE]: "Calls are not available on this server right now",
};

/** Words for errors without a reason detail (transport failures, other servers). */
const CODES: Partial<Record<Code, string>> = {
  [Code.Canceled]: "Cancelled",
  [Code.Unknown]: "Cannot reach the server",
  [Code.InvalidArgument]: "Not accepted",
  [Code.DeadlineExceeded]: "The server did not answer in time",
  [Code.NotFound]: "Not found",
  [Code.PermissionDenied]: "Not allowed",
  [Code.ResourceExhausted]: "Limit reached",
  [Code.FailedPrecondition]: "Not possible now",
  [Code.OutOfRange]: "Out of range",
  [Code.Unimplemented]: "The server does not offer this",
  [Code.Internal]: "The server failed (internal error)",
  [Code.Unavailable]: "Cannot reach the server",
  [Code.Unauthenticated]: "Not signed in, or the sign-in expired: sign in again",
};

/**
 * Any error as one sentence for a person: the meaning of its reason (or code), then what the
 * server said exactly, e.g. "Message too large (message body is 70000 bytes; the limit is 65536)".
 */
export function errorWords(error: unknown): string {
  const e = ConnectError.from(error);
  const reason = e.findDetails(ErrorDetailSchema)[0]?.reason;
  const meaning = (reason !== undefined ? REASONS[reason] : undefined) ?? CODES[e.code] ?? "Something went wrong";
  const said = e.rawMessage.trim();
  return said === "" || said.toLowerCase() === meaning.toLowerCase() ? meaning : `${meaning} (${said})`;
}

/** Whether an error means the token was refused (sign in again). */
export function isSignInError(error: unknown): boolean {
  return ConnectError.from(error).code === Code.Unauthenticated;
}

const DISCONNECTS: Record<DisconnectReason, string> = {
  [DisconnectReason.UNSPECIFIED]: "The server closed the connection",
  [DisconnectReason.SERVER_SHUTDOWN]: "The server is restarting; reconnecting shortly",
  [DisconnectReason.SLOW_CONSUMER]: "This page fell behind the server; reconnecting to catch up",
  [DisconnectReason.TOKEN_EXPIRED]: "The sign-in expired; reconnecting with a new token",
  [DisconnectReason.HEARTBEAT_TIMEOUT]: "The connection went silent; reconnecting",
  [DisconnectReason.PROTOCOL_ERROR]: "The server did not understand this page (protocol error); reconnecting",
};

/** A disconnect frame in words. */
export function disconnectWords(d: Disconnect): string {
  return DISCONNECTS[d.reason] ?? DISCONNECTS[DisconnectReason.UNSPECIFIED];
}
