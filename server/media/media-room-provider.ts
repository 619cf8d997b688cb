/** What a participant may do in a media-server room. */
export interface MediaGrant {
  readonly canPublish: boolean;
  readonly canSubscribe: boolean;
}

/** A room's settings on the media server. */
export interface MediaRoomOptions {
  /** Most participants the room admits (0: the server's default). */
  readonly maxParticipants: number;
  /** The room closes after being empty this long. */
  readonly emptyTimeoutS: number;
}

/**
 * A media server (SFU) for group calls and live rooms. Adapters: LiveKit
 * (livekit-media-room-provider.ts) and in-memory (memory-media-room-provider.ts, for unit
 * tests). Room membership comes back separately, from the media server's webhooks.
 */
export interface MediaRoomProvider {
  /** The URL clients connect to (the media server's WebSocket endpoint). */
  readonly url: string;
  /** Creates the room unless it exists. */
  createRoom(name: string, options: MediaRoomOptions): Promise<void>;
  /** Closes the room, disconnecting everyone; idempotent. */
  deleteRoom(name: string): Promise<void>;
  /** An access token for `identity` in room `name` with `grant`, valid for `ttlS`. */
  token(name: string, identity: string, grant: MediaGrant, ttlS: number): Promise<string>;
  /** Changes the grants of a participant in the room at once; false when it is not in the room. */
  setGrant(name: string, identity: string, grant: MediaGrant): Promise<boolean>;
}
