import type { Message } from "../gen/im/v1/message_pb.js";

/** A message as the SDK hands it to the app: the wire message with JS numbers. */
export interface ClientMessage {
  readonly conversationId: string;
  readonly seq: number;
  readonly prevSeq: number;
  readonly messageId: string;
  readonly senderId: string;
  readonly sentAtMs: number;
  readonly contentType: string;
  readonly data: Uint8Array;
  readonly clientMsgId: string;
}

/** Wire message -> ClientMessage. */
export function fromWireMessage(m: Message): ClientMessage {
  return {
    conversationId: m.conversationId,
    seq: Number(m.seq),
    prevSeq: Number(m.prevSeq),
    messageId: m.messageId,
    senderId: m.senderId,
    sentAtMs: Number(m.sentAtMs),
    contentType: m.body?.contentType ?? "",
    data: m.body?.data ?? new Uint8Array(),
    clientMsgId: m.clientMsgId,
  };
}
