import type { Participant, Room, Track } from "livekit-client";
import type { CallClient, RoomAccess } from "../../../client/call-client.js";
import { CallEndReason, CallTopology, type Call } from "../../../gen/im/v1/call_pb.js";
import { errorWords } from "./error-words.js";

/** What a person is in the room: a group call's member, or a live room's host, speaker or viewer. */
export type RoomRole = "member" | "host" | "speaker" | "viewer";

/** Where the page is with its one room. */
export type RoomPhase =
  /** A group call of one of the user's groups rings here: Join or Decline. */
  | "invited"
  /** Getting a token and connecting to the media server. */
  | "joining"
  /** In the room. */
  | "joined"
  /** Over; `ended` says why. */
  | "ended";

/** One person in the room as the view shows them. */
export interface RoomTile {
  readonly identity: string;
  /** The name shown (the user id unless the media server gives a name). */
  readonly name: string;
  readonly local: boolean;
  /** The person's camera track while it is on (attach it to a video element). */
  readonly video: Track | undefined;
  /** A remote person's microphone track while it is on (the local one is never played back). */
  readonly audio: Track | undefined;
  /** Whether the person may publish (a live room's viewers may not). */
  readonly canPublish: boolean;
}

/** The room the page shows (undefined: none). */
export interface RoomView {
  readonly kind: "group" | "live";
  /** The group call's id ("" for a live room). */
  readonly callId: string;
  /** The group conversation of a group call; the live room's id for a live room. */
  readonly roomId: string;
  /** Who started the group call, or the live room's host ("" when not known). */
  readonly startedBy: string;
  readonly phase: RoomPhase;
  readonly role: RoomRole;
  /** Whether this device may publish: false for a viewer until promoted. */
  readonly canPublish: boolean;
  readonly cameraOn: boolean;
  readonly micOn: boolean;
  /** Why it ended, in words ("" until it ends). */
  readonly ended: string;
}

/** Most tiles one room shows (the server bounds a group call's parties; a live room can be larger). */
export const ROOM_TILES_MAX = 64;

/** What the room controller is built from. */
export interface RoomControllerOptions {
  /** The page's call client (shared with the one-to-one calls: one timer, one engine). */
  readonly calls: CallClient;
  readonly userId: string;
  /** Tells the page something went wrong, in words. */
  readonly notice: (text: string) => void;
}

type Livekit = typeof import("livekit-client");
let livekit: Promise<Livekit> | undefined;
/** LiveKit's client, loaded with the first room so the chat page does not pay for it. */
function loadLivekit(): Promise<Livekit> {
  livekit ??= import("livekit-client").catch((error: unknown) => {
    livekit = undefined;
    throw error;
  });
  return livekit;
}

/**
 * The web client's multi-party rooms on the media server (LiveKit): a group conversation's
 * call (started here, or joined when it rings) and live rooms (a host publishes, viewers
 * watch, SetRole promotes a viewer to speaker, which the media server applies at once). One
 * room at a time; the CallClient gives the server's URL and token, LiveKit's Room carries
 * the media. Listeners hear every change of `view` and `tiles`.
 */
export class RoomController {
  readonly #options: RoomControllerOptions;
  readonly #listeners = new Set<() => void>();
  readonly #unsubscribe: (() => void)[] = [];
  #view: RoomView | undefined;
  #room: Room | undefined;
  #tiles: readonly RoomTile[] = [];
  /** LiveKit's names of the camera and microphone sources, once loaded. */
  #source: { readonly camera: Track.Source; readonly microphone: Track.Source } | undefined;

  constructor(options: RoomControllerOptions) {
    this.#options = options;
    this.#unsubscribe.push(options.calls.on("incoming", (call) => this.#onIncoming(call)));
    this.#unsubscribe.push(options.calls.on("answered_elsewhere", (call) => this.#finish(call.callId, "Joined on another device")));
    this.#unsubscribe.push(options.calls.on("ended", (call) => this.#finish(call.callId, call.endReason === CallEndReason.CANCELLED ? "The group call was cancelled" : "The group call ended")));
  }

  get view(): RoomView | undefined {
    return this.#view;
  }
  /** Everyone in the room, this device first (empty unless joined). */
  get tiles(): readonly RoomTile[] {
    return this.#tiles;
  }

