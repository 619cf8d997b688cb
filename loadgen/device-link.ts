import type { Transport } from "@connectrpc/connect";
import type { ClientMessage } from "../client/client-message.js";
import { ImClient } from "../client/im-client.js";
import type { ClientCursor } from "../client/sync-engine.js";
import type { Delivery } from "./delivery-checker.js";

/** A send as a device link carries it. */
export interface LinkSend {
  /** The conversation (for a direct one, the id `toUserId` names). */
  readonly conversationId: string;
  /** Set for a direct conversation addressed by the other user. */
  readonly toUserId?: string;
  readonly contentType: string;
  readonly data: Uint8Array;
  readonly clientMsgId: string;
}

/** The server's answer to a send. */
export interface LinkAck {
  readonly conversationId: string;
  readonly seq: number;
  readonly messageId: string;
  readonly duplicate: boolean;
}

/**
 * One open of a simulated device: the connection and whatever client logic runs on it. The
 * fleet keeps the device's identity and counters; a link lives from start() to close().
 */
export interface DeviceLink {
  /** The link's state in words, for error messages. */
  readonly state: string;
  start(): void;
  /** Sends a message; resolves with the server's answer, rejects when it failed. */
  send(input: LinkSend): Promise<LinkAck>;
  /** Ends the connection (bounded). */
  close(): Promise<void>;
  /** Where the device stands, to resume from on its next open (empty: from the start). */
  cursors(): ClientCursor[];
  /** Hands the delivery checker anything the link still holds back. */
  flush(): void;
}

/** What links tell their fleet about a device `D`. */
export interface LinkEvents<D> {
  /** The device is live: registered with the server, pushes reach it. */
  live(device: D): void;
  /** The device is no longer live (it may come back: the SDK reconnects). */
  down(device: D): void;
  /** A message from another device arrived (for counting and latency; before any reordering). */
  arrived(device: D, contentType: string, data: Uint8Array): void;
  /** A message, in the order the device holds them, for the delivery checker. */
  delivered(device: D, delivery: Delivery): void;
  error(device: D, message: string): void;
}

/** What an SDK link is opened with. */
export interface SdkLinkOptions {
  readonly userId: string;
  readonly transport: Transport;
  readonly token: () => string;
  readonly heartbeatIntervalMs: number;
  readonly cursors: readonly ClientCursor[];
}

/**
 * A device as a real app runs it: the SDK client (ImClient) with its heartbeats, reconnects,
 * sync and gap repair. What it delivers is checked after the SDK's ordering (the SDK is what
 * this proves).
 */
export class SdkLink<D> implements DeviceLink {
  readonly #client: ImClient;
  readonly #events: LinkEvents<D>;
  readonly #device: D;
  readonly #userId: string;
  #closing = false;
  #live = false;

  constructor(events: LinkEvents<D>, device: D, options: SdkLinkOptions) {
    this.#events = events;
    this.#device = device;
    this.#userId = options.userId;
    this.#client = new ImClient({
      transport: options.transport,
      token: options.token,
      userId: options.userId,
      heartbeatIntervalMs: options.heartbeatIntervalMs,
      heartbeatTimeoutMs: Math.max(45_000, 3 * options.heartbeatIntervalMs),
      backoff: { baseMs: 250, maxMs: 5000 },
      cursors: options.cursors,
    });
    this.#client.on("message", (m) => this.#message(m));
    this.#client.on("state", (s) => {
      if (s === "live" && !this.#live) {
        this.#live = true;
        events.live(device);
      } else if (s !== "live" && this.#live) {
        this.#live = false;
        events.down(device);
      }
    });
    this.#client.on("error", (e) => {
      if (!this.#closing) events.error(device, e.message);
    });
    this.#client.on("stuck", (s) => events.error(device, `gap in ${s.conversationId} after seq ${s.lastSeq} could not be closed`));
  }

  get state(): string {
    return this.#client.state;
  }

  start(): void {
    this.#client.start();
  }

  async send(input: LinkSend): Promise<LinkAck> {
    const target = input.toUserId !== undefined ? { toUserId: input.toUserId } : { conversationId: input.conversationId };
    const r = await this.#client.send({ ...target, body: input.data, contentType: input.contentType, clientMsgId: input.clientMsgId });
    return { conversationId: r.conversationId, seq: Number(r.seq), messageId: r.messageId, duplicate: r.duplicate };
  }

  async close(): Promise<void> {
    this.#closing = true;
    await this.#client.close();
  }

  cursors(): ClientCursor[] {
    return this.#client.cursors();
  }

  flush(): void {}

  #message(m: ClientMessage): void {
    if (m.senderId !== this.#userId) this.#events.arrived(this.#device, m.contentType, m.data);
    this.#events.delivered(this.#device, m);
  }
}
