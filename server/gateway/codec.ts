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
import type { SendOutcome, SessionUpdate as CoreSessionUpdate } from "../core/messaging.js";
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
 * A wire seq (uint64) as a JS number. Seqs above 2^53 cannot come from this server; a client
 * that sends one gets INVALID_ARGUMENT through the caller's check of the returned undefined.
 */
export function seqFromWire(value: bigint): number | undefined {
  return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : undefined;
}
