import { createClient, type Client, type Transport } from "@connectrpc/connect";
import {
  CallEndReason,
  CallService,
  CallState,
  RoomRole,
  type Call,
  type CallEvent,
  type CallSignal,
  type IceServer,
  type MediaRoom,
  type SignalRequest,
} from "../gen/im/v1/call_pb.js";
import type { ConnectRequest, ConnectResponse } from "../gen/im/v1/gateway_pb.js";
import { CallEngine, type CallEffect, type CallEventKind } from "./call-engine.js";
import { CallNegotiator, type PeerConnectionLike } from "./call-negotiator.js";
import { Emitter } from "./emitter.js";
import type { ClientState, ImClient } from "./im-client.js";

/** What the call client tells the app: each a call snapshot. */
export type CallClientEvents = { readonly [K in CallEventKind]: Call } & {
  /** Signalling or repair failed (negotiation goes on); for logs. */
  readonly error: Error;
};

/** Call client settings. */
export interface CallClientOptions {
  /** The messaging client whose long connection (or Subscribe stream) carries call events. */
  readonly im: ImClient;
  /** This device's id (stable per installation): 1-64 of A-Z a-z 0-9 _ . : - */
  readonly deviceId: string;
  /** The user's id (the token's subject). */
  readonly userId: string;
  /**
   * For browser mode: the transport and token for CallService unary calls. Absent: call
   * operations go as frames on the long connection.
   */
  readonly unary?: { readonly transport: Transport; readonly token: string | (() => string | Promise<string>) };
  /** Interval of the engine's timer (keepalives, gap checks). Default 500 ms. */
  readonly tickMs?: number;
}

/** What to call. */
export type CallTarget = { readonly toUserId: string } | { readonly conversationId: string };

/** Where to join a media-server room. */
export interface RoomAccess {
  readonly url: string;
  readonly token: string;
  readonly roomName: string;
  /** A live room's host ("" for a group call's room). */
  readonly hostId: string;
}

type Frame = ConnectRequest["frame"];

/**
 * The SDK's call API: start, accept, decline, hang up; `attach(callId, pc)` negotiates a
 * one-to-one call's RTCPeerConnection (perfect negotiation, ordered signals, ICE restart
 * after the long connection reconnects, GetCall repair); `joinRoom` gives the SFU URL and
 * token for live rooms. The logic is the pure CallEngine; this shell owns the timer and the
 * transport.
 */
export class CallClient extends Emitter<CallClientEvents> {
  readonly #options: CallClientOptions;
  readonly #engine: CallEngine;
  readonly #negotiators = new Map<string, CallNegotiator>();
  /** Signals that arrived before the app attached a peer connection (bounded). */
  readonly #early = new Map<string, CallSignal[]>();
  readonly #unary: Client<typeof CallService> | undefined;
  readonly #timer: ReturnType<typeof setInterval>;
  readonly #unsubscribe: (() => void)[] = [];
  #wasLive = false;
  #lastState: ClientState | undefined;
  #counter = 0;

  constructor(options: CallClientOptions) {
    super();
    this.#options = options;
    this.#engine = new CallEngine({ userId: options.userId, deviceId: options.deviceId });
    this.#unary = options.unary === undefined ? undefined : createClient(CallService, options.unary.transport);
    this.#unsubscribe.push(options.im.on("callEvent", (e) => this.#onEvent(e)));
    this.#unsubscribe.push(options.im.on("state", (s) => this.#onState(s)));
    this.#timer = setInterval(() => this.#run(this.#engine.tick(Date.now())), options.tickMs ?? 500);
  }

  /** The newest snapshot of a call. */
  call(callId: string): Call | undefined {
    return this.#engine.call(callId);
  }

