import type { Transport } from "@connectrpc/connect";
import { CallClient } from "../../../client/call-client.js";
import type { PeerConnectionLike } from "../../../client/call-negotiator.js";
import type { ImClient } from "../../../client/im-client.js";
import { CallEndReason, CallState, CallTopology, PartyState, type Call, type IceServer } from "../../../gen/im/v1/call_pb.js";
import { errorWords } from "./error-words.js";

/** What the page shows of the one call it holds. */
export type CallPhase =
  /** This user called; nobody's device has rung yet. */
  | "calling"
  /** A callee's device rings. */
  | "ringing"
  /** Someone calls this user. */
  | "incoming"
  /** Answered; media is being connected. */
  | "connecting"
  /** Media flows. */
  | "connected"
  /** Over; `ended` says why. */
  | "ended";

/** The call the page shows (undefined: none). */
export interface CallView {
  readonly callId: string;
  readonly peerUserId: string;
  readonly phase: CallPhase;
  /** Why it ended, in words ("" until it ends). */
  readonly ended: string;
}

const END_WORDS: Record<CallEndReason, string> = {
  [CallEndReason.UNSPECIFIED]: "Call ended",
  [CallEndReason.HANGUP]: "Call ended",
  [CallEndReason.CANCELLED]: "Call cancelled",
  [CallEndReason.DECLINED]: "Call declined",
  [CallEndReason.BUSY]: "Busy",
  [CallEndReason.NO_ANSWER]: "No answer",
  [CallEndReason.ICE_FAILED]: "The call could not connect",
  [CallEndReason.CONNECTION_LOST]: "The connection was lost",
  [CallEndReason.MEDIA_FAILED]: "Camera or microphone failed",
  [CallEndReason.SERVER_ERROR]: "The server ended the call",
};

/** The browser's media for a call (tests use Chromium's fake devices). */
export interface CallMedia {
  getUserMedia(constraints: MediaStreamConstraints): Promise<MediaStream>;
  createPeerConnection(config: RTCConfiguration): RTCPeerConnection;
}

const browserMedia: CallMedia = {
  getUserMedia: (c) => navigator.mediaDevices.getUserMedia(c),
  createPeerConnection: (config) => new RTCPeerConnection(config),
};

/** What the call controller is built from. */
export interface CallControllerOptions {
  readonly im: ImClient;
  readonly userId: string;
  readonly deviceId: string;
  readonly transport: Transport;
  readonly token: () => string | Promise<string>;
  readonly media?: CallMedia;
  /** The page's call client when it is shared (with the room controller); default: one of its own. Closed by close(). */
  readonly client?: CallClient;
  /** Tells the page something went wrong, in words. */
  readonly notice: (text: string) => void;
}

/**
 * The web client's one-to-one calls over the SDK's CallClient: one call at a time (a second
 * incoming call while one is held is declined as busy by the server's per-user rule, or here),
 * audio and video from the device's camera and microphone on an RTCPeerConnection that the
 * CallClient negotiates. Listeners hear every change of `view`; `local` / `remote` are the
 * streams to show.
 */
export class CallController {
  readonly #options: CallControllerOptions;
  readonly #calls: CallClient;
  readonly #listeners = new Set<() => void>();
  readonly #media: CallMedia;
  #view: CallView | undefined;
  #pc: RTCPeerConnection | undefined;
  #local: MediaStream | undefined;
  #remote: MediaStream | undefined;

  constructor(options: CallControllerOptions) {
    this.#options = options;
    this.#media = options.media ?? browserMedia;
    this.#calls = options.client ?? new CallClient({ im: options.im, userId: options.userId, deviceId: options.deviceId, unary: { transport: options.transport, token: options.token } });
    this.#calls.on("incoming", (call) => this.#onIncoming(call));
    this.#calls.on("ringing", (call) => this.#update(call.callId, (v) => (v.phase === "calling" ? { ...v, phase: "ringing" } : v)));
    this.#calls.on("accepted", (call) => this.#onAccepted(call));
    this.#calls.on("answered_elsewhere", (call) => this.#finish(call.callId, "Answered on another device"));
    this.#calls.on("ended", (call) => this.#finish(call.callId, END_WORDS[call.endReason] ?? "Call ended"));
    this.#calls.on("error", () => undefined);
  }

  get view(): CallView | undefined {
    return this.#view;
  }
  get local(): MediaStream | undefined {
    return this.#local;
  }
  get remote(): MediaStream | undefined {
    return this.#remote;
  }

