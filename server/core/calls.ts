import type { MediaGrant, MediaRoomProvider } from "../media/media-room-provider.js";
import type { CallEventPublisher } from "../route/call-event-publisher.js";
import type { CallStore } from "../store/call-store.js";
import type { MessageStore } from "../store/message-store.js";
import { applyCall, createCall, dueWork, lastSignalTo, slotHolders, tickCall, type CallCommand, type CallTransition } from "./call-machine.js";
import {
  CALL_MESSAGE_CONTENT_TYPE,
  callMessageBody,
  callMessageClientId,
  partyOf,
  partyUserIds,
  type CallMessageKind,
  type CallRecord,
  type CallTimeouts,
  type IceServerSet,
  type SignalPayload,
} from "./call-model.js";
import type { Clock } from "./clock.js";
import { directConversationId, isUserId, parseConversationId } from "./conversation-id.js";
import { joinLiveRoom, liveRoomMediaName, liveRoomPresence, setLiveRoomRole, type LiveRoomRecord, type RoomRole } from "./live-room.js";
import type { MessageIdGenerator } from "./message-id.js";
import { fail, ok, StoreUnavailableError, type Result } from "./result.js";

/** What the call service needs from its surroundings. */
export interface CallsDeps {
  readonly store: CallStore;
  /** Conversations and members (read only). */
  readonly messages: MessageStore;
  /**
   * Writes one of a call's stored messages through the platform's send path (its
   * idempotency, sync and pushes): "stored" (also for a repeated clientMsgId), "refused" when
   * a retry cannot succeed (e.g. the sender left the group); throws when the outcome is
   * unknown, and the tick retries.
   */
  readonly sendMessage: (senderId: string, conversationId: string, clientMsgId: string, contentType: string, data: Uint8Array) => Promise<"stored" | "refused">;
  readonly publisher: CallEventPublisher;
  /** The media server for group calls and live rooms; undefined: none configured. */
  readonly media: MediaRoomProvider | undefined;
  /** Fresh STUN/TURN servers for a user. */
  readonly iceServers: (userId: string) => IceServerSet;
  readonly clock: Clock;
  readonly ids: MessageIdGenerator;
  readonly timeouts: CallTimeouts;
  /** Most viewers of one live room. */
  readonly liveRoomViewersMax: number;
  /** This worker's id, for deadline claims. */
  readonly workerId: string;
  /** How long a claimed deadline stays this worker's before another may take it. Default 10 s. */
  readonly claimLeaseMs?: number;
  /** Told about failures of background work (stored messages, media rooms). */
  readonly onBackgroundError?: (error: unknown, context: string) => void;
}

/** A call started (or answered, on glare). */
export interface StartOutcome {
  readonly call: CallRecord;
  readonly duplicate: boolean;
  readonly iceServers: IceServerSet;
  readonly room: MediaRoomAccess | undefined;
}

/** Where and how to join a media-server room. */
export interface MediaRoomAccess {
  readonly url: string;
  readonly token: string;
  readonly roomName: string;
}

/** A call as a device reads it, with where it stands in its signals. */
export interface CallView {
  readonly call: CallRecord;
  readonly lastSignalSeq: number;
  readonly signalsMissed: boolean;
}

/** The target of StartCall. */
export type CallTarget = { readonly toUserId: string } | { readonly conversationId: string };

/** A StartCall as the core sees it. */
export interface StartCommand {
  readonly target: CallTarget;
  readonly clientCallId: string;
  readonly deviceId: string;
  readonly video: boolean;
}

/** The media-server room name of a group call. */
export function callRoomName(callId: string): string {
  return `call-${callId}`;
}

const CAS_ATTEMPTS = 16;
const TICK_BATCH = 100;
const TOKEN_TTL_S = 6 * 3600;
const ADMIT_TTL_MS = 60_000;
const GROUP_GRANT: MediaGrant = { canPublish: true, canSubscribe: true };

/**
 * Calls and live rooms: the call state machine (call-machine.ts) applied to records in the
 * CallStore by compare-and-set, with its effects carried out: snapshots published to every
 * party, signals relayed to one device, the two stored messages written through Messaging,
 * media-server rooms opened and closed. Pure like Messaging: no timers, no global time; the
 * gateway calls `tick(now)`, which fires the deadlines of any call (whichever worker
 * created it).
 */