  /** Starts a call; resolves with the call (on glare: the other user's call, answered here) and ICE servers. */
  async start(target: CallTarget, options: { video?: boolean; clientCallId?: string } = {}): Promise<{ call: Call; iceServers: IceServer[]; room: MediaRoom | undefined }> {
    const out = await this.#op("startCall", {
      target: "toUserId" in target ? { case: "toUserId", value: target.toUserId } : { case: "conversationId", value: target.conversationId },
      clientCallId: options.clientCallId ?? `${this.#options.deviceId}-${Date.now()}-${++this.#counter}`,
      deviceId: this.#options.deviceId,
      video: options.video ?? true,
    });
    this.#snapshot(out.call);
    return { call: out.call!, iceServers: out.iceServers, room: out.room };
  }

  /** Answers on this device (the first of the user's devices wins). */
  async accept(callId: string): Promise<{ call: Call; iceServers: IceServer[]; room: MediaRoom | undefined }> {
    const out = await this.#op("acceptCall", { callId, deviceId: this.#options.deviceId });
    this.#snapshot(out.call);
    return { call: out.call!, iceServers: out.iceServers, room: out.room };
  }

  async decline(callId: string): Promise<Call> {
    const out = await this.#op("declineCall", { callId, deviceId: this.#options.deviceId });
    this.#snapshot(out.call);
    return out.call!;
  }

  /** Leaves (or cancels) the call; `mediaFailed` reports that this device's media broke. */
  async hangup(callId: string, mediaFailed = false): Promise<Call> {
    // Should this request be lost, the engine hangs up again and stops the keepalives.
    this.#engine.leave(callId, mediaFailed);
    const out = await this.#op("hangupCall", { callId, deviceId: this.#options.deviceId, reason: mediaFailed ? CallEndReason.MEDIA_FAILED : CallEndReason.HANGUP });
    this.#snapshot(out.call);
    this.#detach(callId);
    return out.call!;
  }

  /** Fresh STUN/TURN servers. */
  async iceServers(): Promise<IceServer[]> {
    return (await this.#op("getIceServers", {})).iceServers;
  }

  /**
   * Negotiates `pc` for a one-to-one call this device holds (as caller, or after accept):
   * the callee is the polite side. Media state (ICE connected) goes to the server with the
   * keepalives, which turns the call ACTIVE.
   */
  attach(callId: string, pc: PeerConnectionLike & { readonly connectionState?: string; addEventListener(type: "connectionstatechange", l: () => void): void }): void {
    const call = this.#engine.call(callId);
    if (call === undefined) throw new Error(`unknown call ${callId}`);
    const polite = call.callerId !== this.#options.userId;
    const negotiator = new CallNegotiator(pc, (signal) => this.#signal(callId, signal), polite);
    this.#negotiators.get(callId)?.close();
    this.#negotiators.set(callId, negotiator);
    pc.addEventListener("connectionstatechange", () => this.#run(this.#engine.mediaState(callId, pc.connectionState === "connected", Date.now())));
    for (const signal of this.#early.get(callId) ?? []) void negotiator.apply(signal);
    this.#early.delete(callId);
  }

  /** Joins a live room in `role`; returns the media server's URL and a token with the role's grants. */
  async joinRoom(roomId: string, role: "viewer" | "speaker" | "host"): Promise<RoomAccess> {
    const wire = role === "host" ? RoomRole.HOST : role === "speaker" ? RoomRole.SPEAKER : RoomRole.VIEWER;
    const out = await this.#op("joinRoom", { roomId, role: wire });
    return { url: out.media!.url, token: out.media!.token, roomName: out.media!.roomName, hostId: out.room?.hostId ?? "" };
  }

  /** Creates a live room hosted by this user. */
  async createLiveRoom(title: string): Promise<string> {
    return (await this.#op("createLiveRoom", { title })).room!.roomId;
  }

  /** The host promotes a viewer to speaker, or back. */
  async setRole(roomId: string, userId: string, role: "viewer" | "speaker"): Promise<void> {
    await this.#op("setRole", { roomId, userId, role: role === "speaker" ? RoomRole.SPEAKER : RoomRole.VIEWER });
  }

  /** Stops the timer and the negotiations. */
  close(): void {
    clearInterval(this.#timer);
    for (const u of this.#unsubscribe) u();
    for (const n of this.#negotiators.values()) n.close();
    this.#negotiators.clear();
  }

  #onEvent(event: CallEvent): void {
    const now = Date.now();
    if (event.event.case === "call") this.#run(this.#engine.snapshot(event.event.value, now));
    else if (event.event.case === "signal") this.#run(this.#engine.signal(event.event.value, now));
  }

  #onState(state: ClientState): void {
    if (state === "live") {
      // Live again after having been live: the long connection came back.
      if (this.#wasLive && this.#lastState !== "live") this.#run(this.#engine.reconnected());
      this.#wasLive = true;
    }
    this.#lastState = state;
  }

  #snapshot(call: Call | undefined): void {
    if (call !== undefined) this.#run(this.#engine.snapshot(call, Date.now()));
  }

  #run(effects: readonly CallEffect[]): void {
    for (const effect of effects) {
      switch (effect.type) {
        case "emit":
          if (effect.event === "ended" || effect.event === "answered_elsewhere") this.#detach(effect.call.callId);
          this.emit(effect.event, effect.call);
          break;
        case "ring":
          this.#background(this.#op("ringCall", { callId: effect.callId, deviceId: this.#options.deviceId }).then((r) => this.#snapshot(r.call)));
          break;
        case "apply_signal": {
          const negotiator = this.#negotiators.get(effect.signal.callId);
          if (negotiator !== undefined) {
            void negotiator.apply(effect.signal);
          } else {
            const early = this.#early.get(effect.signal.callId) ?? [];
            if (early.length < 256) early.push(effect.signal);
            this.#early.set(effect.signal.callId, early);
          }
          break;
        }
        case "get_call":
          this.#background(
            this.#op("getCall", { callId: effect.callId, deviceId: this.#options.deviceId, afterSignalSeq: effect.afterSignalSeq }).then((view) => {
              if (view.call !== undefined) this.#run(this.#engine.callView({ call: view.call, lastSignalSeq: view.lastSignalSeq, signalsMissed: view.signalsMissed }, Date.now()));
            }),
          );
          break;
        case "renegotiate":
          void this.#negotiators.get(effect.callId)?.renegotiate();
          break;
        case "ice_restart":
          this.#negotiators.get(effect.callId)?.restartIce();
          break;
        case "hangup":
          this.#background(
            this.#op("hangupCall", { callId: effect.callId, deviceId: this.#options.deviceId, reason: effect.mediaFailed ? CallEndReason.MEDIA_FAILED : CallEndReason.HANGUP }).then((r) => this.#snapshot(r.call)),
          );
          break;
        case "keepalive":
          this.#background(
            this.#op("callKeepalive", { callId: effect.callId, deviceId: this.#options.deviceId, mediaConnected: effect.mediaConnected }).then((r) => {
              this.#engine.setKeepaliveInterval(r.keepaliveIntervalMs);
              this.#snapshot(r.call);
            }),
          );
          break;
      }
    }
  }

  async #signal(callId: string, signal: SignalRequest["signal"]): Promise<void> {
    await this.#op("callSignal", { callId, deviceId: this.#options.deviceId, signal });
  }

  #detach(callId: string): void {
    this.#negotiators.get(callId)?.close();
    this.#negotiators.delete(callId);
    this.#early.delete(callId);
  }

  #background(work: Promise<unknown>): void {
    work.catch((error: unknown) => this.emit("error", error as Error));
  }

  /** A call operation: a frame on the long connection, or a CallService unary call in browser mode. */
  async #op<C extends CallCase>(kind: C, value: Omit<Extract<Frame, { case: C }>["value"], "$typeName">): Promise<Extract<ConnectResponse["frame"], { case: C }>["value"]> {
    const body = { $typeName: `im.v1.${CALL_REQUEST_TYPES[kind]}`, ...value } as never;
    const unary = this.#unary;
    if (unary === undefined) {
      const frame = await this.#options.im.request({ case: kind, value: body } as Frame);
      return frame.value as never;
    }
    const t = this.#options.unary!.token;
    const token = typeof t === "string" ? t : await t();
    const method = unary[CALL_UNARY_METHODS[kind]] as unknown as (req: unknown, options: unknown) => Promise<never>;
    return method.call(unary, body, { headers: { authorization: `Bearer ${token}` } });
  }
}

