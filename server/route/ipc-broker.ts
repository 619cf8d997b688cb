import { SubscriptionBatch, type Broker, type BrokerStats, type DirectLink } from "./broker.js";
import { Publication } from "./publication.js";

/** Broker messages between the workers of one node and their primary (structured-clone IPC). */
export type IpcBrokerMessage =
  /** Worker -> primary: subscribe to these channels; answered with im.subscribed carrying `id`. */
  | { readonly type: "im.subscribe"; readonly id: number; readonly channels: readonly string[] }
  /** Primary -> worker: the subscriptions of request `id` are in place. */
  | { readonly type: "im.subscribed"; readonly id: number }
  /** Worker -> primary: unsubscribe. */
  | { readonly type: "im.unsubscribe"; readonly channels: readonly string[] }
  /** Either way: a publication on a channel (worker -> primary to publish, primary -> worker to deliver). */
  | { readonly type: "im.publish"; readonly channel: string; readonly bytes: Uint8Array }
  /** Either way: bytes for one worker (worker -> primary: `to` names it; primary -> worker: for it). */
  | { readonly type: "im.direct"; readonly to: string; readonly bytes: Uint8Array }
  /** Primary -> worker: the live workers of the node (they own its conversations). */
  | { readonly type: "im.workers"; readonly workers: readonly string[] };

/** One end of an IPC channel: a forked worker's `process`, or the primary's ChildProcess. */
export interface IpcPort {
  /** Sends in order; `done` runs once the message is written (or with the error). Must not throw. */
  send(message: IpcBrokerMessage, done: (error: Error | null) => void): void;
}

const TYPES = new Set(["im.subscribe", "im.subscribed", "im.unsubscribe", "im.publish", "im.direct", "im.workers"]);

/** True for the messages of this protocol (the channel also carries other messages). */
export function isIpcBrokerMessage(message: unknown): message is IpcBrokerMessage {
  return TYPES.has((message as { type?: unknown } | null)?.type as string);
}

/** Options of the IPC broker and relay. */
export interface IpcBrokerOptions {
  /** Messages handed to one IPC channel and not yet written; publications beyond it are dropped. Default 10 000. */
  readonly sendsMax?: number;
}

/**
 * The broker of one worker of a node without Redis: the primary relays publications between
 * its workers over the IPC channels it already has with them (IpcBrokerRelay on the primary,
 * this on each worker). Subscriptions made in one turn of the event loop travel as one
 * message. IPC channels keep order, so one worker's publications on a channel reach another
 * in publish order. Best effort like every Broker: a full channel (more than `sendsMax`
 * messages not yet written) drops publications; subscriptions are never dropped.
 */
export class IpcBroker implements Broker, DirectLink {
  readonly #port: IpcPort;
  readonly #sendsMax: number;
  readonly #subscriptions = new SubscriptionBatch(
    () => !this.#closed,
    (subscribe, unsubscribe, done) => {
      if (unsubscribe.length > 0) this.#send({ type: "im.unsubscribe", channels: unsubscribe });
      if (subscribe.length === 0) {
        done();
        return;
      }
      const id = ++this.#nextId;
      this.#waiting.set(id, done);
      this.#send({ type: "im.subscribe", id, channels: subscribe });
    },
  );
  #deliver: (channel: string, publication: Publication) => void = () => {};
  #direct: (bytes: Uint8Array) => void = () => {};
  #workers: (workers: readonly string[]) => void = () => {};
  #sending = 0;
  #nextId = 0;
  readonly #waiting = new Map<number, () => void>();
  #closed = false;
  #published = 0;
  #received = 0;
  #dropped = 0;

  constructor(port: IpcPort, options: IpcBrokerOptions = {}) {
    this.#port = port;
    this.#sendsMax = options.sendsMax ?? 10_000;
  }

  onPublication(deliver: (channel: string, publication: Publication) => void): void {
    this.#deliver = deliver;
  }

  publish(channel: string, publication: Publication): void {
    if (this.#closed) return;
    if (this.#sending >= this.#sendsMax) {
      this.#dropped++;
      return;
    }
    this.#published++;
    this.#send({ type: "im.publish", channel, bytes: publication.encode() });
  }

  subscribe(channel: string): Promise<void> {
    return this.#subscriptions.subscribe(channel);
  }

  unsubscribe(channel: string): void {
    this.#subscriptions.unsubscribe(channel);
  }

  sendDirect(to: string, bytes: Uint8Array): void {
    if (this.#closed) return;
    if (this.#sending >= this.#sendsMax) {
      this.#dropped++;
      return;
    }
    this.#send({ type: "im.direct", to, bytes });
  }

  onDirect(receive: (bytes: Uint8Array) => void): void {
    this.#direct = receive;
  }

  /** Sets where the primary's list of live workers goes. */
  onWorkers(receive: (workers: readonly string[]) => void): void {
    this.#workers = receive;
  }

  /** Takes a message from the primary. */
  receive(message: IpcBrokerMessage): void {
    if (message.type === "im.direct") {
      this.#direct(message.bytes);
    } else if (message.type === "im.workers") {
      this.#workers(message.workers);
    } else if (message.type === "im.subscribed") {
      this.#waiting.get(message.id)?.();
      this.#waiting.delete(message.id);
    } else if (message.type === "im.publish") {
      if (!this.#subscriptions.wanted.has(message.channel)) return;
      let publication: Publication;
      try {
        publication = Publication.decode(message.bytes);
      } catch {
        this.#dropped++;
        return;
      }
      this.#received++;
      this.#deliver(message.channel, publication);
    }
  }

  stats(): BrokerStats {
    return { kind: "ipc", channels: this.#subscriptions.wanted.size, published: this.#published, received: this.#received, dropped: this.#dropped };
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const resolve of this.#waiting.values()) resolve();
    this.#waiting.clear();
    this.#subscriptions.release();
  }

  #send(message: IpcBrokerMessage): void {
    this.#sending++;
    this.#port.send(message, (error) => {
      this.#sending--;
      if (error === null) return;
      if (message.type === "im.publish") this.#dropped++;
      // The primary is gone: nobody will confirm; the worker is shutting down.
      else if (message.type === "im.subscribe") {
        this.#waiting.get(message.id)?.();
        this.#waiting.delete(message.id);
      }
    });
  }
}

