import { SubscriptionBatch, type Broker, type BrokerStats } from "../server/route/broker.js";
import type { OwnerTransport } from "../server/route/owners.js";
import { Publication } from "../server/route/publication.js";
import type { Faults } from "./fault-plan.js";
import type { Scheduler } from "./scheduler.js";
import type { Stats } from "./stats.js";

/** What the bus needs to know about the process behind a broker. */
export interface BrokerProcess {
  /** The process runs (a crashed or exited one sends and receives nothing). */
  readonly alive: boolean;
  /** Its node is cut off from the other nodes and the bus. */
  readonly partitioned: boolean;
  /** The live owner processes changed (the directory's announcement reached it). */
  ownersChanged(members: readonly string[]): void;
  /** A conversation is traced: hops are worth decoding for the trace. */
  readonly tracing: boolean;
  /** Traces a hop of a publication, when its conversation is traced. */
  traceHop(text: string, publication: Publication): void;
}

/** Settings of the bus. */
export interface BusConfig {
  /** A process that stops renewing its lease (crashed, partitioned) leaves the owner directory after this. */
  readonly presenceTtlMs: number;
}

type Up =
  | { readonly kind: "publish"; readonly from: SimBroker; readonly channel: string; readonly bytes: Uint8Array }
  | { readonly kind: "subscribe"; readonly from: SimBroker; readonly subscribe: readonly string[]; readonly unsubscribe: readonly string[]; readonly done: () => void }
  | { readonly kind: "direct"; readonly from: SimBroker; readonly to: string; readonly bytes: Uint8Array }
  | { readonly kind: "join"; readonly from: SimBroker };

type Down =
  | { readonly kind: "publication"; readonly to: SimBroker; readonly channel: string; readonly bytes: Uint8Array }
  | { readonly kind: "subscribed"; readonly to: SimBroker; readonly done: () => void }
  | { readonly kind: "direct"; readonly to: SimBroker; readonly bytes: Uint8Array }
  | { readonly kind: "owners"; readonly to: SimBroker; readonly members: readonly string[] };

/**
 * What every process of the simulated deployment connects to, in the role Redis plays in
 * production: channel subscriptions and publications (pub/sub), bytes for one named process
 * (owner calls), and the directory of live owner processes (leases with a TTL). Every message
 * takes a hop from its process to the bus and one from the bus to its destination, each in
 * FIFO order per process, so a publication reaches a process subscribed when it reached the
 * bus, and a subscription counts only once its command arrived. The hop to a subscriber is
 * where the fault plan loses, duplicates and holds back publications; a partitioned node is
 * cut off from the bus.
 */
export class BrokerBus {
  readonly #sched: Scheduler;
  readonly #faults: Faults;
  readonly #stats: Stats;
  readonly #config: BusConfig;
  /** channel -> the brokers subscribed (one, or several). */
  readonly #subscribers = new Map<string, SimBroker | SimBroker[]>();
  /** The live owner processes by id, in the directory. */
  readonly #live = new Map<string, SimBroker>();

  constructor(sched: Scheduler, faults: Faults, stats: Stats, config: BusConfig) {
    this.#sched = sched;
    this.#faults = faults;
    this.#stats = stats;
    this.#config = config;
  }

  /** The owner processes the directory lists now (what a starting process reads before it serves). */
  members(): string[] {
    return [...this.#live.keys()].sort();
  }

  /** A process's broker sends something to the bus. */
  up(message: Up): void {
    const from = message.from;
    const at = Math.max(this.#sched.nowMs + this.#faults.nodeLatency(), from.upAt);
    from.upAt = at;
    this.#sched.at(at, this.#arrive, message);
  }

  /** The process behind `broker` is gone (crash, exit): its subscriptions go with its connection; `clean` leaves the directory at once. */
  gone(broker: SimBroker, clean: boolean): void {
    this.#dropSubscriptions(broker);
    if (clean) this.#leave(broker);
    else this.#expireLater(broker);
  }

  /** The broker's node was cut off: the bus drops its subscriptions, and its lease runs out unless it returns. */
  cut(broker: SimBroker): void {
    this.#dropSubscriptions(broker);
    this.#expireLater(broker);
  }

  subscribersOf(channel: string): number {
    const subs = this.#subscribers.get(channel);
    return subs === undefined ? 0 : Array.isArray(subs) ? subs.length : 1;
  }

  readonly #arrive = (message: Up): void => {
    const from = message.from;
    if (from.process.partitioned) {
      if (message.kind === "publish") this.#stats.publicationsCut++;
      return;
    }
    switch (message.kind) {
      case "publish":
        this.#fanOut(from, message.channel, message.bytes);
        break;
      case "subscribe":
        if (!from.process.alive) return;
        for (const channel of message.unsubscribe) this.#remove(channel, from);
        for (const channel of message.subscribe) this.#add(channel, from);
        this.#down({ kind: "subscribed", to: from, done: message.done });
        break;
      case "direct": {
        const to = this.#live.get(message.to);
        if (to !== undefined) this.#down({ kind: "direct", to, bytes: message.bytes });
        break;
      }
      case "join":
        if (!from.process.alive) return;
        this.#live.set(from.processId, from);
        this.#announce();
        break;
    }
  };

  #fanOut(from: SimBroker, channel: string, bytes: Uint8Array): void {
    const subs = this.#subscribers.get(channel);
    if (subs === undefined) return;
    if (!Array.isArray(subs)) {
      if (subs !== from) this.#toSubscriber(subs, channel, bytes);
      return;
    }
    for (const to of subs) if (to !== from) this.#toSubscriber(to, channel, bytes);
  }

