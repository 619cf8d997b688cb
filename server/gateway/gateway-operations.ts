import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { OwnerReplySchema, type OwnerCall, type OwnerReply } from "../../gen/im/cluster/v1/cluster_pb.js";
import {
  AddMembersResponseSchema,
  RemoveMembersResponseSchema,
  type AddMembersRequest,
  type AddMembersResponse,
  type RemoveMembersRequest,
  type RemoveMembersResponse,
} from "../../gen/im/v1/conversation_pb.js";
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
import { directConversationId, isUserId } from "../core/conversation-id.js";
import type { Cursor, Messaging, SendTarget } from "../core/messaging.js";
import { errorReply, replyError, type OwnerCalls, type OwnerSet } from "../route/owners.js";
import { cursorSeqFromWire, seqFromWire, toWireMessage, toWireSendResponse, toWireSessionUpdate } from "./codec.js";
import { failureToConnectError, invalidArgument, toConnectError, unwrap } from "./errors.js";

/** Who owns which conversation, and how to reach the owner. */
export interface Ownership {
  readonly owners: OwnerSet;
  readonly calls: OwnerCalls;
}

/**
 * The gateway's operations on already validated requests, shared by the long connection and
 * the unary (browser) methods so both give the same results. Failures throw ConnectErrors.
 *
 * What changes a conversation's log or member list (send, add and remove members) is carried
 * out by the conversation's owner process, in one hop when that is another process: the
 * owner assigns the seqs and publishes, so the events of a conversation leave one place in
 * order and a removal is ordered with the messages around it. Reads run where they arrive.
 */
export class GatewayOperations {
  readonly #messaging: Messaging;
  readonly #ownership: Ownership | undefined;

  constructor(messaging: Messaging, ownership?: Ownership) {
    this.#messaging = messaging;
    this.#ownership = ownership;
    ownership?.calls.serve((call) => this.#serve(call));
  }

  async send(userId: string, req: SendRequest, originConnectionId?: string): Promise<SendResponse> {
    // Rate limits count where the request arrives, before it goes to the owner.
    const refused = this.#messaging.admitSend(userId, originConnectionId, req.body?.data.byteLength ?? 0);
    if (refused !== undefined) throw failureToConnectError(refused);
    return this.#atOwner(sendConversationId(userId, req), userId, originConnectionId ?? "", { case: "send", value: req }, "send", () =>
      this.#send(userId, req, originConnectionId),
    );
  }

  async addMembers(userId: string, req: AddMembersRequest): Promise<AddMembersResponse> {
    return this.#atOwner(req.conversationId, userId, "", { case: "addMembers", value: req }, "addMembers", () => this.#addMembers(userId, req));
  }

  async removeMembers(userId: string, req: RemoveMembersRequest): Promise<RemoveMembersResponse> {
    return this.#atOwner(req.conversationId, userId, "", { case: "removeMembers", value: req }, "removeMembers", () => this.#removeMembers(userId, req));
  }

  /**
   * Runs `request` at the owner of `conversationId`: here when this process owns it (or the
   * request names no valid conversation, which `here` refuses), else forwarded. An owner that
   * cannot be reached (the broker is down, it does not answer) does not stop the request: it
   * runs here instead. The store keeps it correct with two writers (SQLite's write lock,
   * Cassandra's seq lease); only the one-place order of pushes is given up meanwhile.
   */
  async #atOwner<K extends keyof Answers>(
    conversationId: string | undefined,
    userId: string,
    originConnectionId: string,
    request: OwnerCall["request"],
    kind: K,
    here: () => Promise<Answers[K]>,
  ): Promise<Answers[K]> {
    const ownership = this.#ownership;
    if (ownership === undefined || conversationId === undefined) return here();
    const owner = ownership.owners.ownerOf(conversationId);
    if (owner === ownership.owners.self || !ownership.calls.reachable(owner)) return here();
    let reply: OwnerReply;
    try {
      reply = await ownership.calls.call(owner, userId, originConnectionId, request);
    } catch {
      return here();
    }
    return expect(reply, kind);
  }

  /** Carries out a call another process forwarded to this owner. */
  async #serve(call: OwnerCall): Promise<OwnerReply> {
    try {
      const request = call.request;
      switch (request.case) {
        case "send":
          return create(OwnerReplySchema, { callId: call.callId, result: { case: "send", value: await this.#send(call.userId, request.value, call.originConnectionId) } });
        case "addMembers":
          return create(OwnerReplySchema, { callId: call.callId, result: { case: "addMembers", value: await this.#addMembers(call.userId, request.value) } });
        case "removeMembers":
          return create(OwnerReplySchema, { callId: call.callId, result: { case: "removeMembers", value: await this.#removeMembers(call.userId, request.value) } });
        default:
          throw new ConnectError("an owner call without a request", Code.Internal);
      }
    } catch (error) {
      return errorReply(call.callId, toConnectError(error));
    }
  }

  async #addMembers(userId: string, req: AddMembersRequest): Promise<AddMembersResponse> {
    return create(AddMembersResponseSchema, unwrap(await this.#messaging.addMembers(userId, req.conversationId, req.userIds)));
  }

  async #removeMembers(userId: string, req: RemoveMembersRequest): Promise<RemoveMembersResponse> {
    return create(RemoveMembersResponseSchema, unwrap(await this.#messaging.removeMembers(userId, req.conversationId, req.userIds)));
  }

  async #send(userId: string, req: SendRequest, originConnectionId?: string): Promise<SendResponse> {
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
      lastSeq: cursorSeqFromWire(c.lastSeq),
      readSeq: cursorSeqFromWire(c.readSeq),
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
        afterSeq: seqFromWire(req.afterSeq),
        upToSeq: seqFromWire(req.upToSeq),
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
    const readSeq = unwrap(await this.#messaging.markRead(userId, req.conversationId, seqFromWire(req.readSeq), originConnectionId));
    return create(MarkReadResponseSchema, { conversationId: req.conversationId, readSeq: BigInt(readSeq) });
  }
}

/** The conversation a send goes to, when the request names one validly; else undefined. */
function sendConversationId(userId: string, req: SendRequest): string | undefined {
  if (req.target.case === "conversationId") return req.target.value;
  if (req.target.case === "toUserId" && isUserId(req.target.value) && req.target.value !== userId) {
    return directConversationId(userId, req.target.value);
  }
  return undefined;
}

type Answers = { send: SendResponse; addMembers: AddMembersResponse; removeMembers: RemoveMembersResponse };

/** The result of an owner's reply of the expected kind; its error thrown as a ConnectError. */
function expect<K extends keyof Answers>(reply: OwnerReply, kind: K): Answers[K] {
  const result = reply.result;
  if (result.case === kind) return result.value as Answers[K];
  if (result.case === "error") throw replyError(reply as OwnerReply & { result: { case: "error" } });
  throw new ConnectError(`the conversation's owner answered ${String(result.case)} to ${kind}`, Code.Internal);
}
