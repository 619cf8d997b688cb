import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  ConnectRequestSchema,
  DisconnectReason,
  SendResponseSchema,
  type ConnectRequest,
  type ConnectResponse,
  type SendResponse,
  type SyncResponse,
} from "../gen/im/v1/gateway_pb.js";
import { ErrorDetailSchema } from "../gen/im/v1/message_pb.js";
import { fromWireMessage, type ClientMessage } from "./client-message.js";
import type { Answer, ClientRequest, DisconnectKind, RequestFailure, SendAck } from "./client-protocol.js";
import type { SyncAnswer } from "./sync-engine.js";

/** The protobuf frame of a core request (the same message serves the bidi stream and the unary calls). */
export function requestFrame(request: ClientRequest): ConnectRequest["frame"] {
  switch (request.kind) {
    case "send": {
      const s = request.send;
      const target = s.conversationId !== "" ? { case: "conversationId" as const, value: s.conversationId } : { case: "toUserId" as const, value: s.toUserId };
      return { case: "send", value: { $typeName: "im.v1.SendRequest", target, clientMsgId: s.clientMsgId, body: { $typeName: "im.v1.MessageBody", contentType: s.contentType, data: s.data } } };
    }
    case "sync":
      return {
        case: "sync",
        value: {
          $typeName: "im.v1.SyncRequest",
          cursors: request.cursors.map((c) => ({ $typeName: "im.v1.SyncCursor" as const, conversationId: c.conversationId, lastSeq: BigInt(c.lastSeq), readSeq: BigInt(c.readSeq) })),
          maxMessagesPerConversation: 0,
          maxSessions: 0,
        },
      };
    case "fetch":
      return { case: "fetchRange", value: { $typeName: "im.v1.FetchRangeRequest", conversationId: request.conversationId, afterSeq: BigInt(request.afterSeq), upToSeq: BigInt(request.upToSeq), limit: 0 } };
    case "markRead":
      return { case: "markRead", value: { $typeName: "im.v1.MarkReadRequest", conversationId: request.conversationId, readSeq: BigInt(request.readSeq) } };
    case "ping":
      return { case: "ping", value: { $typeName: "im.v1.PingRequest", clientTimeMs: BigInt(Math.floor(request.clientTimeMs)) } };
  }
}

/** A bidi-stream request frame. */
export function connectRequest(requestId: number, request: ClientRequest): ConnectRequest {
  return create(ConnectRequestSchema, { requestId: BigInt(requestId), frame: requestFrame(request) });
}

/** An answer frame (send, sync, fetchRange, markRead, pong) as the core's Answer; undefined for anything else. */
export function answerOf(frame: ConnectResponse["frame"]): Answer<ClientMessage> | undefined {
  switch (frame.case) {
    case "send":
      return { kind: "send", ack: ackOf(frame.value) };
    case "sync":
      return { kind: "sync", answer: syncAnswerOf(frame.value) };
    case "fetchRange":
      return { kind: "fetch", messages: frame.value.messages.map(fromWireMessage), hasMore: frame.value.hasMore };
    case "markRead":
      return { kind: "markRead", readSeq: Number(frame.value.readSeq) };
    case "pong":
      return { kind: "pong" };
    default:
      return undefined;
  }
}

export function ackOf(r: SendResponse): SendAck {
  return { conversationId: r.conversationId, seq: Number(r.seq), prevSeq: Number(r.prevSeq), messageId: r.messageId, sentAtMs: Number(r.sentAtMs), clientMsgId: r.clientMsgId, duplicate: r.duplicate };
}

/** The SendResponse an app's send() resolves with. */
export function sendResponseOf(ack: SendAck): SendResponse {
  return create(SendResponseSchema, { conversationId: ack.conversationId, seq: BigInt(ack.seq), prevSeq: BigInt(ack.prevSeq), messageId: ack.messageId, sentAtMs: BigInt(ack.sentAtMs), clientMsgId: ack.clientMsgId, duplicate: ack.duplicate });
}

export function syncAnswerOf(r: SyncResponse): SyncAnswer<ClientMessage> {
  return {
    sessions: r.sessions.map((u) => ({
      conversationId: u.session?.conversationId ?? "",
      lastSeq: Number(u.session?.lastSeq ?? 0n),
      readSeq: Number(u.session?.readSeq ?? 0n),
      messages: u.messages.map(fromWireMessage),
      hasMoreMessages: u.hasMoreMessages,
    })),
    removedConversationIds: r.removedConversationIds,
    hasMoreSessions: r.hasMoreSessions,
  };
}

/** The error of an `error` frame, with its ErrorDetail attached as a Connect error detail. */
export function errorOfFrame(e: { code: number; message: string; detail?: { reason: number; retryable: boolean; retryAfterMs: number } }): ConnectError {
  const detail = e.detail;
  return new ConnectError(e.message, e.code as Code, undefined, detail === undefined ? undefined : [{ desc: ErrorDetailSchema, value: { reason: detail.reason, retryable: detail.retryable, retryAfterMs: detail.retryAfterMs } }]);
}

/**
 * A transport or server error as the core sees it: retryable as the ErrorDetail says (without
 * one, only UNAVAILABLE is), after retry_after_ms, and whether the token was refused.
 */
export function failureOf(error: unknown): RequestFailure {
  const e = ConnectError.from(error);
  const detail = e.findDetails(ErrorDetailSchema)[0];
  return {
    reason: "server",
    retryable: detail?.retryable ?? e.code === Code.Unavailable,
    retryAfterMs: detail?.retryAfterMs ?? 0,
    unauthenticated: e.code === Code.Unauthenticated,
    cause: e,
  };
}

/** The error a failed send or markRead rejects with. */
export function errorOfFailure(failure: RequestFailure): ConnectError {
  if (failure.cause !== undefined) return ConnectError.from(failure.cause);
  switch (failure.reason) {
    case "closed":
      return new ConnectError("client closed", Code.Canceled);
    case "not-connected":
      return new ConnectError("not connected", Code.Unavailable);
    case "connection-lost":
      return new ConnectError("connection lost", Code.Unavailable);
    default:
      return new ConnectError("too many requests waiting for a connection", Code.ResourceExhausted);
  }
}

export function disconnectKind(reason: DisconnectReason): DisconnectKind {
  switch (reason) {
    case DisconnectReason.SERVER_SHUTDOWN:
      return "server-shutdown";
    case DisconnectReason.SLOW_CONSUMER:
      return "slow-consumer";
    case DisconnectReason.TOKEN_EXPIRED:
      return "token-expired";
    case DisconnectReason.HEARTBEAT_TIMEOUT:
      return "heartbeat-timeout";
    case DisconnectReason.PROTOCOL_ERROR:
      return "protocol-error";
    default:
      return "unspecified";
  }
}
