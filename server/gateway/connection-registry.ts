import type { DisconnectReason } from "../../gen/im/v1/gateway_pb.js";
import type { Connection } from "./connection.js";

/**
 * How a long connection reached the server: the lean HTTP/2 path in gRPC or Connect binary
 * framing, connect-node on HTTP/2 with Connect JSON or gRPC-Web, or connect-node on HTTP/1.1
 * (browsers' push streams, whatever their framing).
 */
export type ConnectionProtocol = "grpc" | "connect" | "connect_json" | "grpc_web" | "http1";

/** Every protocol, in a fixed order (the index of its live count). */
export const CONNECTION_PROTOCOLS: readonly ConnectionProtocol[] = ["grpc", "connect", "connect_json", "grpc_web", "http1"];

/** Told when connections open and end (metrics); must not throw. */
export interface ConnectionObserver {
  opened(protocol: ConnectionProtocol): void;
  /** `reason` is the disconnect frame's reason, or undefined when the stream ended without one (the client went away). */
  closed(protocol: ConnectionProtocol, reason: DisconnectReason | undefined): void;
}

/**
 * The live connections of this process, for ticks, stats, metrics and draining on shutdown,
 * with a count per protocol kept as they come and go (so a scrape reads numbers, it does not
 * walk the connections to classify them).
 */
export class ConnectionRegistry implements Iterable<Connection> {
  readonly #protocols = new Map<Connection, number>();
  readonly #live = CONNECTION_PROTOCOLS.map(() => 0);
  readonly #observer: ConnectionObserver | undefined;

  constructor(observer?: ConnectionObserver) {
    this.#observer = observer;
  }

  get size(): number {
    return this.#protocols.size;
  }

  add(conn: Connection, protocol: ConnectionProtocol): void {
    if (this.#protocols.has(conn)) return;
    const index = CONNECTION_PROTOCOLS.indexOf(protocol);
    this.#protocols.set(conn, index);
    this.#live[index]!++;
    this.#observer?.opened(protocol);
  }

  /** Forgets `conn`; false when it was not registered. */
  delete(conn: Connection): boolean {
    const index = this.#protocols.get(conn);
    if (index === undefined) return false;
    this.#protocols.delete(conn);
    this.#live[index]!--;
    this.#observer?.closed(CONNECTION_PROTOCOLS[index]!, conn.disconnectReason);
    return true;
  }

  /** Live connections of `protocol`. */
  liveOf(protocol: ConnectionProtocol): number {
    return this.#live[CONNECTION_PROTOCOLS.indexOf(protocol)]!;
  }

  [Symbol.iterator](): Iterator<Connection> {
    return this.#protocols.keys();
  }
}