export class Calls {
  readonly #deps: CallsDeps;
  readonly #leaseMs: number;
  readonly #background = new Set<Promise<void>>();

  constructor(deps: CallsDeps) {
    this.#deps = deps;
    this.#leaseMs = deps.claimLeaseMs ?? 10_000;
  }

  /** Starts a call; see CallService.StartCall for busy, glare and idempotency. */
  async startCall(userId: string, command: StartCommand): Promise<Result<StartOutcome>> {
    const { store, clock, timeouts, ids } = this.#deps;
    const existing = await store.findByClientCallId(userId, command.clientCallId);
    if (existing !== undefined) return ok(await this.#started(userId, existing, true));
    const resolved = await this.#resolveTarget(userId, command.target);
    if (!resolved.ok) return resolved;
    const { conversationId, calleeIds, topology } = resolved.value;
    if (topology === "sfu" && this.#deps.media === undefined) return fail("media_unavailable", "group calls need a media server and none is configured");
    const busyKnown = new Set<string>();
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const mine = await store.callOf(userId);
      if (mine !== undefined) {
        const held = await store.get(mine);
        if (held !== undefined && held.state !== "ended") {
          const glare = this.#isGlare(held, userId, command.target);
          if (!glare) return fail("already_in_call", `you are in call ${held.callId}: hang up or decline it first`);
          const aliased = await store.alias(userId, command.clientCallId, held.callId);
          const answered = await this.#transact(aliased, { type: "accept", userId, deviceId: command.deviceId });
          if (!answered.ok) return answered;
          return ok(await this.#started(userId, answered.value, aliased !== held.callId));
        }
      }
      const call = createCall(
        { callId: ids.next(), conversationId, callerId: userId, callerDeviceId: command.deviceId, clientCallId: command.clientCallId, topology, video: command.video, calleeIds, busyUserIds: [...busyKnown] },
        clock.nowMs(),
        timeouts,
      );
      const outcome = await store.create(call, slotHolders(call));
      if (outcome.kind === "duplicate") return ok(await this.#started(userId, outcome.call, true));
      if (outcome.kind === "busy") {
        // Our own slot taken in between (e.g. the callee called us first): look again.
        for (const user of outcome.busy.keys()) if (user !== userId) busyKnown.add(user);
        continue;
      }
      if (call.topology === "sfu" && call.state !== "ended") {
        const opened = await this.#openRoom(call);
        if (!opened.ok) return opened;
      }
      this.#effects({ call, changed: true, visible: true, released: [] });
      return ok(await this.#started(userId, call, false));
    }
    throw new StoreUnavailableError("the call could not be started: its parties' calls kept changing; retry with the same client_call_id");
  }

  /** A callee's device rings. */
  ring(userId: string, callId: string, deviceId: string): Promise<Result<CallRecord>> {
    return this.#transact(callId, { type: "ring", userId, deviceId });
  }

  /** Answers on `deviceId`; for a group call also returns the room to join. */
  async accept(userId: string, callId: string, deviceId: string): Promise<Result<{ call: CallRecord; iceServers: IceServerSet; room: MediaRoomAccess | undefined }>> {
    const result = await this.#transact(callId, { type: "accept", userId, deviceId });
    if (!result.ok) return result;
    const call = result.value;
    return ok({ call, iceServers: this.#deps.iceServers(userId), room: await this.#roomAccess(call, userId) });
  }

  decline(userId: string, callId: string, deviceId: string): Promise<Result<CallRecord>> {
    return this.#transact(callId, { type: "decline", userId, deviceId });
  }

  hangup(userId: string, callId: string, deviceId: string, reason: "hangup" | "media_failed"): Promise<Result<CallRecord>> {
    return this.#transact(callId, { type: "hangup", userId, deviceId, reason });
  }

  keepalive(userId: string, callId: string, deviceId: string, mediaConnected: boolean): Promise<Result<CallRecord>> {
    return this.#transact(callId, { type: "keepalive", userId, deviceId, mediaConnected });
  }

  /** Relays a signal to the other answering device; returns its signal_seq. Nothing of it is stored. */
  async signal(userId: string, callId: string, deviceId: string, payload: SignalPayload): Promise<Result<number>> {
    const result = await this.#transactFull(callId, { type: "signal", userId, deviceId });
    if (!result.ok) return result;
    const route = result.value.signal;
    if (route === undefined) return fail("call_state", "the signal has no recipient");
    this.#deps.publisher.publish([route.toUserId], {
      type: "signal",
      callId,
      signalSeq: route.signalSeq,
      prevSignalSeq: route.prevSignalSeq,
      fromUserId: userId,
      fromDeviceId: deviceId,
      toDeviceId: route.toDeviceId,
      payload,
    });
    return ok(route.signalSeq);
  }

  /** The call, and whether signals to this device after `afterSignalSeq` went out. */
  async getCall(userId: string, callId: string, deviceId: string, afterSignalSeq: number): Promise<Result<CallView>> {
    const call = await this.#deps.store.get(callId);
    if (call === undefined) return notFound(callId);
    if (partyOf(call, userId) === undefined) return fail("not_call_party", `you are not a party of call ${callId}`);
    const last = lastSignalTo(call, userId, deviceId);
    return ok({ call, lastSignalSeq: last, signalsMissed: last > afterSignalSeq });
  }

  /** Fresh STUN/TURN servers. */
  iceServers(userId: string): IceServerSet {
    return this.#deps.iceServers(userId);
  }

  /** Creates a live room hosted by `userId`. */
  async createLiveRoom(userId: string, title: string): Promise<Result<LiveRoomRecord>> {
    const { media, store, ids, clock, liveRoomViewersMax } = this.#deps;
    if (media === undefined) return fail("media_unavailable", "live rooms need a media server and none is configured");
    const room: LiveRoomRecord = { roomId: ids.next(), hostId: userId, title, speakerIds: [], viewers: [], viewersMax: liveRoomViewersMax, createdAtMs: clock.nowMs(), version: 1 };
    await media.createRoom(liveRoomMediaName(room.roomId), { maxParticipants: liveRoomViewersMax + 64, emptyTimeoutS: 600 });
    if (!(await store.putRoom(room, 0))) throw new Error(`live room id ${room.roomId} was taken`);
    return ok(room);
  }

  /** Admits `userId` to a live room in `role`; returns the media server access with that role's grants. */
  async joinRoom(userId: string, roomId: string, role: RoomRole): Promise<Result<{ room: LiveRoomRecord; media: MediaRoomAccess; role: RoomRole }>> {
    const { media, store, clock } = this.#deps;
    if (media === undefined) return fail("media_unavailable", "live rooms need a media server and none is configured");
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const room = await store.getRoom(roomId);
      if (room === undefined) return fail("room_not_found", `live room ${roomId} does not exist`);
      const joined = joinLiveRoom(room, userId, role, clock.nowMs(), ADMIT_TTL_MS);
      if (!joined.ok) return joined;
      if (joined.value !== room && !(await store.putRoom(joined.value, room.version))) continue;
      const name = liveRoomMediaName(roomId);
      const grant: MediaGrant = { canPublish: role !== "viewer", canSubscribe: true };
      const token = await media.token(name, userId, grant, TOKEN_TTL_S);
      return ok({ room: joined.value, media: { url: media.url, token, roomName: name }, role });
    }
    throw new StoreUnavailableError("the live room kept changing; retry");
  }

  /** The host changes a user's role; the media server applies it at once when the user is in the room. */
  async setRole(userId: string, roomId: string, targetUserId: string, role: "viewer" | "speaker"): Promise<Result<LiveRoomRecord>> {
    const { media, store } = this.#deps;
    if (media === undefined) return fail("media_unavailable", "live rooms need a media server and none is configured");
    if (!isUserId(targetUserId)) return fail("invalid_argument", `invalid user id ${JSON.stringify(targetUserId)}`);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const room = await store.getRoom(roomId);
      if (room === undefined) return fail("room_not_found", `live room ${roomId} does not exist`);
      const next = setLiveRoomRole(room, userId, targetUserId, role);
      if (!next.ok) return next;
      if (next.value !== room && !(await store.putRoom(next.value, room.version))) continue;
      await media.setGrant(liveRoomMediaName(roomId), targetUserId, { canPublish: role === "speaker", canSubscribe: true });
      return ok(next.value);
    }
    throw new StoreUnavailableError("the live room kept changing; retry");
  }

  /**
   * The media server says `identity` joined or left room `roomName` (from its signed
   * webhook): group calls become ACTIVE once two parties are in, live rooms count viewers.
   */
  async mediaPresence(roomName: string, identity: string, joined: boolean): Promise<void> {
    if (roomName.startsWith("call-")) {
      const result = await this.#transact(roomName.slice("call-".length), { type: "media", userId: identity, joined });
      if (!result.ok && result.reason !== "call_not_found" && result.reason !== "not_call_party") {
        throw new Error(`media presence for ${roomName}: ${result.message}`);
      }
      return;
    }
    if (!roomName.startsWith("live-")) return;
    const roomId = roomName.slice("live-".length);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const room = await this.#deps.store.getRoom(roomId);
      if (room === undefined) return;
      const next = liveRoomPresence(room, identity, joined);
      if (next === room || (await this.#deps.store.putRoom(next, room.version))) return;
    }
  }

  /** The media server closed a room: a live room is gone. */
  async mediaRoomFinished(roomName: string): Promise<void> {
    if (roomName.startsWith("live-")) await this.#deps.store.deleteRoom(roomName.slice("live-".length));
  }

  /**
   * Fires every deadline that passed, for calls of any worker: claims due calls in the store
   * (each goes to one claimer), applies the timeouts, writes owed stored messages, purges
   * calls past their retention. Returns how many calls it changed or finished.
   */
  async tick(nowMs: number): Promise<number> {
    const { store, timeouts, workerId } = this.#deps;
    const due = await store.claimDue(nowMs, TICK_BATCH, workerId, this.#leaseMs);
    let done = 0;
    for (const call of due) {
      const t = tickCall(call, nowMs, timeouts);
      if (t.changed) {
        if (await store.update(t.call, call.version, t.released)) {
          this.#effects(t);
          done++;
        }
        continue;
      }
      const work = dueWork(call, nowMs, timeouts);
      if (work === "write_messages") {
        await this.#writeMessages(call);
        done++;
      } else if (work === "purge") {
        if (await store.delete(call.callId, call.version)) done++;
      }
    }
    return done;
  }

  /** Resolves once background work started so far (stored messages, rooms) has finished. */
  async settled(): Promise<void> {
    while (this.#background.size > 0) await Promise.all(this.#background);
  }

  #isGlare(held: CallRecord, userId: string, target: CallTarget): boolean {
    if (!("toUserId" in target) || held.topology !== "p2p" || held.state !== "ringing") return false;
    const me = partyOf(held, userId);
    return held.callerId === target.toUserId && me !== undefined && (me.state === "invited" || me.state === "ringing");
  }

  async #resolveTarget(userId: string, target: CallTarget): Promise<Result<{ conversationId: string; calleeIds: string[]; topology: "p2p" | "sfu" }>> {
    const { messages, timeouts } = this.#deps;
    if ("toUserId" in target) {
      if (!isUserId(target.toUserId)) return fail("invalid_argument", `invalid user id ${JSON.stringify(target.toUserId)}`);
      if (target.toUserId === userId) return fail("invalid_argument", "cannot call yourself");
      return ok({ conversationId: directConversationId(userId, target.toUserId), calleeIds: [target.toUserId], topology: "p2p" });
    }
    const conversationId = target.conversationId;
    if (parseConversationId(conversationId)?.kind !== "group") return fail("invalid_argument", `${JSON.stringify(conversationId)} is not a group: call the user instead`);
    const conversation = await messages.getConversation(conversationId);
    if (conversation === undefined) return fail("conversation_not_found", `conversation ${JSON.stringify(conversationId)} does not exist`);
    if (!(await messages.isMember(conversationId, userId))) return fail("not_member", `you are not a member of conversation ${JSON.stringify(conversationId)}`);
    const members = await messages.listMembers(conversationId, "", timeouts.partiesMax + 1);
    if (members.length > timeouts.partiesMax) return fail("limit_exceeded", `a group call holds at most ${timeouts.partiesMax} parties`);
    const calleeIds = members.filter((m) => m !== userId);
    if (calleeIds.length === 0) return fail("call_state", "the group has nobody else to call");
    return ok({ conversationId, calleeIds, topology: "sfu" });
  }

  async #started(userId: string, call: CallRecord, duplicate: boolean): Promise<StartOutcome> {
    return { call, duplicate, iceServers: this.#deps.iceServers(userId), room: await this.#roomAccess(call, userId) };
  }

  async #roomAccess(call: CallRecord, userId: string): Promise<MediaRoomAccess | undefined> {
    const media = this.#deps.media;
    if (call.topology !== "sfu" || media === undefined || call.state === "ended") return undefined;
    const name = callRoomName(call.callId);
    return { url: media.url, token: await media.token(name, userId, GROUP_GRANT, TOKEN_TTL_S), roomName: name };
  }

  async #openRoom(call: CallRecord): Promise<Result<void>> {
    try {
      await this.#deps.media!.createRoom(callRoomName(call.callId), { maxParticipants: call.parties.length, emptyTimeoutS: 300 });
      return ok(undefined);
    } catch (error) {
      this.#deps.onBackgroundError?.(error, `media room of call ${call.callId}`);
      await this.#transact(call.callId, { type: "fail" });
      return fail("media_unavailable", "the media server did not open the call's room");
    }
  }

  #transact(callId: string, command: CallCommand): Promise<Result<CallRecord>> {
    return this.#transactFull(callId, command).then((r) => (r.ok ? ok(r.value.call) : r));
  }