  #toSubscriber(to: SimBroker, channel: string, bytes: Uint8Array): void {
    const fate = this.#faults.pushFate();
    const stats = this.#stats;
    if (fate === "lost") {
      stats.publicationsLost++;
      to.traceLost(channel, bytes, "lost on the hop");
      return;
    }
    const message: Down = { kind: "publication", to, channel, bytes };
    if (fate === "reordered") {
      stats.publicationsReordered++;
      const at = this.#sched.nowMs + this.#faults.nodeLatency() + Math.floor(this.#faults.rng.between(0, this.#faults.config.reorderDelayMs));
      this.#sched.at(at, this.#deliver, message);
      return;
    }
    this.#down(message);
    if (fate === "duplicated") {
      stats.publicationsDuplicated++;
      this.#down(message);
    }
  }

  #down(message: Down): void {
    const to = message.to;
    const at = Math.max(this.#sched.nowMs + this.#faults.nodeLatency(), to.downAt);
    to.downAt = at;
    this.#sched.at(at, this.#deliver, message);
  }

  readonly #deliver = (message: Down): void => {
    const to = message.to;
    if (!to.process.alive || to.process.partitioned) {
      if (message.kind === "publication") this.#stats.publicationsCut++;
      return;
    }
    switch (message.kind) {
      case "publication":
        to.receivePublication(message.channel, message.bytes);
        break;
      case "subscribed":
        message.done();
        break;
      case "direct":
        to.receiveDirect(message.bytes);
        break;
      case "owners":
        to.process.ownersChanged(message.members);
        break;
    }
  };

  #add(channel: string, broker: SimBroker): void {
    const subs = this.#subscribers.get(channel);
    if (subs === undefined) this.#subscribers.set(channel, broker);
    else if (Array.isArray(subs)) {
      if (!subs.includes(broker)) subs.push(broker);
    } else if (subs !== broker) this.#subscribers.set(channel, [subs, broker]);
  }

  #remove(channel: string, broker: SimBroker): void {
    const subs = this.#subscribers.get(channel);
    if (subs === undefined) return;
    if (!Array.isArray(subs)) {
      if (subs === broker) this.#subscribers.delete(channel);
      return;
    }
    const at = subs.indexOf(broker);
    if (at < 0) return;
    subs.splice(at, 1);
    if (subs.length === 1) this.#subscribers.set(channel, subs[0]!);
  }

  #dropSubscriptions(broker: SimBroker): void {
    for (const channel of broker.wanted) this.#remove(channel, broker);
  }

  #leave(broker: SimBroker): void {
    if (this.#live.get(broker.processId) !== broker) return;
    this.#live.delete(broker.processId);
    this.#announce();
  }

  #expireLater(broker: SimBroker): void {
    this.#sched.schedule(this.#config.presenceTtlMs, this.#expire, broker);
  }

  readonly #expire = (broker: SimBroker): void => {
    // Renewed meanwhile: the process is back (or a new one took its id and joined).
    if (broker.process.alive && !broker.process.partitioned) return;
    this.#leave(broker);
  };

  #announce(): void {
    const members = this.members();
    for (const to of this.#live.values()) this.#down({ kind: "owners", to, members });
  }
}

/**
 * One process's broker (the Broker port) and owner transport on the simulated bus. Publishes
 * are best effort; subscriptions of one turn travel as one command (the production
 * SubscriptionBatch) and resolve once the bus confirms them, or at once while the bus is out
 * of reach (degraded, as the Redis broker is); when the node's partition heals, every wanted
 * channel is subscribed again and the process rejoins the owner directory.
 */
