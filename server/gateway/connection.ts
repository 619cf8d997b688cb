import { create } from "@bufbuild/protobuf";
import { DisconnectReason, DisconnectSchema, type ConnectResponse, type Disconnect } from "../../gen/im/v1/gateway_pb.js";
import type { Subscriber } from "../route/hub.js";
import type { Publication } from "../route/publication.js";

/** Bounds and timeouts of one long connection. */
export interface ConnectionLimits {
  /** Pushes waiting to be written to a client that does not read; beyond it: SLOW_CONSUMER disconnect. */
  readonly pushQueueMax: number;
  /** Bytes waiting in pushes; beyond it: SLOW_CONSUMER disconnect. */
  readonly pushQueueBytesMax: number;
  /** Requests of one connection being processed at once; beyond it: PROTOCOL_ERROR disconnect. */
  readonly inFlightMax: number;
  /**
   * Silence from a client after which it is disconnected (HEARTBEAT_TIMEOUT). Anything the
   * client's TCP connection carries counts where the transport can tell (HTTP/2 PING acks
   * included); a connection silent for half of it is sent an HTTP/2 PING first.
   */
  readonly heartbeatTimeoutMs: number;
  /** Interval of server heartbeats on push-only (browser) streams. */
  readonly heartbeatIntervalMs: number;
  /**
   * How long a push may wait so that pushes close together share one write (lean HTTP/2
   * streams); 0 or absent: each push is written at once.
   */
  readonly pushFlushMs?: number;
}

/**
 * Where a connection's frames go. The lean HTTP/2 path writes pre-encoded bytes straight to
 * the stream; connect-node's streams take message objects from a queue (QueueSink).
 */
export interface FrameSink {
  /** Writes the device frame of a publication. */
  push(publication: Publication): void;
  /** Writes an answer, pong or error on a bidirectional stream. */
  reply(frame: ConnectResponse): void;
  /** Writes a server heartbeat on a push-only stream. */
  heartbeat(nowMs: number): void;
  /** Writes `disconnect` (when given) after what is queued, then ends the stream. Idempotent. */
  end(disconnect: Disconnect | undefined): void;
  /** Pushes handed over and not yet taken by the transport (0 when it cannot tell). */
  queuedPushes(): number;
  /** Bytes handed over and not yet taken by the transport. */
  queuedBytes(): number;
  /**
   * Bytes received so far on the client's TCP connection, so that any traffic (an HTTP/2
   * PING ack too) proves it alive without a frame of ours; undefined when unknown.
   */
  bytesRead(): number | undefined;
  /** Sends an HTTP/2 PING that the client's stack answers by itself; false when it cannot. */
  probe(): boolean;
}

/**
 * One client stream as the gateway holds it: the bounds on what waits for it, the deadlines
 * of its token and heartbeat advanced by `tick(now)` (timeouts are data; only the server's one
 * interval timer calls tick), and the requests in flight. Frames go to its FrameSink.
 */
export class Connection implements Subscriber {
  readonly connectionId: string;
  readonly userId: string;
  readonly #limits: ConnectionLimits;
  readonly #sink: FrameSink;
  readonly #pushOnly: boolean;
  readonly #expiresAtMs: number;
  #lastHeardMs: number;
  #lastBytesRead: number | undefined;
  #probed = false;
  #lastHeartbeatMs: number;
  #ending = false;
  #disconnectReason: DisconnectReason | undefined;
  #inFlight = 0;

  constructor(
    connectionId: string,
    userId: string,
    expiresAtMs: number,
    nowMs: number,
    limits: ConnectionLimits,
    sink: FrameSink,
    pushOnly: boolean,
  ) {
    this.connectionId = connectionId;
    this.userId = userId;
    this.#expiresAtMs = expiresAtMs;
    this.#lastHeardMs = nowMs;
    this.#lastHeartbeatMs = nowMs;
    this.#limits = limits;
    this.#sink = sink;
    this.#pushOnly = pushOnly;
    this.#lastBytesRead = sink.bytesRead();
  }

  /** The reason of the disconnect frame this connection ended with; undefined while live or when it closed without one. */
  get disconnectReason(): DisconnectReason | undefined {
    return this.#disconnectReason;
  }

  /** Push bytes waiting for the transport (the push queue's depth). */
  queuedBytes(): number {
    return this.#sink.queuedBytes();
  }

  /** True once a disconnect was queued or the stream closed: nothing more is written. */
  get ending(): boolean {
    return this.#ending;
  }