  /** Calls `listener` after every change; returns the unsubscribe. */
  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Calls `peerUserId` (video). Returns a refusal in words. */
  async start(peerUserId: string): Promise<string | undefined> {
    if (this.#view !== undefined && this.#view.phase !== "ended") return "A call is already going on";
    try {
      const started = await this.#calls.start({ toUserId: peerUserId }, { video: true });
      this.#iceServers = started.iceServers;
      // Events of this call may have come before the answer: start from the newest snapshot.
      const call = this.#calls.call(started.call.callId) ?? started.call;
      if (call.state === CallState.ENDED) {
        this.#set({ callId: call.callId, peerUserId, phase: "ended", ended: END_WORDS[call.endReason] });
        return undefined;
      }
      const rings = call.parties.some((p) => p.userId !== this.#options.userId && (p.state === PartyState.RINGING || p.ringingDeviceIds.length > 0));
      this.#set({ callId: call.callId, peerUserId, phase: rings ? "ringing" : "calling", ended: "" });
      if (call.state === CallState.CONNECTING || call.state === CallState.ACTIVE) this.#onAccepted(call);
      return undefined;
    } catch (error) {
      return `The call could not be started: ${errorWords(error)}`;
    }
  }

  #iceServers: IceServer[] = [];

  /** Answers the incoming call, with camera and microphone. */
  async accept(): Promise<void> {
    const view = this.#view;
    if (view === undefined || view.phase !== "incoming") return;
    this.#set({ ...view, phase: "connecting" });
    try {
      const { iceServers } = await this.#calls.accept(view.callId);
      await this.#connectMedia(view.callId, iceServers);
    } catch (error) {
      this.#options.notice(`The call could not be answered: ${errorWords(error)}`);
      this.#finish(view.callId, "Call ended");
    }
  }

  /** Declines the incoming call. */
  async decline(): Promise<void> {
    const view = this.#view;
    if (view === undefined || view.phase !== "incoming") return;
    this.#finish(view.callId, "Call declined");
    await this.#calls.decline(view.callId).catch((error: unknown) => this.#options.notice(`The call could not be declined: ${errorWords(error)}`));
  }

  /** Hangs up (or cancels while it rings). */
  async hangup(): Promise<void> {
    const view = this.#view;
    if (view === undefined || view.phase === "ended" || view.phase === "incoming") return;
    this.#finish(view.callId, "Call ended");
    await this.#calls.hangup(view.callId).catch((error: unknown) => this.#options.notice(`The call could not be hung up: ${errorWords(error)}`));
  }

  /** Hides an ended call. */
  dismiss(): void {
    if (this.#view?.phase === "ended") this.#set(undefined);
  }

  close(): void {
    this.#stopMedia();
    this.#calls.close();
    this.#listeners.clear();
  }

  #onIncoming(call: Call): void {
    // Group calls ring in the room view.
    if (call.topology === CallTopology.SFU) return;
    if (this.#view !== undefined && this.#view.phase !== "ended") {
      if (this.#view.callId !== call.callId) void this.#calls.decline(call.callId).catch(() => undefined);
      return;
    }
    this.#set({ callId: call.callId, peerUserId: call.callerId, phase: "incoming", ended: "" });
  }

  #onAccepted(call: Call): void {
    const view = this.#view;
    // The callee's own accept is handled by accept(); the caller connects media when a callee answers.
    if (view === undefined || view.callId !== call.callId || (view.phase !== "calling" && view.phase !== "ringing")) return;
    this.#set({ ...view, phase: "connecting" });
    this.#connectMedia(call.callId, this.#iceServers).catch((error: unknown) => {
      this.#options.notice(`Camera or microphone failed: ${errorWords(error)}`);
      void this.#calls.hangup(call.callId, true).catch(() => undefined);
      this.#finish(call.callId, END_WORDS[CallEndReason.MEDIA_FAILED]);
    });
  }

  async #connectMedia(callId: string, iceServers: readonly IceServer[]): Promise<void> {
    const pc = this.#media.createPeerConnection({
      iceServers: iceServers.map((i) => ({ urls: i.urls, username: i.username || undefined, credential: i.credential || undefined })),
    });
    this.#pc = pc;
    const remote = new MediaStream();
    this.#remote = remote;
    pc.addEventListener("track", (e) => {
      remote.addTrack(e.track);
      this.#emit();
    });
    pc.addEventListener("connectionstatechange", () => {
      if (pc.connectionState === "connected") this.#update(callId, (v) => (v.phase === "connecting" ? { ...v, phase: "connected" } : v));
    });
    this.#calls.attach(callId, pc as unknown as PeerConnectionLike & { addEventListener(type: "connectionstatechange", l: () => void): void });
    const local = await this.#media.getUserMedia({ audio: true, video: true });
    if (this.#pc !== pc) {
      for (const track of local.getTracks()) track.stop();
      return;
    }
    this.#local = local;
    for (const track of local.getTracks()) pc.addTrack(track, local);
    this.#emit();
  }

  #finish(callId: string, words: string): void {
    const view = this.#view;
    if (view === undefined || view.callId !== callId || view.phase === "ended") return;
    this.#stopMedia();
    this.#set({ ...view, phase: "ended", ended: words });
  }

  #stopMedia(): void {
    for (const track of this.#local?.getTracks() ?? []) track.stop();
    this.#pc?.close();
    this.#pc = undefined;
    this.#local = undefined;
    this.#remote = undefined;
  }

  #update(callId: string, change: (view: CallView) => CallView): void {
    if (this.#view?.callId === callId) this.#set(change(this.#view));
  }

  #set(view: CallView | undefined): void {
    this.#view = view;
    this.#emit();
  }

  #emit(): void {
    for (const listener of this.#listeners) listener();
  }
}
