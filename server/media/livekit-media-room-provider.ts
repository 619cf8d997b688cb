import { AccessToken, RoomServiceClient, ServerError } from "livekit-server-sdk";
import type { MediaGrant, MediaRoomOptions, MediaRoomProvider } from "./media-room-provider.js";

/** Where a LiveKit server is. */
export interface LivekitOptions {
  /** The URL clients connect to, e.g. ws://127.0.0.1:7880. */
  readonly url: string;
  /** The server API's URL; by default `url` with http(s) for ws(s). */
  readonly apiUrl?: string;
  readonly apiKey: string;
  readonly apiSecret: string;
}

/**
 * MediaRoomProvider on a LiveKit server (livekit-server-sdk): rooms through its RoomService,
 * access tokens (JWTs signed with the API secret) carrying the role's grants, and grant
 * changes applied to a participant in the room at once (UpdateParticipant).
 */
export class LivekitMediaRoomProvider implements MediaRoomProvider {
  readonly url: string;
  readonly #rooms: RoomServiceClient;
  readonly #options: LivekitOptions;

  constructor(options: LivekitOptions) {
    this.url = options.url;
    this.#options = options;
    this.#rooms = new RoomServiceClient(options.apiUrl ?? options.url.replace(/^ws/, "http"), options.apiKey, options.apiSecret);
  }

  async createRoom(name: string, options: MediaRoomOptions): Promise<void> {
    await this.#rooms.createRoom({ name, emptyTimeout: options.emptyTimeoutS, maxParticipants: options.maxParticipants });
  }

  async deleteRoom(name: string): Promise<void> {
    try {
      await this.#rooms.deleteRoom(name);
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  async token(name: string, identity: string, grant: MediaGrant, ttlS: number): Promise<string> {
    const token = new AccessToken(this.#options.apiKey, this.#options.apiSecret, { identity, ttl: ttlS });
    token.addGrant({ room: name, roomJoin: true, canPublish: grant.canPublish, canSubscribe: grant.canSubscribe, canPublishData: grant.canPublish });
    return token.toJwt();
  }

  async setGrant(name: string, identity: string, grant: MediaGrant): Promise<boolean> {
    try {
      await this.#rooms.updateParticipant(name, identity, { permission: { canPublish: grant.canPublish, canSubscribe: grant.canSubscribe, canPublishData: grant.canPublish } });
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
  }
}

function isNotFound(error: unknown): boolean {
  return error instanceof ServerError && (error.status === 404 || error.code === "not_found");
}