  deliver(publication: Publication): void {
    if (this.#ending) return;
    const limits = this.#limits;
    const sink = this.#sink;
    if (sink.queuedPushes() + 1 > limits.pushQueueMax || sink.queuedBytes() + publication.bytes > limits.pushQueueBytesMax) {
      this.disconnect(DisconnectReason.SLOW_CONSUMER, "too many pushes queued: read faster, then reconnect and sync", 0);
      return;
    }
    sink.push(publication);
  }

  /** Writes an answer to a request. Bounded by the in-flight limit, not the push bound. */
  reply(frame: ConnectResponse): void {
    if (!this.#ending) this.#sink.reply(frame);
  }

  /** A frame arrived from the client. */
  heard(nowMs: number): void {
    this.#lastHeardMs = nowMs;
    this.#probed = false;
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

  /**
   * Advances deadlines: token expiry; server heartbeats on push-only streams; and on
   * bidirectional ones the heartbeat timeout, probing a silent client with an HTTP/2 PING at
   * half of it where the transport can.
   */
  tick(nowMs: number): void {
    if (this.#ending) return;
    if (nowMs >= this.#expiresAtMs) {
      this.disconnect(DisconnectReason.TOKEN_EXPIRED, "token expired: reconnect with a new token", 0);
      return;
    }
    if (this.#pushOnly) {
      if (nowMs - this.#lastHeartbeatMs >= this.#limits.heartbeatIntervalMs) {
        this.#lastHeartbeatMs = nowMs;
        this.#sink.heartbeat(nowMs);
      }
      return;
    }
    const read = this.#sink.bytesRead();
    if (read !== undefined && read !== this.#lastBytesRead) {
      this.#lastBytesRead = read;
      this.heard(nowMs);
      return;
    }
    const silentMs = nowMs - this.#lastHeardMs;
    if (silentMs >= this.#limits.heartbeatTimeoutMs) {
      this.disconnect(DisconnectReason.HEARTBEAT_TIMEOUT, `nothing heard for ${this.#limits.heartbeatTimeoutMs} ms`, 0);
    } else if (!this.#probed && silentMs >= this.#limits.heartbeatTimeoutMs / 2) {
      this.#probed = this.#sink.probe();
    }
  }

  /** Writes the final disconnect frame and ends the stream after it. */
  disconnect(reason: DisconnectReason, message: string, reconnectAfterMs: number): void {
    if (this.#ending) return;
    this.#ending = true;
    this.#disconnectReason = reason;
    this.#sink.end(create(DisconnectSchema, { reason, message, reconnectAfterMs }));
  }

  /** Ends the stream after what is queued (the client went away, or the handler finished). */
  close(): void {
    if (this.#ending) return;
    this.#ending = true;
    this.#sink.end(undefined);
  }
}

/** Builds the message objects a QueueSink yields, for one stream kind. */
export interface FrameFactory<F> {
  push(publication: Publication): F;
  reply(frame: ConnectResponse): F;
  heartbeat(nowMs: number): F;
  disconnect(disconnect: Disconnect): F;
}

/**
 * A FrameSink for streams that connect-node writes (JSON, gRPC-Web, HTTP/1.1): frames wait in
 * a queue that the handler's async generator reads. What waits is what the bounds count.
 */
export class QueueSink<F> implements FrameSink {
  readonly #factory: FrameFactory<F>;
  /** Frames to write; `bytes` is -1 for frames that are not pushes. */
  readonly #queue: { frame: F; bytes: number }[] = [];
  #pushes = 0;
  #bytes = 0;
  #ended = false;
  #wake: (() => void) | undefined;

  constructor(factory: FrameFactory<F>) {
    this.#factory = factory;
  }

  push(publication: Publication): void {
    this.#pushes++;
    this.#bytes += publication.bytes;
    this.#enqueue(this.#factory.push(publication), publication.bytes);
  }

  reply(frame: ConnectResponse): void {
    this.#enqueue(this.#factory.reply(frame), -1);
  }

  heartbeat(nowMs: number): void {
    this.#enqueue(this.#factory.heartbeat(nowMs), -1);
  }

  end(disconnect: Disconnect | undefined): void {
    if (this.#ended) return;
    if (disconnect !== undefined) this.#queue.push({ frame: this.#factory.disconnect(disconnect), bytes: -1 });
    this.#ended = true;
    this.#wake?.();
  }

  queuedPushes(): number {
    return this.#pushes;
  }

  queuedBytes(): number {
    return this.#bytes;
  }

  bytesRead(): undefined {
    return undefined;
  }

  probe(): boolean {
    return false;
  }

  /** The frames to write, in order; ends after end(). Read by exactly one writer. */
  async *frames(): AsyncGenerator<F> {
    for (;;) {
      const entry = this.#queue.shift();
      if (entry !== undefined) {
        if (entry.bytes >= 0) {
          // The bound is on what waits: a push counts out once the writer takes it.
          this.#pushes--;
          this.#bytes -= entry.bytes;
        }
        yield entry.frame;
        continue;
      }
      if (this.#ended) return;
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = undefined;
    }
  }

  #enqueue(frame: F, bytes: number): void {
    if (this.#ended) return;
    this.#queue.push({ frame, bytes });
    this.#wake?.();
  }
}
