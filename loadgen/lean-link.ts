import { create } from "@bufbuild/protobuf";
import { PingRequestSchema, SendRequestSchema } from "../gen/im/v1/gateway_pb.js";
import { MessageBodySchema } from "../gen/im/v1/message_pb.js";
import type { ClientCursor } from "../client/sync-engine.js";
import type { DeviceLink, LinkAck, LinkEvents, LinkSend } from "./device-link.js";
import type { Beating, HeartbeatWheel } from "./heartbeat-wheel.js";
import { LeanConnection, parseCodeAndMessage, parseSendAck, RESPONSE_FIELD, type LeanConnectionEvents, type LeanPush } from "./lean-connection.js";
import { OwnSendMerger } from "./own-send-merger.js";

/** What lean links tell their fleet besides a device's life and deliveries. */
export interface LeanLinkEvents<D> extends LinkEvents<D> {
  /** The link is over for good (closed, refused or never connected); it does not reconnect. */
  ended(device: D): void;
  /** An HTTP/2 PING round trip, in milliseconds. */
  rtt(ms: number): void;
  /** A heartbeat was due while the previous PING was still unanswered (none sent). */
  heartbeatLate(device: D): void;
  /** The last seq the delivery checker holds for the device in a conversation. */
  lastSeq(device: D, conversationId: string): number;
}

/** What every lean link of a fleet shares. */
export interface LeanLinkContext<D> {
  readonly events: LeanLinkEvents<D>;
  readonly wheel: HeartbeatWheel<Beating>;
}

/** What one lean link is opened with. */
export interface LeanLinkOptions {
  /** http://host:port of the gateway. */
  readonly url: string;
  readonly token: string;
  readonly localAddress?: string;
}

interface PendingSend {
  readonly conversationId: string;
  resolve(ack: LinkAck): void;
  reject(error: Error): void;
}

type LeanState = "connecting" | "registering" | "live" | "closed";

/** The first request of every lean device: a ping frame, answered once the server registered the connection. */
const REGISTRATION_ID = 1;
const REGISTRATION = LeanConnection.encodeRequest(REGISTRATION_ID, { case: "ping", value: create(PingRequestSchema, { clientTimeMs: 0n }) });

/** How long close() waits for the server to end the stream before dropping the connection. */
const CLOSE_WAIT_MS = 5000;

/**
 * A device at the lowest cost a client can have (see LeanConnection): sends are request
 * frames answered by request_id, liveness and round-trip time come from HTTP/2 PINGs sent by
 * the fleet's heartbeat wheel (no application pings), and every message goes to the delivery
 * checker exactly as the server pushed it, the device's own sends put in place from their
 * answers (OwnSendMerger). It is live once the server answered a first ping frame, which the
 * server answers only after the connection is registered for pushes. No sync, no gap repair,
 * no reconnect: whatever the server fails to push is a finding, and a lost connection is a
 * drop.
 */
export class LeanLink<D> implements DeviceLink, LeanConnectionEvents, Beating {
  readonly #context: LeanLinkContext<D>;
  readonly #device: D;
  readonly #options: LeanLinkOptions;
  #state: LeanState = "connecting";
  #conn: LeanConnection | undefined;
  #pending: Map<number, PendingSend> | undefined;
  #merger: OwnSendMerger | undefined;
  #pinging = false;
  #closing = false;
  #onClosed: (() => void) | undefined;

  constructor(context: LeanLinkContext<D>, device: D, options: LeanLinkOptions) {
    this.#context = context;
    this.#device = device;
    this.#options = options;
  }

  get state(): string {
    return this.#state;
  }

  start(): void {
    const { url, token, localAddress } = this.#options;
    this.#conn = LeanConnection.start({ url, token, ...(localAddress === undefined ? {} : { localAddress }), firstRequest: REGISTRATION, events: this });
  }