export class SimBroker implements Broker, OwnerTransport {
  readonly processId: string;
  readonly process: BrokerProcess;
  /** Earliest arrival of this process's next message at the bus / of the bus's next message here (FIFO). */
  upAt = 0;
  downAt = 0;
  readonly #bus: BrokerBus;
  readonly #pending = new Set<() => void>();
  readonly #subscriptions: SubscriptionBatch;
  #deliver: (channel: string, publication: Publication) => void = () => {};
  #receive: (kind: "call" | "reply", bytes: Uint8Array) => void = () => {};
  #published = 0;
  #received = 0;
  #dropped = 0;

  constructor(processId: string, process: BrokerProcess, bus: BrokerBus) {
    this.processId = processId;
    this.process = process;
    this.#bus = bus;
    this.#subscriptions = new SubscriptionBatch(
      () => this.#reachable(),
      (subscribe, unsubscribe, done) => {
        this.#pending.add(done);
        this.#bus.up({ kind: "subscribe", from: this, subscribe, unsubscribe, done: () => this.#confirm(done) });
      },
    );
  }

  /** Every channel this process wants. */
  get wanted(): ReadonlySet<string> {
    return this.#subscriptions.wanted;
  }

  /** Joins the owner directory (a starting process, or one whose partition healed). */
  join(): void {
    this.#bus.up({ kind: "join", from: this });
  }

  onPublication(deliver: (channel: string, publication: Publication) => void): void {
    this.#deliver = deliver;
  }

  publish(channel: string, publication: Publication): void {
    if (!this.process.alive) return;
    if (this.process.partitioned) {
      this.#dropped++;
      return;
    }
    this.#published++;
    this.#bus.up({ kind: "publish", from: this, channel, bytes: publication.encode() });
  }

  subscribe(channel: string): Promise<void> {
    return this.#subscriptions.subscribe(channel);
  }

  unsubscribe(channel: string): void {
    this.#subscriptions.unsubscribe(channel);
  }

  stats(): BrokerStats {
    return { kind: "sim", channels: this.#subscriptions.wanted.size, published: this.#published, received: this.#received, dropped: this.#dropped };
  }

  async close(): Promise<void> {
    this.#subscriptions.release();
  }

  /** A publication from another process reached this one. */
  receivePublication(channel: string, bytes: Uint8Array): void {
    if (!this.#subscriptions.wanted.has(channel)) return;
    const publication = Publication.decode(bytes);
    if (this.process.tracing) this.process.traceHop("received", publication);
    this.#received++;
    this.#deliver(channel, publication);
  }

  /** A publication meant for this process was lost on the way (for the trace). */
  traceLost(_channel: string, bytes: Uint8Array, why: string): void {
    if (this.process.tracing) this.process.traceHop(why, Publication.decode(bytes));
  }

  /** The node was cut off: pending subscriptions resolve (degraded), the bus forgets this process's. */
  partitionStarted(): void {
    for (const done of [...this.#pending]) this.#confirm(done);
    this.#bus.cut(this);
  }

  /** The partition healed: subscribe to every wanted channel again and rejoin the directory. */
  partitionEnded(): void {
    if (!this.process.alive) return;
    const wanted = [...this.#subscriptions.wanted];
    if (wanted.length > 0) this.#bus.up({ kind: "subscribe", from: this, subscribe: wanted, unsubscribe: [], done: () => {} });
    this.join();
  }

  // OwnerTransport

  available(): boolean {
    return this.process.alive && this.#reachable();
  }

  send(to: string, kind: "call" | "reply", bytes: Uint8Array): void {
    if (!this.available()) return;
    const out = new Uint8Array(bytes.byteLength + 1);
    out[0] = kind === "call" ? 1 : 2;
    out.set(bytes, 1);
    this.#bus.up({ kind: "direct", from: this, to, bytes: out });
  }

  onReceive(receive: (kind: "call" | "reply", bytes: Uint8Array) => void): void {
    this.#receive = receive;
  }

  receiveDirect(bytes: Uint8Array): void {
    if (bytes.byteLength < 1) return;
    this.#receive(bytes[0] === 1 ? "call" : "reply", bytes.subarray(1));
  }

  #reachable(): boolean {
    return !this.process.partitioned;
  }

  #confirm(done: () => void): void {
    if (!this.#pending.delete(done)) return;
    done();
  }
}
