import {
  holdsSlot,
  type CallEndReason,
  type CallMessageKind,
  type CallParty,
  type CallRecord,
  type CallTimeouts,
  type CallTopology,
  type PartyState,
} from "./call-model.js";
import { fail, ok, type Result } from "./result.js";

/** What a device (or the media server, or the server itself) does to a call. */
export type CallCommand =
  /** A callee's device acknowledges the invitation. */
  | { readonly type: "ring"; readonly userId: string; readonly deviceId: string }
  /** A callee's device answers; the first device of the user wins. */
  | { readonly type: "accept"; readonly userId: string; readonly deviceId: string }
  | { readonly type: "decline"; readonly userId: string; readonly deviceId: string }
  | { readonly type: "hangup"; readonly userId: string; readonly deviceId: string; readonly reason: "hangup" | "media_failed" }
  | { readonly type: "keepalive"; readonly userId: string; readonly deviceId: string; readonly mediaConnected: boolean }
  /** An answering device relays a signal to the other answering device (one-to-one only). */
  | { readonly type: "signal"; readonly userId: string; readonly deviceId: string }
  /** The media server saw the user join or leave the call's room (group calls). */
  | { readonly type: "media"; readonly userId: string; readonly joined: boolean }
  /** These stored messages were written (or can never be: the conversation refused them). */
  | { readonly type: "messages_written"; readonly kinds: readonly CallMessageKind[] }
  /** Writing the pending messages failed for now: try again after messageRetryMs. */
  | { readonly type: "messages_failed" }
  /** The server cannot carry the call on (e.g. the media server refused its room). */
  | { readonly type: "fail" };

/** A signal's numbers and where it goes. */
export interface SignalRoute {
  readonly signalSeq: number;
  readonly prevSignalSeq: number;
  readonly toUserId: string;
  readonly toDeviceId: string;
}

/** The outcome of a command or a tick that applies. */
export interface CallTransition {
  /** The call afterwards (the same object when nothing changed). */
  readonly call: CallRecord;
  /** Something was written: store it (compare-and-set on the old version). */
  readonly changed: boolean;
  /** Something the parties see changed (state, parties): publish the new snapshot. */
  readonly visible: boolean;
  /** Users whose call slot this transition frees (they are no longer busy with this call). */
  readonly released: readonly string[];
  /** For a signal: its numbers and recipient. */
  readonly signal?: SignalRoute;
}

/** What a new call is made of. */
export interface NewCall {
  readonly callId: string;
  readonly conversationId: string;
  readonly callerId: string;
  readonly callerDeviceId: string;
  readonly clientCallId: string;
  readonly topology: CallTopology;
  readonly video: boolean;
  /** Callees in order, without the caller. */
  readonly calleeIds: readonly string[];
  /** Callees in another call: they are not rung. */
  readonly busyUserIds: readonly string[];
}

/**
 * A new call: the caller accepted on its device, every callee invited (or busy). A call
 * whose callees are all busy is created ENDED with BUSY, so it still writes its two stored
 * messages and the callees see the missed call.
 */
export function createCall(input: NewCall, nowMs: number, timeouts: CallTimeouts): CallRecord {
  const busy = new Set(input.busyUserIds);
  const caller: CallParty = party(input.callerId, "accepted", input.callerDeviceId, nowMs);
  const callees = input.calleeIds.map((u) => party(u, busy.has(u) ? "busy" : "invited", "", 0));
  let call: CallRecord = {
    callId: input.callId,
    conversationId: input.conversationId,
    callerId: input.callerId,
    clientCallId: input.clientCallId,
    topology: input.topology,
    video: input.video,
    state: "ringing",
    endReason: "",
    parties: [caller, ...callees],
    createdAtMs: nowMs,
    answeredAtMs: 0,
    endedAtMs: 0,
    version: 1,
    signalSeq: 0,
    messagesPending: ["started"],
    messageRetryAtMs: nowMs + timeouts.messageRetryMs,
    deadlineMs: 0,
  };
  if (callees.every((p) => p.state === "busy")) call = end(call, "busy", nowMs, timeouts);
  return { ...call, deadlineMs: nextDeadline(call, timeouts) };
}

