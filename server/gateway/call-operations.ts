import { create } from "@bufbuild/protobuf";
import {
  AcceptResponseSchema,
  CallEndReason,
  CreateLiveRoomResponseSchema,
  DeclineResponseSchema,
  GetCallResponseSchema,
  GetIceServersResponseSchema,
  HangupResponseSchema,
  JoinRoomResponseSchema,
  KeepaliveResponseSchema,
  RingResponseSchema,
  RoomRole,
  SetRoleResponseSchema,
  SignalResponseSchema,
  StartCallResponseSchema,
  type AcceptRequest,
  type AcceptResponse,
  type CreateLiveRoomRequest,
  type CreateLiveRoomResponse,
  type DeclineRequest,
  type DeclineResponse,
  type GetCallRequest,
  type GetCallResponse,
  type GetIceServersResponse,
  type HangupRequest,
  type HangupResponse,
  type JoinRoomRequest,
  type JoinRoomResponse,
  type KeepaliveRequest,
  type KeepaliveResponse,
  type RingRequest,
  type RingResponse,
  type SetRoleRequest,
  type SetRoleResponse,
  type SignalRequest,
  type SignalResponse,
  type StartCallRequest,
  type StartCallResponse,
} from "../../gen/im/v1/call_pb.js";
import type { Calls, CallTarget } from "../core/calls.js";
import type { Clock } from "../core/clock.js";
import { fromWireRole, fromWireSignal, toWireCall, toWireIceServers, toWireLiveRoom, toWireMediaRoom, toWireRole } from "./call-codec.js";
import { cursorSeqFromWire } from "./codec.js";
import { invalidArgument, unwrap } from "./errors.js";

const ADMIT_TTL_MS = 60_000;

/**
 * Call control on already validated requests, shared by CallService (unary) and the call
 * frames of the long connection. Failures throw ConnectErrors.
 */
export class CallOperations {
  readonly #calls: Calls;
  readonly #clock: Clock;
  readonly #keepaliveIntervalMs: number;

  constructor(calls: Calls, clock: Clock, keepaliveIntervalMs: number) {
    this.#calls = calls;
    this.#clock = clock;
    this.#keepaliveIntervalMs = keepaliveIntervalMs;
  }

  async startCall(userId: string, req: StartCallRequest): Promise<StartCallResponse> {
    let target: CallTarget;
    if (req.target.case === "toUserId") target = { toUserId: req.target.value };
    else if (req.target.case === "conversationId") target = { conversationId: req.target.value };
    else throw invalidArgument("target is required: to_user_id or conversation_id");
    const out = unwrap(await this.#calls.startCall(userId, { target, clientCallId: req.clientCallId, deviceId: req.deviceId, video: req.video }));
    return create(StartCallResponseSchema, {
      call: toWireCall(out.call),
      duplicate: out.duplicate,
      iceServers: out.call.topology === "p2p" ? toWireIceServers(out.iceServers.iceServers) : [],
      room: toWireMediaRoom(out.room),
    });
  }

  async ring(userId: string, req: RingRequest): Promise<RingResponse> {
    return create(RingResponseSchema, { call: toWireCall(unwrap(await this.#calls.ring(userId, req.callId, req.deviceId))) });
  }

  async accept(userId: string, req: AcceptRequest): Promise<AcceptResponse> {
    const out = unwrap(await this.#calls.accept(userId, req.callId, req.deviceId));
    return create(AcceptResponseSchema, {
      call: toWireCall(out.call),
      iceServers: out.call.topology === "p2p" ? toWireIceServers(out.iceServers.iceServers) : [],
      room: toWireMediaRoom(out.room),
    });
  }

  async decline(userId: string, req: DeclineRequest): Promise<DeclineResponse> {
    return create(DeclineResponseSchema, { call: toWireCall(unwrap(await this.#calls.decline(userId, req.callId, req.deviceId))) });
  }

  async hangup(userId: string, req: HangupRequest): Promise<HangupResponse> {
    const reason = req.reason === CallEndReason.MEDIA_FAILED ? "media_failed" : "hangup";
    return create(HangupResponseSchema, { call: toWireCall(unwrap(await this.#calls.hangup(userId, req.callId, req.deviceId, reason))) });
  }

  async signal(userId: string, req: SignalRequest): Promise<SignalResponse> {
    const seq = unwrap(await this.#calls.signal(userId, req.callId, req.deviceId, fromWireSignal(req.signal)));
    return create(SignalResponseSchema, { signalSeq: BigInt(seq) });
  }

  async getCall(userId: string, req: GetCallRequest): Promise<GetCallResponse> {
    // A seq beyond every signal's (above 2^53 - 1) simply misses nothing.
    const after = cursorSeqFromWire(req.afterSignalSeq);
    const view = unwrap(await this.#calls.getCall(userId, req.callId, req.deviceId, after));
    return create(GetCallResponseSchema, { call: toWireCall(view.call), lastSignalSeq: BigInt(view.lastSignalSeq), signalsMissed: view.signalsMissed });
  }

  async keepalive(userId: string, req: KeepaliveRequest): Promise<KeepaliveResponse> {
    const call = unwrap(await this.#calls.keepalive(userId, req.callId, req.deviceId, req.mediaConnected));
    return create(KeepaliveResponseSchema, { call: toWireCall(call), keepaliveIntervalMs: this.#keepaliveIntervalMs });
  }

  async getIceServers(userId: string): Promise<GetIceServersResponse> {
    const set = this.#calls.iceServers(userId);
    return create(GetIceServersResponseSchema, { iceServers: toWireIceServers(set.iceServers), expiresAtMs: BigInt(set.expiresAtMs) });
  }

  async createLiveRoom(userId: string, req: CreateLiveRoomRequest): Promise<CreateLiveRoomResponse> {
    const room = unwrap(await this.#calls.createLiveRoom(userId, req.title));
    return create(CreateLiveRoomResponseSchema, { room: toWireLiveRoom(room, this.#clock.nowMs(), ADMIT_TTL_MS) });
  }

  async joinRoom(userId: string, req: JoinRoomRequest): Promise<JoinRoomResponse> {
    const out = unwrap(await this.#calls.joinRoom(userId, req.roomId, fromWireRole(req.role)));
    return create(JoinRoomResponseSchema, { media: toWireMediaRoom(out.media), room: toWireLiveRoom(out.room, this.#clock.nowMs(), ADMIT_TTL_MS), role: toWireRole(out.role) });
  }

  async setRole(userId: string, req: SetRoleRequest): Promise<SetRoleResponse> {
    const role = req.role === RoomRole.SPEAKER ? "speaker" : "viewer";
    const room = unwrap(await this.#calls.setRole(userId, req.roomId, req.userId, role));
    return create(SetRoleResponseSchema, { room: toWireLiveRoom(room, this.#clock.nowMs(), ADMIT_TTL_MS) });
  }
}
