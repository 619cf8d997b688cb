/** Where a call is. ENDED is final: nothing a party sees changes after it. */
export type CallState = "ringing" | "connecting" | "active" | "ended";

/** Why a call ended. */
export type CallEndReason =
  | "hangup"
  | "cancelled"
  | "declined"
  | "busy"
  | "no_answer"
  | "ice_failed"
  | "connection_lost"
  | "media_failed"
  | "server_error";

/** Where one party (user) of a call is. */
export type PartyState = "invited" | "ringing" | "accepted" | "declined" | "missed" | "left" | "busy";

/** Peer-to-peer WebRTC (one-to-one) or a media-server room (group calls). */
export type CallTopology = "p2p" | "sfu";

/** The two stored messages of a call, written in this order. */
export type CallMessageKind = "started" | "ended";

/** One party of a call. */
export interface CallParty {
  readonly userId: string;
  readonly state: PartyState;
  /** The answering device; the caller's device for the caller; "" before answering. */
  readonly deviceId: string;
  /** Devices that acknowledged the invitation, at most `ringDevicesMax`. */
  readonly ringingDeviceIds: readonly string[];
  /** The answering device reported connected media (or joined the room). */
  readonly mediaConnected: boolean;
  /** The answering device's last keepalive (or its answer): its keepalive deadline counts from here. */
  readonly lastSeenMs: number;
  /** The seq of the last signal relayed to this party's answering device (0: none). */
  readonly lastSignalSeq: number;
}

/**
 * A call as the CallStore keeps it. Holds no signal content (SDP, candidates): signals are
 * relayed, only counted. Every change increments `version`, which the store compares on
 * write (compare-and-set), and recomputes `deadlineMs`, which the store indexes so that the
 * tick of any worker finds the calls whose deadline passed.
 */
export interface CallRecord {
  readonly callId: string;
  readonly conversationId: string;
  readonly callerId: string;
  readonly clientCallId: string;
  readonly topology: CallTopology;
  readonly video: boolean;
  readonly state: CallState;
  /** "" until ENDED. */
  readonly endReason: CallEndReason | "";
  /** The caller first, then the callees. */
  readonly parties: readonly CallParty[];
  readonly createdAtMs: number;
  /** When the first callee answered; 0 before. */
  readonly answeredAtMs: number;
  /** 0 until ENDED. */
  readonly endedAtMs: number;
  readonly version: number;
  /** The last signal_seq assigned in this call. */
  readonly signalSeq: number;
  /** Stored messages still to be written to the conversation, in order. */
  readonly messagesPending: readonly CallMessageKind[];
  /** When a pending message is (re)tried by the tick, should the worker that owed it be gone. */
  readonly messageRetryAtMs: number;
  /** The earliest time at which `tick` changes something; Infinity: never. */
  readonly deadlineMs: number;
}

/** The timeouts and bounds of calls (the README's configuration table has the defaults). */
export interface CallTimeouts {
  /** Ringing parties that do not answer within this become missed (NO_ANSWER). */
  readonly ringTimeoutMs: number;
  /** Answered calls whose media does not connect within this end ICE_FAILED. */
  readonly connectTimeoutMs: number;
  /** An answering device silent for this long is gone (CONNECTION_LOST). */
  readonly keepaliveTimeoutMs: number;
  /** How often devices send keepalives (told to them in KeepaliveResponse). */
  readonly keepaliveIntervalMs: number;
  /** A pending stored message is retried this long after the attempt that owed it. */
  readonly messageRetryMs: number;
  /** Ended calls are kept this long (GetCall, idempotent retries), then purged. */
  readonly retentionMs: number;
  /** Most ringing devices recorded per party. */
  readonly ringDevicesMax: number;
  /** Most parties of a group call, the caller included. */
  readonly partiesMax: number;
}

/** The defaults, documented in the README's configuration table. */
export const DEFAULT_CALL_TIMEOUTS: CallTimeouts = {
  ringTimeoutMs: 45_000,
  connectTimeoutMs: 30_000,
  keepaliveTimeoutMs: 30_000,
  keepaliveIntervalMs: 10_000,
  messageRetryMs: 2_000,
  retentionMs: 10 * 60_000,
  ringDevicesMax: 16,
  partiesMax: 32,
};

/** Content type of the two stored messages of a call. */
export const CALL_MESSAGE_CONTENT_TYPE = "application/vnd.microchat.call+json";

/** The idempotency key of a call's stored message: one per call and kind, whoever writes it. */
export function callMessageClientId(callId: string, kind: CallMessageKind): string {
  return `call:${callId}:${kind}`;
}

/** The body of a call's stored message (JSON). */
export interface CallMessageBody {
  readonly call_id: string;
  readonly event: CallMessageKind;
  readonly caller_id: string;
  readonly topology: CallTopology;
  readonly video: boolean;
  /** Ended only. */
  readonly reason?: CallEndReason;
  /** Ended only: answered to ended, 0 when never answered. */
  readonly duration_ms?: number;
}

/** The stored message of `kind` for `call`. */
export function callMessageBody(call: CallRecord, kind: CallMessageKind): CallMessageBody {
  const base = { call_id: call.callId, event: kind, caller_id: call.callerId, topology: call.topology, video: call.video };
  if (kind === "started") return base;
  const durationMs = call.answeredAtMs > 0 && call.endedAtMs >= call.answeredAtMs ? call.endedAtMs - call.answeredAtMs : 0;
  return { ...base, reason: call.endReason === "" ? "server_error" : call.endReason, duration_ms: durationMs };
}

/** Party states that hold the user's one call slot (busy for other calls). */
export function holdsSlot(state: PartyState): boolean {
  return state === "invited" || state === "ringing" || state === "accepted";
}

/** The party of `userId`, if any. */
export function partyOf(call: CallRecord, userId: string): CallParty | undefined {
  return call.parties.find((p) => p.userId === userId);
}

/** Every party's user id (the recipients of the call's events). */
export function partyUserIds(call: CallRecord): string[] {
  return call.parties.map((p) => p.userId);
}

/** An ICE candidate as WebRTC's RTCIceCandidateInit has it. */
export interface IceCandidateInit {
  readonly candidate: string;
  readonly sdpMid: string;
  readonly sdpMLineIndex: number;
  readonly usernameFragment: string;
}

/** What a signal carries; relayed as is, never stored. */
export type SignalPayload =
  | { readonly kind: "description"; readonly type: "offer" | "answer"; readonly sdp: string; readonly iceRestart: boolean }
  | { readonly kind: "candidates"; readonly candidates: readonly IceCandidateInit[] }
  | { readonly kind: "renegotiate" };

/** A STUN/TURN server in the form of WebRTC's RTCIceServer. */
export interface IceServerEntry {
  readonly urls: readonly string[];
  readonly username: string;
  readonly credential: string;
}

/** ICE servers with the expiry of their TURN credentials (0: no TURN). */
export interface IceServerSet {
  readonly iceServers: readonly IceServerEntry[];
  readonly expiresAtMs: number;
}

/** Something pushed to every device of the users it is published to. */
export type CallEventOut =
  /** The call's new snapshot. */
  | { readonly type: "call"; readonly call: CallRecord }
  /** A signal for one device. */
  | {
      readonly type: "signal";
      readonly callId: string;
      readonly signalSeq: number;
      readonly prevSignalSeq: number;
      readonly fromUserId: string;
      readonly fromDeviceId: string;
      readonly toDeviceId: string;
      readonly payload: SignalPayload;
    };
