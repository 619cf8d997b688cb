import { fail, ok, type Result } from "./result.js";

/** A role in a live room. */
export type RoomRole = "viewer" | "speaker" | "host";

/** A viewer admitted to a live room: counted against the bound until it leaves. */
export interface RoomViewer {
  readonly userId: string;
  /** When its token was issued; an admission never followed by a join lapses after `admitTtlMs`. */
  readonly admittedAtMs: number;
  /** The media server reported it in the room. */
  readonly joined: boolean;
}

/** A live room as the CallStore keeps it. */
export interface LiveRoomRecord {
  readonly roomId: string;
  readonly hostId: string;
  readonly title: string;
  /** Users the host promoted (they publish). */
  readonly speakerIds: readonly string[];
  readonly viewers: readonly RoomViewer[];
  readonly viewersMax: number;
  readonly createdAtMs: number;
  readonly version: number;
}

/** The media-server room name of a live room. */
export function liveRoomMediaName(roomId: string): string {
  return `live-${roomId}`;
}

/**
 * Decides a join: the host joins as host, promoted users as speaker, anyone as viewer while
 * fewer than `viewersMax` viewers hold admissions (admissions of viewers that never joined
 * lapse after `admitTtlMs`). Returns the room with the admission recorded.
 */
export function joinLiveRoom(room: LiveRoomRecord, userId: string, role: RoomRole, nowMs: number, admitTtlMs: number): Result<LiveRoomRecord> {
  if (role === "host") {
    return userId === room.hostId ? ok(room) : fail("role_not_allowed", "only the room's host joins as host");
  }
  if (role === "speaker") {
    return userId === room.hostId || room.speakerIds.includes(userId) ? ok(room) : fail("role_not_allowed", "the host has not made you a speaker");
  }
  const viewers = room.viewers.filter((v) => v.joined || nowMs < v.admittedAtMs + admitTtlMs);
  const existing = viewers.find((v) => v.userId === userId);
  if (existing === undefined && viewers.length >= room.viewersMax) {
    return fail("room_full", `the room has its ${room.viewersMax} viewers`);
  }
  const admitted: RoomViewer = { userId, admittedAtMs: nowMs, joined: existing?.joined ?? false };
  const next = existing === undefined ? [...viewers, admitted] : viewers.map((v) => (v === existing ? admitted : v));
  return ok({ ...room, viewers: next, version: room.version + 1 });
}

/** The host makes `userId` a speaker (it publishes) or a viewer again. */
export function setLiveRoomRole(room: LiveRoomRecord, byUserId: string, userId: string, role: "viewer" | "speaker"): Result<LiveRoomRecord> {
  if (byUserId !== room.hostId) return fail("role_not_allowed", "only the room's host sets roles");
  if (userId === room.hostId) return fail("role_not_allowed", "the host keeps the host role");
  const has = room.speakerIds.includes(userId);
  if ((role === "speaker") === has) return ok(room);
  const speakerIds = role === "speaker" ? [...room.speakerIds, userId] : room.speakerIds.filter((u) => u !== userId);
  return ok({ ...room, speakerIds, version: room.version + 1 });
}

/** The media server saw `userId` join or leave: viewers' membership follows it. */
export function liveRoomPresence(room: LiveRoomRecord, userId: string, joined: boolean): LiveRoomRecord {
  const viewer = room.viewers.find((v) => v.userId === userId);
  if (viewer === undefined) return room;
  const viewers = joined ? room.viewers.map((v) => (v === viewer ? { ...v, joined: true } : v)) : room.viewers.filter((v) => v !== viewer);
  return { ...room, viewers, version: room.version + 1 };
}

/** Viewers counted against the bound at `nowMs`. */
export function liveRoomViewerCount(room: LiveRoomRecord, nowMs: number, admitTtlMs: number): number {
  return room.viewers.filter((v) => v.joined || nowMs < v.admittedAtMs + admitTtlMs).length;
}
