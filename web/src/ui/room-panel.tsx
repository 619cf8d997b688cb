import type { Track } from "livekit-client";
import { useEffect, useRef, useState } from "preact/hooks";
import type { ChatController } from "../app/chat-controller.js";
import type { RoomController, RoomRole, RoomTile, RoomView as Room } from "../app/room-controller.js";

/** The page's room controller once the SDK is open, re-rendering on every change of its room. */
export function useRooms(controller: ChatController): { rooms: RoomController | undefined; view: Room | undefined } {
  const [rooms, setRooms] = useState<RoomController | undefined>(undefined);
  const [, setTick] = useState(0);
  useEffect(() => {
    let off: (() => void) | undefined;
    let gone = false;
    void controller.rooms.then((r) => {
      if (gone) return;
      setRooms(r);
      off = r.subscribe(() => setTick((n) => n + 1));
    });
    return () => {
      gone = true;
      off?.();
    };
  }, [controller]);
  return { rooms, view: rooms?.view };
}

const ROLE_WORDS: Record<RoomRole, string> = { member: "", host: "You host this live room", speaker: "You are a speaker", viewer: "You are watching" };

/** Plays `track` in a video or audio element for as long as the element shows it. */
function Media({ track, kind, label }: { track: Track; kind: "video" | "audio"; label: string }) {
  const ref = useRef<HTMLVideoElement & HTMLAudioElement>(null);
  useEffect(() => {
    const el = ref.current;
    if (el === null) return;
    track.attach(el);
    return () => void track.detach(el);
  }, [track]);
  // Sound comes from the audio elements only, so a video element never plays it twice.
  return kind === "video" ? <video ref={ref} class="tile-video" aria-label={label} autoplay playsInline muted /> : <audio ref={ref} autoplay />;
}

function Tile({ tile, view, rooms }: { tile: RoomTile; view: Room; rooms: RoomController }) {
  const who = tile.local ? `${tile.name} (you)` : tile.name;
  const promotable = view.kind === "live" && view.role === "host" && !tile.local && tile.identity !== view.startedBy;
  return (
    <li class="tile" data-testid="tile" data-identity={tile.identity} data-local={tile.local}>
      {tile.video !== undefined ? <Media track={tile.video} kind="video" label={`Video of ${who}`} /> : <div class="tile-video off" aria-hidden="true" />}
      {tile.audio !== undefined && <Media track={tile.audio} kind="audio" label="" />}
      <span class="tile-name">{who}</span>
      {view.kind === "live" && <span class="tile-role">{tile.identity === view.startedBy ? "host" : tile.canPublish ? "speaker" : "viewer"}</span>}
      {promotable && (
        <button type="button" onClick={() => void rooms.setRole(tile.identity, tile.canPublish ? "viewer" : "speaker")}>
          {tile.canPublish ? `Make ${tile.name} a viewer` : `Make ${tile.name} a speaker`}
        </button>
      )}
    </li>
  );
}

function words(view: Room): string {
  if (view.phase === "ended") return view.ended;
  if (view.phase === "invited") return `${view.startedBy} started a group call`;
  if (view.phase === "joining") return view.kind === "group" ? "Joining the group call…" : "Joining the live room…";
  return view.kind === "group" ? "In the group call" : ROLE_WORDS[view.role];
}

/**
 * The room being held: a group call's invitation (Join, Decline), or the room with a tile
 * (video and name) per person, camera and microphone toggles when this device may publish,
 * and Leave.
 */
