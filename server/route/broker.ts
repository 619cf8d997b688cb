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
  /**
   * Sets what runs when the broker is reachable again after an outage in which publications
   * may have been lost (the hub re-reads its users' groups). Brokers that lose nothing while
   * their process lives (none, the IPC relay) never call it.
   */
  onRecovered?(listener: () => void): void;
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

/**
 * The channels a process wants and their changes, batched per turn of the event loop: what a
 * turn changed leaves as one unsubscribe and one subscribe of its net result (a channel taken
 * and dropped again in one turn sends nothing), and every subscribe of the turn resolves when
 * that one subscription is confirmed. While the broker is unreachable (`active` false) changes
 * are only recorded: the broker subscribes to `wanted` again when it returns.
 */
export class SubscriptionBatch {
  /** Every channel wanted now. */
  readonly wanted = new Set<string>();
  readonly #active: () => boolean;
  readonly #flush: (subscribe: string[], unsubscribe: string[], done: () => void) => void;
  #dirty = new Set<string>();
  #batch: { done: Promise<void>; resolve: () => void } | undefined;

  /** `flush` sends a turn's changes and calls `done` once the subscribe is confirmed (or given up). */
  constructor(active: () => boolean, flush: (subscribe: string[], unsubscribe: string[], done: () => void) => void) {
    this.#active = active;
    this.#flush = flush;
  }

  subscribe(channel: string): Promise<void> {
    this.wanted.add(channel);
    if (!this.#active()) return Promise.resolve();
    this.#touch(channel);
    if (this.#batch === undefined) {
      let resolve!: () => void;
      const done = new Promise<void>((r) => (resolve = r));
      this.#batch = { done, resolve };
    }
    return this.#batch.done;
  }

  unsubscribe(channel: string): void {
    if (!this.wanted.delete(channel) || !this.#active()) return;
    this.#touch(channel);
  }

  /** Resolves every subscribe waiting (the broker is closing). */
  release(): void {
    this.#batch?.resolve();
    this.#batch = undefined;
  }

  #touch(channel: string): void {
    if (this.#dirty.size === 0) queueMicrotask(() => this.#send());
    this.#dirty.add(channel);
  }

  #send(): void {
    const subscribe: string[] = [];
    const unsubscribe: string[] = [];
    for (const channel of this.#dirty) (this.wanted.has(channel) ? subscribe : unsubscribe).push(channel);
    this.#dirty = new Set();
    const batch = this.#batch;
    this.#batch = undefined;
    const done = batch === undefined ? () => {} : batch.resolve;
    if (!this.#active()) {
      done();
      return;
    }
    this.#flush(subscribe, unsubscribe, done);
  }
}
