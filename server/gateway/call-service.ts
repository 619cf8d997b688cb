import type { ServiceImpl } from "@connectrpc/connect";
import type { Logger } from "pino";
import {
  AcceptRequestSchema,
  CallService,
  CreateLiveRoomRequestSchema,
  DeclineRequestSchema,
  GetCallRequestSchema,
  GetIceServersRequestSchema,
  HangupRequestSchema,
  JoinRoomRequestSchema,
  KeepaliveRequestSchema,
  RingRequestSchema,
  SetRoleRequestSchema,
  SignalRequestSchema,
  StartCallRequestSchema,
} from "../../gen/im/v1/call_pb.js";
import type { TokenVerifier } from "./auth.js";
import type { CallOperations } from "./call-operations.js";
import type { RequestValidator } from "./request-validator.js";
import { createUnaryRunner } from "./unary-call.js";

/** The CallService implementation: call control as unary calls, for browsers and for anyone. */
export function createCallService(deps: { operations: CallOperations; verifier: TokenVerifier; validator: RequestValidator; logger: Logger }): ServiceImpl<typeof CallService> {
  const { operations: ops } = deps;
  const unary = createUnaryRunner(deps.verifier, deps.validator, deps.logger);
  return {
    startCall: (req, ctx) => unary(StartCallRequestSchema, req, ctx, (u) => ops.startCall(u, req)),
    ring: (req, ctx) => unary(RingRequestSchema, req, ctx, (u) => ops.ring(u, req)),
    accept: (req, ctx) => unary(AcceptRequestSchema, req, ctx, (u) => ops.accept(u, req)),
    decline: (req, ctx) => unary(DeclineRequestSchema, req, ctx, (u) => ops.decline(u, req)),
    hangup: (req, ctx) => unary(HangupRequestSchema, req, ctx, (u) => ops.hangup(u, req)),
    signal: (req, ctx) => unary(SignalRequestSchema, req, ctx, (u) => ops.signal(u, req)),
    getCall: (req, ctx) => unary(GetCallRequestSchema, req, ctx, (u) => ops.getCall(u, req)),
    keepalive: (req, ctx) => unary(KeepaliveRequestSchema, req, ctx, (u) => ops.keepalive(u, req)),
    getIceServers: (req, ctx) => unary(GetIceServersRequestSchema, req, ctx, (u) => ops.getIceServers(u)),
    createLiveRoom: (req, ctx) => unary(CreateLiveRoomRequestSchema, req, ctx, (u) => ops.createLiveRoom(u, req)),
    joinRoom: (req, ctx) => unary(JoinRoomRequestSchema, req, ctx, (u) => ops.joinRoom(u, req)),
    setRole: (req, ctx) => unary(SetRoleRequestSchema, req, ctx, (u) => ops.setRole(u, req)),
  };
}