  send(input: LinkSend): Promise<LinkAck> {
    const conn = this.#conn;
    if (this.#state !== "live" || conn === undefined) return Promise.reject(new Error(`not live (${this.#state})`));
    const value = create(SendRequestSchema, {
      target: input.toUserId !== undefined ? { case: "toUserId", value: input.toUserId } : { case: "conversationId", value: input.conversationId },
      clientMsgId: input.clientMsgId,
      body: create(MessageBodySchema, { contentType: input.contentType, data: input.data }),
    });
    return new Promise((resolve, reject) => {
      const requestId = conn.request({ case: "send", value });
      (this.#pending ??= new Map()).set(requestId, { conversationId: input.conversationId, resolve, reject });
      const events = this.#context.events;
      (this.#merger ??= new OwnSendMerger((d) => events.delivered(this.#device, d), (c) => events.lastSeq(this.#device, c))).sending(input.conversationId);
    });
  }

  close(): Promise<void> {
    this.#closing = true;
    if (this.#state === "closed") return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#conn?.destroy();
        resolve();
      }, CLOSE_WAIT_MS);
      this.#onClosed = () => {
        clearTimeout(timer);
        resolve();
      };
      this.#conn?.close();
    });
  }

  cursors(): ClientCursor[] {
    return [];
  }

  flush(): void {
    this.#merger?.flush();
  }

  /** One HTTP/2 PING, unless the previous one is still unanswered (called by the heartbeat wheel). */
  heartbeat(): void {
    const conn = this.#conn;
    if (this.#state !== "live" || conn === undefined) return;
    if (this.#pinging) {
      this.#context.events.heartbeatLate(this.#device);
      return;
    }
    this.#pinging = conn.pingWith(this.#pinged);
  }

  readonly #pinged = (error: Error | null, durationMs: number): void => {
    this.#pinging = false;
    if (error === null) this.#context.events.rtt(durationMs);
  };

  onPush(push: LeanPush): void {
    const events = this.#context.events;
    events.arrived(this.#device, push.contentType, push.data);
    // The merger may hold a push: it keeps a copy, not the view into the received bytes.
    if (this.#merger !== undefined) this.#merger.pushed({ conversationId: push.conversationId, seq: push.seq, prevSeq: push.prevSeq, messageId: push.messageId });
    else events.delivered(this.#device, push);
  }

  onFrame(field: number, requestId: number, bytes: Uint8Array): void {
    const events = this.#context.events;
    if (field === RESPONSE_FIELD.pong && requestId === REGISTRATION_ID) {
      if (this.#state !== "registering") return;
      this.#state = "live";
      this.#context.wheel.add(this);
      events.live(this.#device);
    } else if (field === RESPONSE_FIELD.send || field === RESPONSE_FIELD.error) {
      const pending = this.#pending?.get(requestId);
      if (pending === undefined) {
        if (field === RESPONSE_FIELD.error) {
          const e = parseCodeAndMessage(bytes);
          events.error(this.#device, `request ${requestId} failed: code ${e.code} ${e.message}`);
        }
        return;
      }
      this.#pending!.delete(requestId);
      if (field === RESPONSE_FIELD.send) {
        const ack = parseSendAck(bytes);
        this.#merger!.answered(pending.conversationId, ack.duplicate ? undefined : ack);
        pending.resolve(ack);
      } else {
        const e = parseCodeAndMessage(bytes);
        this.#merger!.answered(pending.conversationId, undefined);
        pending.reject(new Error(`code ${e.code}: ${e.message}`));
      }
    } else if (field === RESPONSE_FIELD.disconnect && !this.#closing) {
      const d = parseCodeAndMessage(bytes);
      events.error(this.#device, `disconnected by the server: reason ${d.code} ${d.message}`);
    }
  }

  onOpen(): void {
    if (this.#state === "connecting") this.#state = "registering";
  }

  onClose(status: string, message: string): void {
    this.#end(this.#state === "live", this.#state === "connecting" ? "connect failed" : status, message);
  }

  #end(wasLive: boolean, status: string, message: string): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#context.wheel.delete(this);
    const events = this.#context.events;
    if (this.#pending !== undefined) {
      for (const p of this.#pending.values()) {
        this.#merger!.answered(p.conversationId, undefined);
        p.reject(new Error("the connection closed before the answer"));
      }
      this.#pending.clear();
    }
    if (!this.#closing) events.error(this.#device, `${status === "connect failed" ? "connect failed" : "connection closed"}: ${message}`);
    if (wasLive) events.down(this.#device);
    events.ended(this.#device);
    this.#onClosed?.();
  }
}
