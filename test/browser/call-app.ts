/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// The page the browser tests load (bundled by esbuild): the SDK in browser mode, a call
// client, WebRTC with the fake camera, and LiveKit's client for live rooms. The tests drive
// it through `window.app`.
import { createConnectTransport } from "@connectrpc/connect-web";
import { Room, RoomEvent, Track, type RemoteTrack } from "livekit-client";
import { CallClient } from "../../client/call-client.js";
import type { CandidateLike, DescriptionInit, PeerConnectionLike } from "../../client/call-negotiator.js";
import { ImClient } from "../../client/im-client.js";
import type { IceServer } from "../../gen/im/v1/call_pb.js";

interface Session {
  readonly im: ImClient;
  readonly calls: CallClient;
  readonly userId: string;
}

let session: Session | undefined;
let pc: RTCPeerConnection | undefined;
let room: Room | undefined;
const log: string[] = [];
const remoteVideos: HTMLVideoElement[] = [];

/** Only loopback candidates reach the peer connection, so media stays on 127.0.0.1. */
function loopbackOnly(real: RTCPeerConnection): PeerConnectionLike {
  return {
    get signalingState() {
      return real.signalingState;
    },
    get localDescription() {
      return real.localDescription;
    },
    get connectionState() {
      return real.connectionState;
    },
    setLocalDescription: (d?: DescriptionInit) => real.setLocalDescription(d as RTCSessionDescriptionInit | undefined),
    setRemoteDescription: (d: DescriptionInit) => real.setRemoteDescription(d as RTCSessionDescriptionInit),
    addIceCandidate: async (c: CandidateLike) => {
      if (!/ 127\.\d+\.\d+\.\d+ /.test(c.candidate)) return;
      await real.addIceCandidate(c as RTCIceCandidateInit);
    },
    restartIce: () => real.restartIce(),
    addEventListener: ((type: string, l: EventListener) => real.addEventListener(type, l)) as unknown as PeerConnectionLike["addEventListener"],
    removeEventListener: ((type: string, l: EventListener) => real.removeEventListener(type, l)) as unknown as PeerConnectionLike["removeEventListener"],
  } as PeerConnectionLike;
}

async function media(iceServers: IceServer[], callId: string): Promise<void> {
  const s = session!;
  pc = new RTCPeerConnection({ iceServers: iceServers.map((i) => ({ urls: i.urls, username: i.username || undefined, credential: i.credential || undefined })) });
  const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
  s.calls.attach(callId, loopbackOnly(pc) as PeerConnectionLike & { addEventListener(type: "connectionstatechange", l: () => void): void });
  for (const track of stream.getTracks()) pc.addTrack(track, stream);
}

async function framesDecoded(): Promise<number> {
  if (pc === undefined) return 0;
  let frames = 0;
  (await pc.getStats()).forEach((r: { type: string; kind?: string; framesDecoded?: number }) => {
    if (r.type === "inbound-rtp" && r.kind === "video") frames += r.framesDecoded ?? 0;
  });
  return frames;
}

