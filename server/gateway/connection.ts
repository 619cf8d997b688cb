import { create } from "@bufbuild/protobuf";
import { DisconnectReason, DisconnectSchema, type Disconnect } from "../../gen/im/v1/gateway_pb.js";
import type { Push, PushTarget } from "../route/delivery-router.js";

/** Bounds and timeouts of one long connection. */
export interface ConnectionLimits {
  /** Pushes queued for a client that does not read; beyond it: SLOW_CONSUMER disconnect. */
  readonly pushQueueMax: number;
  /** Body bytes queued in pushes; beyond it: SLOW_CONSUMER disconnect. */
  readonly pushQueueBytesMax: number;
  /** Requests of one connection being processed at once; beyond it: PROTOCOL_ERROR disconnect. */
  readonly inFlightMax: number;
  /** Silence from a bidirectional client after which it is disconnected (HEARTBEAT_TIMEOUT). */
  readonly heartbeatTimeoutMs: number;
  /** Interval of server heartbeats on push-only (browser) streams. */
  readonly heartbeatIntervalMs: number;
}

/** Turns pushes and disconnects into the frame type of one stream kind. */
export interface FrameFactory<F> {
  push(push: Push): F;
  disconnect(disconnect: Disconnect): F;
  /** For push-only streams: a heartbeat frame. Absent for bidirectional streams. */
  heartbeat?(nowMs: number): F;
}

/**
 * One client stream as the gateway holds it: a bounded queue of frames to write, plus the
 * deadlines of its heartbeat and token, advanced by `tick(now)` (timeouts are data; only the
 * server's single interval timer calls tick).
 */
export class Connection<F> implements PushTarget {
  readonly connectionId: string;
  readonly userId: string;
  readonly #limits: ConnectionLimits;
  readonly #frames: FrameFactory<F>;
  readonly #expiresAtMs: number;
  /** Frames to write; `bytes` is -1 for frames that are not pushes. */
  readonly #queue: { frame: F; bytes: number }[] = [];
  #pushesQueued = 0;
  #bytesQueued = 0;
  #lastHeardMs: number;
  #lastHeartbeatMs: number;
  #wake: (() => void) | undefined;
  #ending = false;
  #inFlight = 0;

  constructor(connectionId: string, userId: string, expiresAtMs: number, nowMs: number, limits: ConnectionLimits, frames: FrameFactory<F>) {
    this.connectionId = connectionId;
    this.userId = userId;
    this.#expiresAtMs = expiresAtMs;
    this.#lastHeardMs = nowMs;
    this.#lastHeartbeatMs = nowMs;
    this.#limits = limits;
    this.#frames = frames;
  }

  /** True once a disconnect was queued or the stream closed: nothing more is queued. */
  get ending(): boolean {
    return this.#ending;
  }

  push(push: Push): void {
    if (this.#ending) return;
    const bytes = push.kind === "message" ? push.message.data.byteLength : 0;
    if (this.#pushesQueued + 1 > this.#limits.pushQueueMax || this.#bytesQueued + bytes > this.#limits.pushQueueBytesMax) {
      this.disconnect(DisconnectReason.SLOW_CONSUMER, "too many pushes queued: read faster, then reconnect and sync", 0);
      return;
    }
    this.#pushesQueued++;
    this.#bytesQueued += bytes;
    this.#enqueue(this.#frames.push(push), bytes);
  }

  /** Queues an answer to a request. Bounded by the in-flight limit, not the push bound. */
  reply(frame: F): void {
    if (!this.#ending) this.#enqueue(frame, -1);
  }

  /** A frame arrived from the client. */
  heard(nowMs: number): void {
    this.#lastHeardMs = nowMs;
  }

  /** Counts a request in; false (and a PROTOCOL_ERROR disconnect) when over the in-flight bound. */
  begin(): boolean {
    if (this.#inFlight >= this.#limits.inFlightMax) {
      this.disconnect(DisconnectReason.PROTOCOL_ERROR, `more than ${this.#limits.inFlightMax} requests in flight`, 1000);
      return false;
    }
    this.#inFlight++;
    return true;
  }

  /** Counts a request out. */
  end(): void {
    this.#inFlight--;
  }

  /** Requests being processed. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Advances deadlines: token expiry, heartbeat timeout, and server heartbeats on push-only streams. */
  tick(nowMs: number): void {
    if (this.#ending) return;
    if (nowMs >= this.#expiresAtMs) {
      this.disconnect(DisconnectReason.TOKEN_EXPIRED, "token expired: reconnect with a new token", 0);
    } else if (this.#frames.heartbeat !== undefined) {
      if (nowMs - this.#lastHeartbeatMs >= this.#limits.heartbeatIntervalMs) {
        this.#lastHeartbeatMs = nowMs;
        this.#enqueue(this.#frames.heartbeat(nowMs), -1);
      }
    } else if (nowMs - this.#lastHeardMs >= this.#limits.heartbeatTimeoutMs) {
      this.disconnect(DisconnectReason.HEARTBEAT_TIMEOUT, `nothing heard for ${this.#limits.heartbeatTimeoutMs} ms`, 0);
    }
  }

  /** Queues the final disconnect frame and ends the stream after it. */
  disconnect(reason: DisconnectReason, message: string, reconnectAfterMs: number): void {
    if (this.#ending) return;
    this.#queue.push({ frame: this.#frames.disconnect(create(DisconnectSchema, { reason, message, reconnectAfterMs })), bytes: -1 });
    this.close();
  }

  /** Ends the stream after what is queued (the client went away, or a disconnect was queued). */
  close(): void {
    this.#ending = true;
    this.#wake?.();
  }

  /** The frames to write, in order; ends after close(). Read by exactly one writer. */
  async *frames(): AsyncGenerator<F> {
    for (;;) {
      const entry = this.#queue.shift();
      if (entry !== undefined) {
        if (entry.bytes >= 0) {
          // The bound is on what waits: a push counts out once the writer takes it.
          this.#pushesQueued--;
          this.#bytesQueued -= entry.bytes;
        }
        yield entry.frame;
        continue;
      }
      if (this.#ending) return;
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = undefined;
    }
  }

  #enqueue(frame: F, bytes: number): void {
    this.#queue.push({ frame, bytes });
    this.#wake?.();
  }
}