export function RoomPanel({ controller }: { controller: ChatController }) {
  const { rooms, view } = useRooms(controller);
  // On entering a room the focus moves to its first control, so a keyboard user lands in it.
  const first = useRef<HTMLButtonElement>(null);
  const entered = view?.phase === "joined" ? `${view.kind}:${view.callId}:${view.roomId}` : "";
  useEffect(() => {
    if (entered !== "") first.current?.focus();
  }, [entered]);
  if (rooms === undefined || view === undefined) return null;
  const label = view.kind === "group" ? "Group call" : `Live room ${view.roomId}`;
  return (
    <section class="room" data-testid="room" data-phase={view.phase} data-kind={view.kind} data-role={view.role} data-call-id={view.callId} aria-label={label}>
      <p class="call-state" role="status" aria-live="polite">
        {words(view)}
      </p>
      {view.kind === "live" && view.phase === "joined" && (
        <p class="room-id">
          Room id <code data-testid="live-room-id">{view.roomId}</code>
        </p>
      )}
      {view.phase === "invited" && (
        <>
          <button type="button" class="accept" onClick={() => void rooms.join()}>
            Join
          </button>
          <button type="button" onClick={() => void rooms.decline()}>
            Decline
          </button>
        </>
      )}
      {view.phase === "joined" && view.canPublish && (
        <>
          <button type="button" ref={first} onClick={() => void rooms.setCamera(!view.cameraOn)}>
            {view.cameraOn ? "Turn camera off" : "Turn camera on"}
          </button>
          <button type="button" onClick={() => void rooms.setMicrophone(!view.micOn)}>
            {view.micOn ? "Mute microphone" : "Unmute microphone"}
          </button>
        </>
      )}
      {(view.phase === "joining" || view.phase === "joined") && (
        <button type="button" class="hangup" ref={view.canPublish ? undefined : first} onClick={() => void rooms.leave()}>
          Leave
        </button>
      )}
      {view.phase === "ended" && (
        <button type="button" onClick={() => rooms.dismiss()}>
          Close
        </button>
      )}
      {view.phase === "joined" && (
        <ul class="tiles" aria-label="Participants">
          {rooms.tiles.map((t) => (
            <Tile key={t.identity} tile={t} view={view} rooms={rooms} />
          ))}
        </ul>
      )}
    </section>
  );
}

/** A group conversation's call button: starts its call, or joins the one ringing here. */
export function GroupCallButton({ controller, conversationId, live }: { controller: ChatController; conversationId: string; live: boolean }) {
  const { rooms, view } = useRooms(controller);
  const invitedHere = view?.phase === "invited" && view.kind === "group" && view.roomId === conversationId;
  const busy = view !== undefined && view.phase !== "ended" && !invitedHere;
  return (
    <button
      type="button"
      class="call-start"
      disabled={rooms === undefined || busy || !live}
      onClick={() => {
        if (invitedHere) return void rooms?.join();
        void rooms?.startGroupCall(conversationId).then((refusal) => {
          if (refusal !== undefined) controller.notify(refusal);
        });
      }}
    >
      {invitedHere ? "Join group call" : "Start group call"}
    </button>
  );
}

/** The sidebar's live-room forms: go live with a title, or watch a room by its id. */
export function LiveRoomForms({ controller }: { controller: ChatController }) {
  const { rooms, view } = useRooms(controller);
  const [title, setTitle] = useState("");
  const [roomId, setRoomId] = useState("");
  const busy = rooms === undefined || (view !== undefined && view.phase !== "ended");
  const run = (work: Promise<string | undefined> | undefined) =>
    void work?.then((refusal) => {
      if (refusal !== undefined) controller.notify(refusal);
    });
  return (
    <div class="live-forms">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          run(rooms?.goLive(title.trim() || "Live"));
        }}
      >
        <label for="live-title">Live room title</label>
        <input id="live-title" value={title} maxLength={100} onInput={(e) => setTitle(e.currentTarget.value)} />
        <button type="submit" disabled={busy}>
          Go live
        </button>
      </form>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (roomId.trim() !== "") run(rooms?.joinLive(roomId.trim(), "viewer"));
        }}
      >
        <label for="live-room">Live room id</label>
        <input id="live-room" value={roomId} maxLength={64} onInput={(e) => setRoomId(e.currentTarget.value)} />
        <button type="submit" disabled={busy}>
          Watch
        </button>
      </form>
    </div>
  );
}