  /** Calls `listener` after every change; returns the unsubscribe. */
  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Starts a call of the group `conversationId` and joins its room with camera and microphone. Returns a refusal in words. */
  async startGroupCall(conversationId: string): Promise<string | undefined> {
    if (this.#busy()) return "You are already in a room";
    const joining: RoomView = { kind: "group", callId: "", roomId: conversationId, startedBy: this.#options.userId, phase: "joining", role: "member", canPublish: true, cameraOn: false, micOn: false, ended: "" };
    this.#set(joining);
    let callId = "";
    try {
      const started = await this.#options.calls.start({ conversationId }, { video: true });
      callId = started.call.callId;
      // Left while the call was being started: leave it at the server too.
      if (this.#view !== joining) return void (await this.#hangup(callId, false));
      this.#set({ ...joining, callId });
      if (started.room === undefined) throw new Error("the server gave no room for the group call");
      await this.#connect({ url: started.room.url, token: started.room.token, roomName: started.room.roomName, hostId: "" }, true);
      return undefined;
    } catch (error) {
      this.#abandon(callId);
      return `The group call could not be started: ${errorWords(error)}`;
    }
  }

  /** Joins the group call that rings here. */
  async join(): Promise<void> {
    const view = this.#view;
    if (view === undefined || view.phase !== "invited") return;
    this.#set({ ...view, phase: "joining" });
    let answered = "";
    try {
      const accepted = await this.#options.calls.accept(view.callId);
      answered = view.callId;
      if (this.#view?.callId !== view.callId || this.#view.phase !== "joining") return void (await this.#hangup(view.callId, false));
      if (accepted.room === undefined) throw new Error("the server gave no room for the group call");
      await this.#connect({ url: accepted.room.url, token: accepted.room.token, roomName: accepted.room.roomName, hostId: "" }, true);
    } catch (error) {
      this.#options.notice(`The group call could not be joined: ${errorWords(error)}`);
      this.#abandon(answered);
    }
  }

  /** Declines the group call that rings here. */
  async decline(): Promise<void> {
    const view = this.#view;
    if (view === undefined || view.phase !== "invited") return;
    this.#set(undefined);
    await this.#options.calls.decline(view.callId).catch((error: unknown) => this.#options.notice(`The group call could not be declined: ${errorWords(error)}`));
  }

  /** Creates a live room hosted by this user and joins it as host (camera and microphone on). Returns a refusal in words. */
  async goLive(title: string): Promise<string | undefined> {
    if (this.#busy()) return "You are already in a room";
    try {
      const roomId = await this.#options.calls.createLiveRoom(title);
      return await this.joinLive(roomId, "host");
    } catch (error) {
      return `The live room could not be created: ${errorWords(error)}`;
    }
  }

  /** Joins live room `roomId` as `role` (a viewer publishes nothing until the host promotes it). Returns a refusal in words. */
  async joinLive(roomId: string, role: "host" | "viewer"): Promise<string | undefined> {
    if (this.#busy()) return "You are already in a room";
    const canPublish = role === "host";
    this.#set({ kind: "live", callId: "", roomId, startedBy: role === "host" ? this.#options.userId : "", phase: "joining", role, canPublish, cameraOn: false, micOn: false, ended: "" });
    try {
      const access = await this.#options.calls.joinRoom(roomId, role);
      this.#set({ ...this.#view!, startedBy: access.hostId });
      await this.#connect(access, canPublish);
      return undefined;
    } catch (error) {
      this.#disconnect();
      this.#set(undefined);
      return `The live room could not be joined: ${errorWords(error)}`;
    }
  }

  /** The host promotes `userId` to speaker, or back to viewer. */
  async setRole(userId: string, role: "viewer" | "speaker"): Promise<void> {
    const view = this.#view;
    if (view?.kind !== "live" || view.role !== "host") return;
    await this.#options.calls.setRole(view.roomId, userId, role).catch((error: unknown) => this.#options.notice(`The role could not be changed: ${errorWords(error)}`));
  }

  /** Turns the camera on or off (only when this device may publish). */
  async setCamera(on: boolean): Promise<void> {
    await this.#publish("camera", on);
  }

  /** Turns the microphone on or off (only when this device may publish). */
  async setMicrophone(on: boolean): Promise<void> {
    await this.#publish("microphone", on);
  }

  /** Leaves the room (a group call goes on for the others while two remain). */
  async leave(): Promise<void> {
    const view = this.#view;
    if (view === undefined || view.phase === "invited" || view.phase === "ended") return;
    this.#disconnect();
    this.#set(undefined);
    if (view.kind === "group" && view.callId !== "") await this.#hangup(view.callId, false);
  }

  /** Hides an ended room. */
  dismiss(): void {
    if (this.#view?.phase === "ended") this.#set(undefined);
  }

  close(): void {
    this.#disconnect();
    for (const off of this.#unsubscribe) off();
    this.#listeners.clear();
  }

  /** Joining failed: drop the media connection and the view, and leave the call at the server if this device is in it. */
  #abandon(callId: string): void {
    this.#disconnect();
    if (this.#view?.phase === "joining") this.#set(undefined);
    if (callId !== "") void this.#hangup(callId, true);
  }

  async #hangup(callId: string, mediaFailed: boolean): Promise<void> {
    await this.#options.calls.hangup(callId, mediaFailed).catch((error: unknown) => this.#options.notice(`The group call could not be left: ${errorWords(error)}`));
  }

  #busy(): boolean {
    return this.#view !== undefined && this.#view.phase !== "ended";
  }

  #onIncoming(call: Call): void {
    if (call.topology !== CallTopology.SFU || this.#busy()) return;
    this.#set({ kind: "group", callId: call.callId, roomId: call.conversationId, startedBy: call.callerId, phase: "invited", role: "member", canPublish: true, cameraOn: false, micOn: false, ended: "" });
  }

  async #connect(access: RoomAccess, publish: boolean): Promise<void> {
    const { Room, RoomEvent, Track } = await loadLivekit();
    const view = this.#view;
    if (view === undefined || view.phase !== "joining") return;
    const room = new Room();
    this.#room = room;
    this.#source = { camera: Track.Source.Camera, microphone: Track.Source.Microphone };
    const refresh = () => this.#refresh(room);
    for (const event of [
      RoomEvent.ParticipantConnected,
      RoomEvent.ParticipantDisconnected,
      RoomEvent.TrackSubscribed,
      RoomEvent.TrackUnsubscribed,
      RoomEvent.TrackMuted,
      RoomEvent.TrackUnmuted,
      RoomEvent.LocalTrackPublished,
      RoomEvent.LocalTrackUnpublished,
      RoomEvent.ParticipantPermissionsChanged,
    ]) {
      room.on(event, refresh);
    }
    room.on(RoomEvent.Disconnected, () => {
      if (this.#room !== room) return;
      this.#room = undefined;
      this.#tiles = [];
      const now = this.#view;
      if (now !== undefined && now.phase === "joined") this.#set({ ...now, phase: "ended", ended: "Disconnected from the room" });
    });
    await room.connect(access.url, access.token);
    if (this.#room !== room) {
      await room.disconnect();
      return;
    }
    this.#set({ ...this.#view!, phase: "joined" });
    if (publish) {
      await room.localParticipant.enableCameraAndMicrophone().catch((error: unknown) => this.#options.notice(`Camera or microphone failed: ${errorWords(error)}`));
    }
    this.#refresh(room);
  }

  async #publish(what: "camera" | "microphone", on: boolean): Promise<void> {
    const room = this.#room;
    if (room === undefined || this.#view?.canPublish !== true) return;
    try {
      if (what === "camera") await room.localParticipant.setCameraEnabled(on);
      else await room.localParticipant.setMicrophoneEnabled(on);
    } catch (error) {
      this.#options.notice(`The ${what} could not be turned ${on ? "on" : "off"}: ${errorWords(error)}`);
    }
    this.#refresh(room);
  }

  #refresh(room: Room): void {
    if (this.#room !== room || this.#view === undefined) return;
    const me = room.localParticipant;
    const canPublish = me.permissions?.canPublish ?? this.#view.canPublish;
    const role: RoomRole = this.#view.kind === "group" ? "member" : this.#view.role === "host" ? "host" : canPublish ? "speaker" : "viewer";
    const source = this.#source!;
    const tiles = [tileOf(me, true, source), ...[...room.remoteParticipants.values()].map((p) => tileOf(p, false, source))];
    this.#tiles = tiles.slice(0, ROOM_TILES_MAX);
    this.#set({ ...this.#view, role, canPublish, cameraOn: me.isCameraEnabled, micOn: me.isMicrophoneEnabled });
  }

  #finish(callId: string, words: string): void {
    const view = this.#view;
    if (view === undefined || view.kind !== "group" || view.callId !== callId || view.phase === "ended") return;
    this.#disconnect();
    this.#set({ ...view, phase: "ended", ended: words });
  }

  #disconnect(): void {
    const room = this.#room;
    this.#room = undefined;
    this.#tiles = [];
    void room?.disconnect();
  }

  #set(view: RoomView | undefined): void {
    this.#view = view;
    for (const listener of this.#listeners) listener();
  }
}

function tileOf(p: Participant, local: boolean, source: { readonly camera: Track.Source; readonly microphone: Track.Source }): RoomTile {
  const camera = p.getTrackPublication(source.camera);
  const mic = p.getTrackPublication(source.microphone);
  const live = (t: Track | undefined, muted: boolean | undefined) => (t !== undefined && muted !== true ? t : undefined);
  return {
    identity: p.identity,
    name: p.name !== undefined && p.name !== "" ? p.name : p.identity,
    local,
    video: live(camera?.track, camera?.isMuted),
    audio: local ? undefined : live(mic?.track, mic?.isMuted),
    canPublish: p.permissions?.canPublish ?? true,
  };
}