const app = {
  log,
  /** Opens the SDK (browser mode: Subscribe plus unary calls, same origin). */
  async open(token: string, userId: string, deviceId: string): Promise<void> {
    const transport = createConnectTransport({ baseUrl: location.origin });
    const im = new ImClient({ transport, token, mode: "browser", userId, heartbeatIntervalMs: 1000, backoff: { baseMs: 50, maxMs: 300 } });
    const calls = new CallClient({ im, userId, deviceId, unary: { transport, token } });
    for (const kind of ["incoming", "ringing", "accepted", "answered_elsewhere", "ended", "error"] as const) {
      calls.on(kind, (v) => log.push(`${kind}:${"callId" in v ? v.callId : String(v)}`));
    }
    session = { im, calls, userId };
    im.start();
    await new Promise<void>((resolve) => {
      const off = im.on("state", (s) => {
        if (s === "live") {
          off();
          resolve();
        }
      });
    });
  },
  /** Calls `toUserId`; attaches the camera once the call is answered. */
  async call(toUserId: string): Promise<string> {
    const s = session!;
    const started = await s.calls.start({ toUserId }, { video: true });
    const callId = started.call.callId;
    s.calls.on("accepted", (c) => {
      if (c.callId === callId && pc === undefined) void media(started.iceServers, callId);
    });
    return callId;
  },
  /** Answers the first incoming call and attaches the camera. */
  async answer(): Promise<string> {
    const s = session!;
    const callId = await new Promise<string>((resolve) => {
      const pending = log.find((l) => l.startsWith("incoming:"));
      if (pending !== undefined) return resolve(pending.slice("incoming:".length));
      const off = s.calls.on("incoming", (c) => {
        off();
        resolve(c.callId);
      });
    });
    const accepted = await s.calls.accept(callId);
    await media(accepted.iceServers, callId);
    return callId;
  },
  framesDecoded,
  state: () => ({ connection: pc?.connectionState ?? "none", ufrag: /a=ice-ufrag:(\S+)/.exec(pc?.localDescription?.sdp ?? "")?.[1] ?? "", callState: session === undefined ? "" : "" }),
  callState: (callId: string) => session?.calls.call(callId)?.state ?? 0,
  /** Drops the long connection; the SDK reconnects and restarts ICE. */
  reconnect: () => session!.im.reconnect(),
  hangup: (callId: string) => session!.calls.hangup(callId).then(() => undefined),

  // Live rooms on LiveKit.
  createLiveRoom: (title: string) => session!.calls.createLiveRoom(title),
  setRole: (roomId: string, userId: string, role: "viewer" | "speaker") => session!.calls.setRole(roomId, userId, role),
  /** Joins a live room in `role` through the platform's token; the host publishes its camera. */
  async joinLive(roomId: string, role: "host" | "viewer" | "speaker"): Promise<void> {
    const access = await session!.calls.joinRoom(roomId, role);
    room = new Room();
    room.on(RoomEvent.TrackSubscribed, (track: RemoteTrack) => {
      if (track.kind !== Track.Kind.Video) return;
      const el = track.attach() as HTMLVideoElement;
      el.muted = true;
      document.body.appendChild(el);
      remoteVideos.push(el);
    });
    await room.connect(access.url, access.token);
    if (role !== "viewer") await room.localParticipant.setCameraEnabled(true);
  },
  /** Tries to publish the camera; resolves with "published" or the error's message. */
  async tryPublish(): Promise<string> {
    try {
      await room!.localParticipant.setCameraEnabled(true);
      const published = [...room!.localParticipant.trackPublications.values()].some((p) => p.kind === Track.Kind.Video && p.track !== undefined);
      return published ? "published" : "not published";
    } catch (error) {
      return `refused: ${(error as Error).message}`;
    }
  },
  canPublish: () => room?.localParticipant.permissions?.canPublish ?? false,
  /** Video frames decoded from the room's remote tracks. */
  async liveFramesDecoded(): Promise<number> {
    let frames = 0;
    for (const p of room?.remoteParticipants.values() ?? []) {
      for (const pub of p.trackPublications.values()) {
        const track = pub.track;
        if (track === undefined || track.kind !== Track.Kind.Video) continue;
        const stats = await track.receiver?.getStats();
        stats?.forEach((r: { type: string; framesDecoded?: number }) => {
          if (r.type === "inbound-rtp") frames += r.framesDecoded ?? 0;
        });
      }
    }
    return frames;
  },
  remoteVideoTracks: () => [...(room?.remoteParticipants.values() ?? [])].flatMap((p) => [...p.trackPublications.values()].filter((t) => t.kind === Track.Kind.Video && t.track !== undefined).map(() => p.identity)),
};

(globalThis as unknown as { app: typeof app }).app = app;