  /** Load, apply, compare-and-set, retrying on a concurrent change; then the effects. */
  async #transactFull(callId: string, command: CallCommand): Promise<Result<CallTransition>> {
    const { store, clock, timeouts } = this.#deps;
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const call = await store.get(callId);
      if (call === undefined) return notFound(callId);
      const result = applyCall(call, command, clock.nowMs(), timeouts);
      if (!result.ok || !result.value.changed) return result;
      if (!(await store.update(result.value.call, call.version, result.value.released))) continue;
      // Writing messages is what the messages_* commands record: they must not start it again.
      this.#effects(result.value, command.type !== "messages_written" && command.type !== "messages_failed");
      return result;
    }
    throw new StoreUnavailableError(`call ${callId} kept changing under this request; retry`);
  }

  /** Carries out a stored transition: publish, stored messages, closing the room. */
  #effects(t: CallTransition, writeMessages = true): void {
    const { call } = t;
    if (t.visible) this.#deps.publisher.publish(partyUserIds(call), { type: "call", call });
    if (writeMessages && call.messagesPending.length > 0) this.#background_(this.#writeMessages(call), `stored messages of call ${call.callId}`);
    if (t.visible && call.state === "ended" && call.topology === "sfu" && this.#deps.media !== undefined) {
      this.#background_(this.#deps.media.deleteRoom(callRoomName(call.callId)), `closing the room of call ${call.callId}`);
    }
  }

  /**
   * Writes the call's pending stored messages in order through Messaging (idempotent per
   * call and kind, so a retry by another worker stores nothing twice), then records them.
   */
  async #writeMessages(call: CallRecord): Promise<void> {
    const written: CallMessageKind[] = [];
    let failed = false;
    for (const kind of call.messagesPending) {
      const data = new TextEncoder().encode(JSON.stringify(callMessageBody(call, kind)));
      try {
        const result = await this.#deps.sendMessage(call.callerId, call.conversationId, callMessageClientId(call.callId, kind), CALL_MESSAGE_CONTENT_TYPE, data);
        // A refusal will not change on retry: give it up.
        if (result === "refused") this.#deps.onBackgroundError?.(new Error("the conversation refused it"), `stored ${kind} message of call ${call.callId}`);
        written.push(kind);
      } catch (error) {
        this.#deps.onBackgroundError?.(error, `stored ${kind} message of call ${call.callId}`);
        failed = true;
        break;
      }
    }
    if (written.length > 0) await this.#transact(call.callId, { type: "messages_written", kinds: written });
    if (failed) await this.#transact(call.callId, { type: "messages_failed" });
  }

  #background_(work: Promise<unknown>, context: string): void {
    const p = work.then(
      () => {},
      (error: unknown) => this.#deps.onBackgroundError?.(error, context),
    );
    this.#background.add(p);
    void p.finally(() => this.#background.delete(p));
  }
}

function notFound(callId: string): Result<never> {
  return fail("call_not_found", `call ${callId} does not exist`);
}
