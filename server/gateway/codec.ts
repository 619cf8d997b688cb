import { create } from "@bufbuild/protobuf";
import {
  ConversationKind,
  ConversationSchema,
  MessageBodySchema,
  MessageSchema,
  SessionSchema,
  type Conversation,
  type Message,
  type Session,
} from "../../gen/im/v1/message_pb.js";
import { SendResponseSchema, SessionUpdateSchema, type SendResponse, type SessionUpdate } from "../../gen/im/v1/gateway_pb.js";
import type { RequestedSeq, SendOutcome, SessionUpdate as CoreSessionUpdate } from "../core/messaging.js";
import type { ConversationKind as CoreKind, ConversationRecord, SessionEntry, StoredMessage } from "../core/model.js";

/** Domain message -> wire message. */
export function toWireMessage(m: StoredMessage): Message {
  return create(MessageSchema, {
    conversationId: m.conversationId,
    seq: BigInt(m.seq),
    prevSeq: BigInt(m.prevSeq),
    messageId: m.messageId,
    senderId: m.senderId,
    sentAtMs: BigInt(m.sentAtMs),
    body: create(MessageBodySchema, { contentType: m.contentType, data: m.data }),
    clientMsgId: m.clientMsgId,
  });
}

/** Domain kind -> wire kind. */
export function toWireKind(kind: CoreKind): ConversationKind {
  return kind === "direct" ? ConversationKind.DIRECT : ConversationKind.GROUP;
}

/** Domain session -> wire session. */
export function toWireSession(s: SessionEntry): Session {
  return create(SessionSchema, {
    conversationId: s.conversationId,
    kind: toWireKind(s.kind),
    lastSeq: BigInt(s.lastSeq),
    lastMessage: s.lastMessage === undefined ? undefined : toWireMessage(s.lastMessage),
    readSeq: BigInt(s.readSeq),
    peerUserId: s.peerUserId,
    title: s.title,
  });
}

/** Domain conversation -> wire conversation. */
export function toWireConversation(c: ConversationRecord): Conversation {
  return create(ConversationSchema, {
    conversationId: c.id,
    kind: toWireKind(c.kind),
    title: c.title,
    ownerId: c.ownerId,
    memberCount: c.memberCount,
    lastSeq: BigInt(c.lastSeq),
  });
}

/** Domain send outcome -> wire send response. */
export function toWireSendResponse(outcome: SendOutcome): SendResponse {
  const m = outcome.message;
  return create(SendResponseSchema, {
    conversationId: m.conversationId,
    seq: BigInt(m.seq),
    prevSeq: BigInt(m.prevSeq),
    messageId: m.messageId,
    sentAtMs: BigInt(m.sentAtMs),
    clientMsgId: m.clientMsgId,
    duplicate: outcome.duplicate,
  });
}

/** Domain session update -> wire session update. */
export function toWireSessionUpdate(u: CoreSessionUpdate): SessionUpdate {
  return create(SessionUpdateSchema, {
    session: toWireSession(u.session),
    messages: u.messages.map(toWireMessage),
    hasMoreMessages: u.hasMoreMessages,
  });
}

/**
 * A requested seq (uint64 on the wire) for the core: a number when it is a safe integer, else
 * the exact bigint, which the core refuses as beyond the head quoting the value the client sent.
 */
export function seqFromWire(value: bigint): RequestedSeq {
  return value <= MAX_SAFE_SEQ ? Number(value) : value;
}

/**
 * A sync cursor's seq (uint64 on the wire) for the core. The core only compares cursors with
 * the heads it holds, all safe integers, and answers a cursor beyond the head with the truth;
 * a seq above 2^53 - 1 lies beyond every head, and Infinity compares exactly as it would.
 */
export function cursorSeqFromWire(value: bigint): number {
  return value <= MAX_SAFE_SEQ ? Number(value) : Number.POSITIVE_INFINITY;
}

const MAX_SAFE_SEQ = BigInt(Number.MAX_SAFE_INTEGER);
