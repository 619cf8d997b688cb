import { create } from "@bufbuild/protobuf";
import {
  CallEndReason,
  CallEventSchema,
  CallPartySchema,
  CallSchema,
  CallSignalSchema,
  CallState,
  CallTopology,
  IceServerSchema,
  LiveRoomSchema,
  MediaRoomSchema,
  PartyState,
  RoomRole,
  SdpType,
  type Call,
  type CallEvent,
  type CallSignal,
  type IceServer,
  type LiveRoom,
  type MediaRoom,
  type SignalRequest,
} from "../../gen/im/v1/call_pb.js";
import type { CallEndReason as CoreEndReason, CallEventOut, CallRecord, CallState as CoreState, IceServerEntry, PartyState as CorePartyState, SignalPayload } from "../core/call-model.js";
import type { MediaRoomAccess } from "../core/calls.js";
import { liveRoomViewerCount, type LiveRoomRecord, type RoomRole as CoreRole } from "../core/live-room.js";
import { invalidArgument } from "./errors.js";

const STATES: Record<CoreState, CallState> = {
  ringing: CallState.RINGING,
  connecting: CallState.CONNECTING,
  active: CallState.ACTIVE,
  ended: CallState.ENDED,
};

const REASONS: Record<CoreEndReason, CallEndReason> = {
  hangup: CallEndReason.HANGUP,
  cancelled: CallEndReason.CANCELLED,
  declined: CallEndReason.DECLINED,
  busy: CallEndReason.BUSY,
  no_answer: CallEndReason.NO_ANSWER,
  ice_failed: CallEndReason.ICE_FAILED,
  connection_lost: CallEndReason.CONNECTION_LOST,
  media_failed: CallEndReason.MEDIA_FAILED,
  server_error: CallEndReason.SERVER_ERROR,
};

const PARTY_STATES: Record<CorePartyState, PartyState> = {
  invited: PartyState.INVITED,
  ringing: PartyState.RINGING,
  accepted: PartyState.ACCEPTED,
  declined: PartyState.DECLINED,
  missed: PartyState.MISSED,
  left: PartyState.LEFT,
  busy: PartyState.BUSY,
};

/** A call record as the wire's Call (no server-internal fields). */
export function toWireCall(call: CallRecord): Call {
  return create(CallSchema, {
    callId: call.callId,
    conversationId: call.conversationId,
    callerId: call.callerId,
    state: STATES[call.state],
    endReason: call.endReason === "" ? CallEndReason.UNSPECIFIED : REASONS[call.endReason],
    topology: call.topology === "p2p" ? CallTopology.PEER_TO_PEER : CallTopology.SFU,
    video: call.video,
    parties: call.parties.map((p) =>
      create(CallPartySchema, { userId: p.userId, state: PARTY_STATES[p.state], deviceId: p.deviceId, ringingDeviceIds: [...p.ringingDeviceIds], mediaConnected: p.mediaConnected }),
    ),
    createdAtMs: BigInt(call.createdAtMs),
    answeredAtMs: BigInt(call.answeredAtMs),
    endedAtMs: BigInt(call.endedAtMs),
    version: BigInt(call.version),
    clientCallId: call.clientCallId,
  });
}

export function toWireIceServers(servers: readonly IceServerEntry[]): IceServer[] {
  return servers.map((s) => create(IceServerSchema, { urls: [...s.urls], username: s.username, credential: s.credential }));
}

export function toWireMediaRoom(room: MediaRoomAccess | undefined): MediaRoom | undefined {
  return room === undefined ? undefined : create(MediaRoomSchema, { url: room.url, token: room.token, roomName: room.roomName });
}

export function toWireLiveRoom(room: LiveRoomRecord, nowMs: number, admitTtlMs: number): LiveRoom {
  return create(LiveRoomSchema, {
    roomId: room.roomId,
    hostId: room.hostId,
    title: room.title,
    speakerIds: [...room.speakerIds],
    viewerCount: liveRoomViewerCount(room, nowMs, admitTtlMs),
    viewersMax: room.viewersMax,
  });
}

const ROLES: Record<CoreRole, RoomRole> = { viewer: RoomRole.VIEWER, speaker: RoomRole.SPEAKER, host: RoomRole.HOST };

export function toWireRole(role: CoreRole): RoomRole {
  return ROLES[role];
}

export function fromWireRole(role: RoomRole): CoreRole {
  if (role === RoomRole.HOST) return "host";
  if (role === RoomRole.SPEAKER) return "speaker";
  if (role === RoomRole.VIEWER) return "viewer";
  throw invalidArgument("role is required");
}

/** The signal of a request as the core relays it. */
export function fromWireSignal(signal: SignalRequest["signal"]): SignalPayload {
  switch (signal.case) {
    case "description":
      return {
        kind: "description",
        type: signal.value.type === SdpType.ANSWER ? "answer" : "offer",
        sdp: signal.value.sdp,
        iceRestart: signal.value.iceRestart,
      };
    case "candidates":
      return {
        kind: "candidates",
        candidates: signal.value.candidates.map((c) => ({ candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex, usernameFragment: c.usernameFragment })),
      };
    case "renegotiate":
      return { kind: "renegotiate" };
    default:
      throw invalidArgument("signal is required: description, candidates or renegotiate");
  }
}

function toWireSignalBody(payload: SignalPayload): CallSignal["signal"] {
  switch (payload.kind) {
    case "description":
      return {
        case: "description",
        value: { $typeName: "im.v1.SessionDescription", type: payload.type === "answer" ? SdpType.ANSWER : SdpType.OFFER, sdp: payload.sdp, iceRestart: payload.iceRestart },
      };
    case "candidates":
      return {
        case: "candidates",
        value: { $typeName: "im.v1.IceCandidates", candidates: payload.candidates.map((c) => ({ $typeName: "im.v1.IceCandidate" as const, ...c })) },
      };
    case "renegotiate":
      return { case: "renegotiate", value: { $typeName: "im.v1.Renegotiate" } };
  }
}

/** A core call event as the wire's CallEvent. */
export function toWireCallEvent(event: CallEventOut): CallEvent {
  if (event.type === "call") return create(CallEventSchema, { event: { case: "call", value: toWireCall(event.call) } });
  const signal = create(CallSignalSchema, {
    callId: event.callId,
    signalSeq: BigInt(event.signalSeq),
    prevSignalSeq: BigInt(event.prevSignalSeq),
    fromUserId: event.fromUserId,
    fromDeviceId: event.fromDeviceId,
    toDeviceId: event.toDeviceId,
    signal: toWireSignalBody(event.payload),
  });
  return create(CallEventSchema, { event: { case: "signal", value: signal } });
}
