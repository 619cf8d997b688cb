import type { MediaGrant, MediaRoomOptions, MediaRoomProvider } from "./media-room-provider.js";

/** A room as the in-memory provider holds it. */
export interface MemoryRoom {
  readonly options: MediaRoomOptions;
  /** Participants in the room and their current grants. */
  readonly participants: Map<string, MediaGrant>;
}

/**
 * MediaRoomProvider in memory, for unit tests: rooms, tokens that name their grant, and
 * participants that tests put in (`join`) as the media server would report them.
 */
export class MemoryMediaRoomProvider implements MediaRoomProvider {
  readonly url = "ws://media.invalid";
  readonly rooms = new Map<string, MemoryRoom>();
  /** Rooms closed, in order. */
  readonly deleted: string[] = [];
  /** Set to make createRoom fail, as an unreachable media server would. */
  failCreate = false;

  async createRoom(name: string, options: MediaRoomOptions): Promise<void> {
    if (this.failCreate) throw new Error("media server unreachable");
    if (!this.rooms.has(name)) this.rooms.set(name, { options, participants: new Map() });
  }

  async deleteRoom(name: string): Promise<void> {
    if (this.rooms.delete(name)) this.deleted.push(name);
  }

  async token(name: string, identity: string, grant: MediaGrant, ttlS: number): Promise<string> {
    return JSON.stringify({ room: name, identity, ...grant, ttlS });
  }

  async setGrant(name: string, identity: string, grant: MediaGrant): Promise<boolean> {
    const participants = this.rooms.get(name)?.participants;
    if (participants === undefined || !participants.has(identity)) return false;
    participants.set(identity, grant);
    return true;
  }

  /** A participant joins with the grant of its token (as the media server would admit it). */
  join(token: string): void {
    const t = JSON.parse(token) as { room: string; identity: string } & MediaGrant;
    this.rooms.get(t.room)?.participants.set(t.identity, { canPublish: t.canPublish, canSubscribe: t.canSubscribe });
  }
}
