import { create } from "@bufbuild/protobuf";
import {
  FetchRangeResponseSchema,
  MarkReadResponseSchema,
  SyncResponseSchema,
  type FetchRangeRequest,
  type FetchRangeResponse,
  type MarkReadRequest,
  type MarkReadResponse,
  type SendRequest,
  type SendResponse,
  type SyncRequest,
  type SyncResponse,
} from "../../gen/im/v1/gateway_pb.js";
import type { Cursor, Messaging, SendTarget } from "../core/messaging.js";
import { seqFromWire, toWireMessage, toWireSendResponse, toWireSessionUpdate } from "./codec.js";
import { invalidArgument, unwrap } from "./errors.js";

function seq(value: bigint, field: string): number {
  const n = seqFromWire(value);
  if (n === undefined) throw invalidArgument(`${field} is out of range`);
  return n;
}

/**
 * The gateway's operations on already validated requests, shared by the long connection and
 * the unary (browser) methods so both give the same results. Failures throw ConnectErrors.
 */
export class GatewayOperations {
  readonly #messaging: Messaging;

  constructor(messaging: Messaging) {
    this.#messaging = messaging;
  }

  async send(userId: string, req: SendRequest, originConnectionId?: string): Promise<SendResponse> {
    let target: SendTarget;
    if (req.target.case === "conversationId") target = { conversationId: req.target.value };
    else if (req.target.case === "toUserId") target = { toUserId: req.target.value };
    else throw invalidArgument("target is required: conversation_id or to_user_id");
    const body = req.body;
    if (body === undefined) throw invalidArgument("body is required");
    const outcome = unwrap(
      await this.#messaging.send(userId, { target, clientMsgId: req.clientMsgId, contentType: body.contentType, data: body.data }, originConnectionId),
    );
    return toWireSendResponse(outcome);
  }

  async sync(userId: string, req: SyncRequest): Promise<SyncResponse> {
    const cursors: Cursor[] = req.cursors.map((c) => ({
      conversationId: c.conversationId,
      lastSeq: seq(c.lastSeq, "cursors.last_seq"),
      readSeq: seq(c.readSeq, "cursors.read_seq"),
    }));
    const outcome = unwrap(
      await this.#messaging.sync(userId, {
        cursors,
        maxMessagesPerConversation: req.maxMessagesPerConversation,
        maxSessions: req.maxSessions,
      }),
    );
    return create(SyncResponseSchema, {
      sessions: outcome.sessions.map(toWireSessionUpdate),
      removedConversationIds: outcome.removedConversationIds,
      hasMoreSessions: outcome.hasMoreSessions,
    });
  }

  async fetchRange(userId: string, req: FetchRangeRequest): Promise<FetchRangeResponse> {
    const outcome = unwrap(
      await this.#messaging.fetchRange(userId, {
        conversationId: req.conversationId,
        afterSeq: seq(req.afterSeq, "after_seq"),
        upToSeq: seq(req.upToSeq, "up_to_seq"),
        limit: req.limit,
      }),
    );
    return create(FetchRangeResponseSchema, {
      messages: outcome.messages.map(toWireMessage),
      lastSeq: BigInt(outcome.lastSeq),
      hasMore: outcome.hasMore,
    });
  }

  async markRead(userId: string, req: MarkReadRequest, originConnectionId?: string): Promise<MarkReadResponse> {
    const readSeq = unwrap(await this.#messaging.markRead(userId, req.conversationId, seq(req.readSeq, "read_seq"), originConnectionId));
    return create(MarkReadResponseSchema, { conversationId: req.conversationId, readSeq: BigInt(readSeq) });
  }
}