/**
 * The primary's side of IpcBroker: which workers subscribe to which channels, and forwarding
 * of each publication to the subscribed workers other than its publisher. Presence is exact:
 * the primary forgets a worker that exits.
 */
export class IpcBrokerRelay {
  readonly #workers = new Map<string, { port: IpcPort; sending: number; channels: Set<string>; live: boolean }>();
  readonly #byChannel = new Map<string, Set<string>>();
  readonly #sendsMax: number;
  #forwarded = 0;
  #dropped = 0;

  constructor(options: IpcBrokerOptions = {}) {
    this.#sendsMax = options.sendsMax ?? 10_000;
  }

  /** A worker (re)started: it subscribes to nothing yet. */
  addWorker(workerId: string, port: IpcPort): void {
    this.removeWorker(workerId);
    this.#workers.set(workerId, { port, sending: 0, channels: new Set(), live: false });
  }

  /** A worker is ready to serve: it becomes an owner of conversations; every worker is told. */
  workerReady(workerId: string): void {
    const worker = this.#workers.get(workerId);
    if (worker === undefined || worker.live) return;
    worker.live = true;
    this.#announce();
  }

  /** A worker exited: forget its subscriptions; the others learn it owns nothing now. */
  removeWorker(workerId: string): void {
    const worker = this.#workers.get(workerId);
    if (worker === undefined) return;
    this.#workers.delete(workerId);
    for (const channel of worker.channels) this.#drop(channel, workerId);
    if (worker.live) this.#announce();
  }

  /** Takes a message from worker `workerId`. */
  receive(workerId: string, message: IpcBrokerMessage): void {
    const worker = this.#workers.get(workerId);
    if (worker === undefined) return;
    switch (message.type) {
      case "im.subscribe":
        for (const channel of message.channels) {
          worker.channels.add(channel);
          let workers = this.#byChannel.get(channel);
          if (workers === undefined) this.#byChannel.set(channel, (workers = new Set()));
          workers.add(workerId);
        }
        this.#send(worker, { type: "im.subscribed", id: message.id }, true);
        break;
      case "im.unsubscribe":
        for (const channel of message.channels) {
          if (worker.channels.delete(channel)) this.#drop(channel, workerId);
        }
        break;
      case "im.publish":
        for (const target of this.#byChannel.get(message.channel) ?? []) {
          if (target === workerId) continue;
          if (this.#send(this.#workers.get(target)!, message, false)) this.#forwarded++;
        }
        break;
      case "im.direct": {
        const target = this.#workers.get(message.to);
        if (target !== undefined && this.#send(target, message, false)) this.#forwarded++;
        break;
      }
      default:
        break;
    }
  }

  /** Workers subscribed to `channel` (for tests and stats). */
  subscribersOf(channel: string): string[] {
    return [...(this.#byChannel.get(channel) ?? [])];
  }

  stats(): { channels: number; forwarded: number; dropped: number } {
    return { channels: this.#byChannel.size, forwarded: this.#forwarded, dropped: this.#dropped };
  }

  #announce(): void {
    const live = [...this.#workers].filter(([, w]) => w.live).map(([id]) => id);
    for (const worker of this.#workers.values()) this.#send(worker, { type: "im.workers", workers: live }, true);
  }

  #drop(channel: string, workerId: string): void {
    const workers = this.#byChannel.get(channel);
    if (workers !== undefined && workers.delete(workerId) && workers.size === 0) this.#byChannel.delete(channel);
  }

  #send(worker: { port: IpcPort; sending: number }, message: IpcBrokerMessage, always: boolean): boolean {
    if (!always && worker.sending >= this.#sendsMax) {
      this.#dropped++;
      return false;
    }
    worker.sending++;
    worker.port.send(message, () => worker.sending--);
    return true;
  }
}