/** Applies a command at `nowMs`. Refusals (not a party, wrong state, answered elsewhere) are failures. */
export function applyCall(call: CallRecord, command: CallCommand, nowMs: number, timeouts: CallTimeouts): Result<CallTransition> {
  switch (command.type) {
    case "messages_written": {
      const pending = call.messagesPending.filter((k) => !command.kinds.includes(k));
      if (pending.length === call.messagesPending.length) return ok(same(call));
      return ok(changed(call, { ...call, messagesPending: pending }, false, timeouts));
    }
    case "messages_failed":
      if (call.messagesPending.length === 0) return ok(same(call));
      return ok(changed(call, { ...call, messageRetryAtMs: nowMs + timeouts.messageRetryMs }, false, timeouts));
    case "fail":
      if (call.state === "ended") return ok(same(call));
      return ok(changed(call, end(call, "server_error", nowMs, timeouts), true, timeouts));
    default:
  }
  const p = call.parties.find((x) => x.userId === command.userId);
  if (p === undefined) return fail("not_call_party", `you are not a party of call ${call.callId}`);
  switch (command.type) {
    case "ring":
      return ring(call, p, command.deviceId, timeouts);
    case "accept":
      return accept(call, p, command.deviceId, nowMs, timeouts);
    case "decline":
      return decline(call, p, command.deviceId, nowMs, timeouts);
    case "hangup":
      return hangup(call, p, command.deviceId, command.reason, nowMs, timeouts);
    case "keepalive":
      return keepalive(call, p, command.deviceId, command.mediaConnected, nowMs, timeouts);
    case "signal":
      return signal(call, p, command.deviceId, timeouts);
    case "media":
      return media(call, p, command.joined, timeouts);
  }
}

/**
 * Advances the call's deadlines to `nowMs`: ringing parties past the ring timeout are
 * missed, an answered call whose media did not connect in time fails (ICE_FAILED), an
 * answering device silent past the keepalive timeout is gone (CONNECTION_LOST). Pending
 * stored messages and purging are the caller's business (see `dueWork`).
 */
export function tickCall(call: CallRecord, nowMs: number, timeouts: CallTimeouts): CallTransition {
  if (call.state === "ended") return same(call);
  let next = call;
  let reason: CallEndReason | undefined;
  if (nowMs >= call.createdAtMs + timeouts.ringTimeoutMs && next.parties.some((x) => x.state === "invited" || x.state === "ringing")) {
    next = withParties(next, (x) => (x.state === "invited" || x.state === "ringing" ? { ...x, state: "missed" } : x));
    reason = "no_answer";
  }
  if (next.state === "connecting" && nowMs >= next.answeredAtMs + timeouts.connectTimeoutMs) {
    return changed(call, end(next, "ice_failed", nowMs, timeouts), true, timeouts);
  }
  const lost = next.parties.filter((x) => x.state === "accepted" && nowMs >= x.lastSeenMs + timeouts.keepaliveTimeoutMs);
  if (lost.length > 0) {
    if (next.topology === "p2p") return changed(call, end(next, "connection_lost", nowMs, timeouts), true, timeouts);
    next = withParties(next, (x) => (lost.includes(x) ? { ...x, state: "left", mediaConnected: false } : x));
    reason = "connection_lost";
  }
  if (reason === undefined) return same(call);
  if (next.topology === "p2p") return changed(call, end(next, reason, nowMs, timeouts), true, timeouts);
  return changed(call, settleGroup(next, reason, nowMs, timeouts), true, timeouts);
}

/** What the owner of a call past its deadline does besides `tickCall`. */
export type DueWork = "none" | "write_messages" | "purge";

/** Pending messages due for a retry, or an ended call past its retention: what to do at `nowMs`. */
export function dueWork(call: CallRecord, nowMs: number, timeouts: CallTimeouts): DueWork {
  if (call.messagesPending.length > 0) return nowMs >= call.messageRetryAtMs ? "write_messages" : "none";
  if (call.state === "ended" && nowMs >= call.endedAtMs + timeouts.retentionMs) return "purge";
  return "none";
}

/** The earliest time at which the call needs the tick: a deadline, a message retry or its purge. */
export function nextDeadline(call: CallRecord, timeouts: CallTimeouts): number {
  let at = call.messagesPending.length > 0 ? call.messageRetryAtMs : Infinity;
  if (call.state === "ended") return call.messagesPending.length > 0 ? at : call.endedAtMs + timeouts.retentionMs;
  if (call.parties.some((x) => x.state === "invited" || x.state === "ringing")) at = Math.min(at, call.createdAtMs + timeouts.ringTimeoutMs);
  if (call.state === "connecting") at = Math.min(at, call.answeredAtMs + timeouts.connectTimeoutMs);
  for (const x of call.parties) if (x.state === "accepted") at = Math.min(at, x.lastSeenMs + timeouts.keepaliveTimeoutMs);
  return at;
}