/** The long connection's call frames (ConnectRequest.frame cases). */
export type CallCase = "startCall" | "ringCall" | "acceptCall" | "declineCall" | "hangupCall" | "callSignal" | "getCall" | "callKeepalive" | "getIceServers" | "createLiveRoom" | "joinRoom" | "setRole";

/** Each call frame's request message, as named in im.v1. */
export const CALL_REQUEST_TYPES: Record<CallCase, string> = {
  startCall: "StartCallRequest",
  ringCall: "RingRequest",
  acceptCall: "AcceptRequest",
  declineCall: "DeclineRequest",
  hangupCall: "HangupRequest",
  callSignal: "SignalRequest",
  getCall: "GetCallRequest",
  callKeepalive: "KeepaliveRequest",
  getIceServers: "GetIceServersRequest",
  createLiveRoom: "CreateLiveRoomRequest",
  joinRoom: "JoinRoomRequest",
  setRole: "SetRoleRequest",
};

/** Each call frame's unary CallService method (the browser path). */
export const CALL_UNARY_METHODS: Record<CallCase, keyof Client<typeof CallService>> = {
  startCall: "startCall",
  ringCall: "ring",
  acceptCall: "accept",
  declineCall: "decline",
  hangupCall: "hangup",
  callSignal: "signal",
  getCall: "getCall",
  callKeepalive: "keepalive",
  getIceServers: "getIceServers",
  createLiveRoom: "createLiveRoom",
  joinRoom: "joinRoom",
  setRole: "setRole",
};

/** Whether a call is over. */
export function isEnded(call: Call): boolean {
  return call.state === CallState.ENDED;
}
