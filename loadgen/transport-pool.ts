import type http2 from "node:http2";
import type { Interceptor, Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import type { ConnectRequest, ConnectResponse } from "../gen/im/v1/gateway_pb.js";

/** A device's hold on a transport; release() when the device goes away. */
export interface TransportLease {
  readonly transport: Transport;
  release(): void;
}

/** Pool settings. */
export interface TransportPoolOptions {
  /** http://host:port of the gateway. */
  readonly baseUrl: string;
  /** Devices per HTTP/2 connection (1: one connection each, as real devices). */
  readonly streamsPerConnection: number;
  /** Local addresses to bind to, one per connection in turn; empty: the OS picks. */
  readonly sourceAddresses: readonly string[];
  /** Offset into sourceAddresses (spreads processes over the addresses). */
  readonly addressOffset: number;
  /** Called with the round trip of each heartbeat on a long connection, in milliseconds. */
  readonly onHeartbeatRtt: (ms: number) => void;
}

interface Slot {
  readonly manager: Http2SessionManager;
  readonly transport: Transport;
  leases: number;
}

/** Pings awaiting their pong on one stream; beyond this the oldest are forgotten. */
const PINGS_TRACKED_MAX = 64;

async function* tap<T>(source: AsyncIterable<T>, see: (value: T) => void): AsyncGenerator<T> {
  for await (const value of source) {
    see(value);
    yield value;
  }
}

/**
 * Measures heartbeat round trips on the wire side of the SDK: the time from a ping frame being
 * handed to the transport to its pong coming out of it, matched by request_id. Other calls pass
 * through untouched.
 */
export function heartbeatRttInterceptor(onRtt: (ms: number) => void): Interceptor {
  return (next) => async (req) => {
    if (!req.stream || req.method.name !== "Connect") return next(req);
    const pings = new Map<bigint, number>();
    const message = tap(req.message as AsyncIterable<ConnectRequest>, (frame) => {
      if (frame.frame.case !== "ping") return;
      if (pings.size >= PINGS_TRACKED_MAX) pings.delete(pings.keys().next().value!);
      pings.set(frame.requestId, performance.now());
    });
    const res = await next({ ...req, message });
    if (!res.stream) return res;
    return {
      ...res,
      message: tap(res.message as AsyncIterable<ConnectResponse>, (frame) => {
        if (frame.frame.case !== "pong") return;
        const sentAt = pings.get(frame.requestId);
        if (sentAt === undefined) return;
        pings.delete(frame.requestId);
        onRtt(performance.now() - sentAt);
      }),
    };
  };
}

/**
 * HTTP/2 connections for simulated devices: each connection carries up to
 * `streamsPerConnection` devices and is bound to the next source address in turn (so one process
 * can go past the ~28k ephemeral ports of one address pair). A connection closes when its last
 * device releases it.
 */
export class TransportPool {
  readonly #options: TransportPoolOptions;
  readonly #interceptors: Interceptor[];
  #open: Slot | undefined;
  #connections = 0;
  readonly #slots = new Set<Slot>();

  constructor(options: TransportPoolOptions) {
    if (!(options.streamsPerConnection >= 1)) throw new Error("streamsPerConnection must be at least 1");
    this.#options = options;
    this.#interceptors = [heartbeatRttInterceptor(options.onHeartbeatRtt)];
  }

  /** HTTP/2 connections currently held. */
  get connections(): number {
    return this.#slots.size;
  }

  /** A transport for one device: a share of the current connection, or a new connection. */
  acquire(): TransportLease {
    let slot = this.#open;
    if (slot === undefined || slot.leases >= this.#options.streamsPerConnection) {
      slot = this.#newSlot();
      this.#open = slot;
    }
    slot.leases++;
    const s = slot;
    let released = false;
    return {
      transport: s.transport,
      release: () => {
        if (released) return;
        released = true;
        s.leases--;
        if (s.leases === 0) {
          s.manager.abort();
          this.#slots.delete(s);
          if (this.#open === s) this.#open = undefined;
        }
      },
    };
  }

  /** Closes every connection. */
  closeAll(): void {
    for (const s of this.#slots) s.manager.abort();
    this.#slots.clear();
    this.#open = undefined;
  }

  #newSlot(): Slot {
    const { baseUrl, sourceAddresses, addressOffset } = this.#options;
    const nodeOptions: http2.ClientSessionOptions & { localAddress?: string } = {};
    if (sourceAddresses.length > 0) nodeOptions.localAddress = sourceAddresses[(addressOffset + this.#connections) % sourceAddresses.length];
    this.#connections++;
    // The app heartbeat keeps the connection alive; no HTTP/2 PINGs, and no idle close while a
    // device holds it.
    const manager = new Http2SessionManager(baseUrl, { idleConnectionTimeoutMs: 24 * 3600_000 }, nodeOptions);
    const transport = createGrpcTransport({ baseUrl, sessionManager: manager, interceptors: this.#interceptors });
    const slot: Slot = { manager, transport, leases: 0 };
    this.#slots.add(slot);
    return slot;
  }
}
