import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { Logger } from "pino";
import {
  AddMembersRequestSchema,
  ConversationService,
  CreateGroupRequestSchema,
  CreateGroupResponseSchema,
  ListConversationsRequestSchema,
  ListConversationsResponseSchema,
  ListMembersRequestSchema,
  ListMembersResponseSchema,
  RemoveMembersRequestSchema,
} from "../../gen/im/v1/conversation_pb.js";
import type { Messaging } from "../core/messaging.js";
import type { GatewayOperations } from "./gateway-operations.js";
import type { Result } from "../core/result.js";
import type { TokenVerifier } from "./auth.js";
import { toWireConversation, toWireSession } from "./codec.js";
import { unwrap } from "./errors.js";
import { createUnaryRunner } from "./unary-call.js";
import type { RequestValidator } from "./request-validator.js";

/** What the conversation service needs. */
export interface ConversationServiceDeps {
  readonly messaging: Messaging;
  /** Member changes run at the group's owner through these. */
  readonly operations: GatewayOperations;
  readonly verifier: TokenVerifier;
  readonly validator: RequestValidator;
  readonly logger: Logger;
}

/** The ConversationService implementation: groups, members and the session list. */
export function createConversationService(deps: ConversationServiceDeps): ServiceImpl<typeof ConversationService> {
  const { messaging, operations, verifier, validator, logger } = deps;

  const run = createUnaryRunner(verifier, validator, logger);
  const call = <D extends DescMessage, T>(schema: D, req: MessageShape<D>, ctx: HandlerContext, op: (userId: string) => Promise<Result<T>>) =>
    run(schema, req, ctx, async (userId) => unwrap(await op(userId)));

  return {
    async createGroup(req, ctx) {
      const group = await call(CreateGroupRequestSchema, req, ctx, (u) => messaging.createGroup(u, req.title, req.memberUserIds));
      return create(CreateGroupResponseSchema, { conversation: toWireConversation(group) });
    },
    addMembers: (req, ctx) => run(AddMembersRequestSchema, req, ctx, (u) => operations.addMembers(u, req)),
    removeMembers: (req, ctx) => run(RemoveMembersRequestSchema, req, ctx, (u) => operations.removeMembers(u, req)),
    async listMembers(req, ctx) {
      const page = await call(ListMembersRequestSchema, req, ctx, (u) => messaging.listMembers(u, req.conversationId, req.pageSize, req.pageToken));
      return create(ListMembersResponseSchema, { userIds: page.items, nextPageToken: page.nextPageToken });
    },
    async listConversations(req, ctx) {
      const page = await call(ListConversationsRequestSchema, req, ctx, (u) => messaging.listConversations(u, req.pageSize, req.pageToken));
      return create(ListConversationsResponseSchema, { sessions: page.items.map(toWireSession), nextPageToken: page.nextPageToken });
    },
  };
}