/** Users holding a call slot for this call (busy): the caller and callees invited, ringing or accepted. */
export function slotHolders(call: CallRecord): string[] {
  return call.parties.filter((x) => holdsSlot(x.state)).map((x) => x.userId);
}

/** The signal_seq of the newest signal sent to `userId`'s answering device `deviceId` (0: none). */
export function lastSignalTo(call: CallRecord, userId: string, deviceId: string): number {
  const p = call.parties.find((x) => x.userId === userId);
  return p !== undefined && p.deviceId === deviceId ? p.lastSignalSeq : 0;
}

function ring(call: CallRecord, p: CallParty, deviceId: string, timeouts: CallTimeouts): Result<CallTransition> {
  if (p.userId === call.callerId) return fail("call_state", "the caller does not ring");
  if (call.state === "ended" || (p.state !== "invited" && p.state !== "ringing")) return ok(same(call));
  const known = p.ringingDeviceIds.includes(deviceId) || p.ringingDeviceIds.length >= timeouts.ringDevicesMax;
  if (known && p.state === "ringing") return ok(same(call));
  const devices = known ? p.ringingDeviceIds : [...p.ringingDeviceIds, deviceId];
  return ok(changed(call, replace(call, p, { ...p, state: "ringing", ringingDeviceIds: devices }), true, timeouts));
}

function accept(call: CallRecord, p: CallParty, deviceId: string, nowMs: number, timeouts: CallTimeouts): Result<CallTransition> {
  if (p.state === "accepted") {
    if (p.deviceId === deviceId) return ok(same(call));
    return fail("answered_elsewhere", p.userId === call.callerId ? "you started this call on another device" : "the call was answered on another device");
  }
  if (call.state === "ended") return fail("call_state", `the call ended (${call.endReason})`);
  if (p.state !== "invited" && p.state !== "ringing") return fail("call_state", `you can no longer answer this call (${p.state})`);
  const answered: CallParty = { ...p, state: "accepted", deviceId, lastSeenMs: nowMs, mediaConnected: false };
  let next = replace(call, p, answered);
  if (next.state === "ringing") next = { ...next, state: "connecting", answeredAtMs: nowMs };
  return ok(changed(call, next, true, timeouts));
}

function decline(call: CallRecord, p: CallParty, deviceId: string, nowMs: number, timeouts: CallTimeouts): Result<CallTransition> {
  if (call.state === "ended" || p.state === "declined") return ok(same(call));
  if (p.state === "accepted") {
    if (p.deviceId !== deviceId) return fail("answered_elsewhere", "the call was answered on another device");
    return fail("call_state", "you answered this call: hang up instead");
  }
  if (p.state !== "invited" && p.state !== "ringing") return fail("call_state", `you can no longer decline this call (${p.state})`);
  const next = replace(call, p, { ...p, state: "declined" });
  if (call.topology === "p2p") return ok(changed(call, end(next, "declined", nowMs, timeouts), true, timeouts));
  return ok(changed(call, settleGroup(next, "declined", nowMs, timeouts), true, timeouts));
}

function hangup(call: CallRecord, p: CallParty, deviceId: string, reason: "hangup" | "media_failed", nowMs: number, timeouts: CallTimeouts): Result<CallTransition> {
  if (call.state === "ended" || !holdsSlot(p.state)) return ok(same(call));
  if (p.state !== "accepted") return decline(call, p, deviceId, nowMs, timeouts);
  if (p.deviceId !== deviceId) return fail("answered_elsewhere", "the call is held by another of your devices");
  if (call.topology === "p2p") {
    const why: CallEndReason = call.state === "ringing" ? "cancelled" : reason;
    return ok(changed(call, end(call, why, nowMs, timeouts), true, timeouts));
  }
  const next = replace(call, p, { ...p, state: "left", mediaConnected: false });
  const why: CallEndReason = call.answeredAtMs === 0 && reason === "hangup" ? "cancelled" : reason;
  return ok(changed(call, settleGroup(next, why, nowMs, timeouts), true, timeouts));
}

