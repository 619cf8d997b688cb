import type { Publication } from "./publication.js";

/** Counters of a broker, for /stats and benchmarks. */
export interface BrokerStats {
  readonly kind: string;
  /** Channels this process is subscribed to. */
  readonly channels: number;
  /** Publications sent to other processes. */
  readonly published: number;
  /** Publications received from other processes. */
  readonly received: number;
  /** Publications given up (a full channel to the broker, the broker down, a malformed one). */
  readonly dropped: number;
}

/**
 * Carries publications between the processes of a deployment (centrifuge's Broker). A process
 * delivers its own publications to its own hub itself; the broker only moves them to the
 * other processes subscribed to the channel. Adapters: none (one process), the IPC relay
 * through the primary (workers of one node), Redis sharded pub/sub (any number of nodes).
 *
 * Contract:
 * - publish is best effort and never blocks or throws: a process subscribed to the channel
 *   when the publication reaches the broker receives it once, or (on a fault) not at all.
 *   The store is the truth; devices repair what is lost through prev_seq and sync.
 * - Publications one process publishes on one channel reach each other process in publish
 *   order when nothing is lost.
 * - subscribe(channel) resolves once every publication that reaches the broker afterwards
 *   is delivered to this process; while the broker is unreachable it resolves at once (the
 *   process is degraded: devices sync) and the subscription is made when it returns.
 *   Subscribing to a channel twice, or unsubscribing one not subscribed, is harmless.
 * - A process never receives its own publications back.
 */
export interface Broker {
  /** Sets where publications from other processes go (the hub). Called once, before any subscribe. */
  onPublication(deliver: (channel: string, publication: Publication) => void): void;
  publish(channel: string, publication: Publication): void;
  subscribe(channel: string): Promise<void>;
  unsubscribe(channel: string): void;
  stats(): BrokerStats;
  /** Stops receiving and releases connections; publish is a no-op afterwards. */
  close(): Promise<void>;
}

/** Bytes sent to one named process (calls to a conversation's owner and their replies). */
export interface DirectLink {
  /** Best effort, in order per destination; `to` is a process id as the publications' origin. */
  sendDirect(to: string, bytes: Uint8Array): void;
  /** Sets where bytes sent to this process go. */
  onDirect(receive: (bytes: Uint8Array) => void): void;
}

/** The broker of a single process: nobody else to tell. */
export class NoBroker implements Broker {
  readonly #channels = new Set<string>();

  onPublication(): void {}

  publish(): void {}

  async subscribe(channel: string): Promise<void> {
    this.#channels.add(channel);
  }

  unsubscribe(channel: string): void {
    this.#channels.delete(channel);
  }

  stats(): BrokerStats {
    return { kind: "none", channels: this.#channels.size, published: 0, received: 0, dropped: 0 };
  }

  async close(): Promise<void> {}
}