function keepalive(call: CallRecord, p: CallParty, deviceId: string, mediaConnected: boolean, nowMs: number, timeouts: CallTimeouts): Result<CallTransition> {
  if (call.state === "ended") return fail("call_state", `the call ended (${call.endReason})`);
  if (p.state !== "accepted") return fail("call_state", "only an answering device keeps a call alive");
  if (p.deviceId !== deviceId) return fail("answered_elsewhere", "the call is held by another of your devices");
  const connected = p.mediaConnected || mediaConnected;
  let next = replace(call, p, { ...p, lastSeenMs: nowMs, mediaConnected: connected });
  next = promote(next);
  return ok(changed(call, next, connected !== p.mediaConnected || next.state !== call.state, timeouts));
}

function signal(call: CallRecord, p: CallParty, deviceId: string, timeouts: CallTimeouts): Result<CallTransition> {
  if (call.topology !== "p2p") return fail("call_state", "signals are for one-to-one calls; group calls use the media server");
  if (call.state !== "connecting" && call.state !== "active") return fail("call_state", `no signals while the call is ${call.state}${call.endReason === "" ? "" : ` (${call.endReason})`}`);
  if (p.state !== "accepted") return fail("call_state", "only answering devices signal");
  if (p.deviceId !== deviceId) return fail("answered_elsewhere", "the call is held by another of your devices");
  const peer = call.parties.find((x) => x !== p && x.state === "accepted");
  if (peer === undefined) return fail("call_state", "the other party has not answered");
  const signalSeq = call.signalSeq + 1;
  const next = replace({ ...call, signalSeq }, peer, { ...peer, lastSignalSeq: signalSeq });
  const route: SignalRoute = { signalSeq, prevSignalSeq: peer.lastSignalSeq, toUserId: peer.userId, toDeviceId: peer.deviceId };
  return ok({ ...changed(call, next, false, timeouts), signal: route });
}

function media(call: CallRecord, p: CallParty, joined: boolean, timeouts: CallTimeouts): Result<CallTransition> {
  if (call.state === "ended" || p.state !== "accepted" || p.mediaConnected === joined) return ok(same(call));
  const next = promote(replace(call, p, { ...p, mediaConnected: joined }));
  return ok(changed(call, next, true, timeouts));
}

/** CONNECTING becomes ACTIVE once two answering parties have connected media. */
function promote(call: CallRecord): CallRecord {
  if (call.state !== "connecting") return call;
  const connected = call.parties.filter((x) => x.state === "accepted" && x.mediaConnected).length;
  return connected >= 2 ? { ...call, state: "active" } : call;
}

/**
 * After a group party declined, left or was missed: the call goes on while someone rings or
 * at least two parties are in it; otherwise it ends with `reason`.
 */
function settleGroup(call: CallRecord, reason: CallEndReason, nowMs: number, timeouts: CallTimeouts): CallRecord {
  const ringing = call.parties.some((x) => x.state === "invited" || x.state === "ringing");
  const inCall = call.parties.filter((x) => x.state === "accepted").length;
  if (inCall >= 2 || (ringing && inCall >= 1)) return call;
  return end(call, reason, nowMs, timeouts);
}

function end(call: CallRecord, reason: CallEndReason, nowMs: number, timeouts: CallTimeouts): CallRecord {
  const parties = call.parties.map((x): CallParty => {
    if (x.state === "invited" || x.state === "ringing") return { ...x, state: "missed" };
    if (x.state === "accepted") return { ...x, state: "left", mediaConnected: false };
    return x;
  });
  return {
    ...call,
    state: "ended",
    endReason: reason,
    endedAtMs: nowMs,
    parties,
    messagesPending: [...call.messagesPending, "ended"],
    messageRetryAtMs: nowMs + timeouts.messageRetryMs,
  };
}

function party(userId: string, state: PartyState, deviceId: string, nowMs: number): CallParty {
  return { userId, state, deviceId, ringingDeviceIds: [], mediaConnected: false, lastSeenMs: nowMs, lastSignalSeq: 0 };
}

function replace(call: CallRecord, old: CallParty, next: CallParty): CallRecord {
  return withParties(call, (x) => (x === old ? next : x));
}

function withParties(call: CallRecord, f: (p: CallParty) => CallParty): CallRecord {
  return { ...call, parties: call.parties.map(f) };
}

function same(call: CallRecord): CallTransition {
  return { call, changed: false, visible: false, released: [] };
}

function changed(before: CallRecord, after: CallRecord, visible: boolean, timeouts: CallTimeouts): CallTransition {
  const holdersAfter = new Set(slotHolders(after));
  const released = slotHolders(before).filter((u) => !holdersAfter.has(u));
  const call: CallRecord = { ...after, version: before.version + 1, deadlineMs: nextDeadline(after, timeouts) };
  return { call, changed: true, visible, released };
}
