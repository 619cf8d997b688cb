import { hostname } from "node:os";
import type { Logger } from "pino";
import type { Clock } from "../core/clock.js";
import type { EventSink } from "../core/events.js";
import { NoBroker, type Broker, type BrokerStats, type DirectLink } from "./broker.js";
import { ChannelPublisher } from "./channel-publisher.js";
import { Hub } from "./hub.js";
import { IpcBroker, type IpcBrokerMessage, type IpcPort } from "./ipc-broker.js";
import { OwnerCalls, OwnerSet, type OwnerCallTracing, type OwnerTransport } from "./owners.js";
import { openRedisBroker } from "./redis-broker.js";
import { RedisOwnerDirectory } from "./redis-owner-directory.js";

/** A worker's channel to its primary, for relaying publications when there is no Redis. */
export interface IpcEndpoint {
  readonly port: IpcPort;
  onMessage(listener: (message: IpcBrokerMessage) => void): void;
}

/** What routing is chosen from. */
export interface RoutingOptions {
  /** "" for no Redis. */
  readonly redisUrl: string;
  /** The node's id ("" for `<hostname>-<pid>`). */
  readonly nodeId: string;
  /** Set when this process is worker `index` of a local cluster. */
  readonly worker?: { readonly index: number; readonly relay: IpcEndpoint | undefined };
  /** A dead worker's owner lease (Redis) expires after this; renewed every third of it. */
  readonly presenceTtlMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The ids of a user's groups, for the hub's index (the messaging core's `groupsOf`). */
  readonly groupsOf: (userId: string) => Promise<readonly string[]>;
  /** Carries traces across owner calls; absent: none. */
  readonly ownerCallTracing?: OwnerCallTracing;
}

/** Delivery and ownership as chosen, with their lifecycle. */
export interface Routing {
  readonly hub: Hub;
  readonly broker: Broker;
  /** The core's EventSink: publishes on channels through this process's hub and the broker. */
  readonly events: EventSink;
  /** Which process owns each conversation. */
  readonly owners: OwnerSet;
  /** Requests carried out by conversations' owners. */
  readonly calls: OwnerCalls;
  /** Bytes to and from named processes for offline push (unused by a single process). */
  readonly pushLink: DirectChannel;
  /** Adds what runs when the set of owner processes changes, with those that left. */
  onOwnersChanged(listener: (left: readonly string[]) => void): void;
  /** "local", "ipc" or "redis". */
  readonly kind: string;
  /** Unique among every process sharing the routing; also the prefix of connection ids. */
  readonly workerId: string;
  stats(): Record<string, unknown>;
  /** Call after the gateway has drained. */
  close(): Promise<void>;
}

/** The id of worker `index` of node `nodeId`: the primary and its workers agree on it. */
export function workerIdOf(nodeId: string, index: number): string {
  return `${nodeId}.w${index}`;
}

/**
 * Picks the broker: Redis when a URL is configured (any number of processes and nodes);
 * else, in a worker of a local cluster, the primary's IPC relay; else none (one process).
 * Each process has one hub; conversations are owned by the live workers (of the node from the
 * primary, of the deployment from Redis). Runs routing's one timer (owner leases, call
 * deadlines).
 */
export async function startRouting(options: RoutingOptions): Promise<Routing> {
  const nodeId = options.nodeId !== "" ? options.nodeId : `${hostname()}-${process.pid}`;
  const workerId = options.worker === undefined ? nodeId : workerIdOf(nodeId, options.worker.index);
  const { logger, clock } = options;
  let broker: Broker & Partial<DirectLink>;
  let kind: string;
  let directory: RedisOwnerDirectory | undefined;
  const owners = new OwnerSet(workerId);
  let calls: OwnerCalls;
  let direct: DirectKinds | undefined;
  const relay = options.worker?.relay;
  const ownersListeners: ((left: readonly string[]) => void)[] = [];
  const ownersChanged = (left: readonly string[]) => {
    for (const listener of ownersListeners) listener(left);
  };

  if (options.redisUrl !== "") {
    if (options.presenceTtlMs < 100) throw new Error(`--presence-ttl-ms must be at least 100, got ${options.presenceTtlMs}`);
    const redis = await openRedisBroker({ url: options.redisUrl, workerId, logger });
    broker = redis;
    kind = "redis";
    direct = new DirectKinds(redis);
    calls = new OwnerCalls(workerId, ownerTransport(direct, () => redis.available), { tracing: options.ownerCallTracing });
    directory = new RedisOwnerDirectory(redis.commands, owners, {
      ttlMs: options.presenceTtlMs,
      logger,
      onChange: (left) => {
        for (const owner of left) calls.abandon(owner, "the conversation's owner left; retry");
        ownersChanged(left);
      },
    });
    await directory.refresh();
  } else if (relay !== undefined) {
    const ipc = new IpcBroker(relay.port);
    broker = ipc;
    kind = "ipc";
    direct = new DirectKinds(ipc);
    calls = new OwnerCalls(workerId, ownerTransport(direct, () => true), { tracing: options.ownerCallTracing });
    ipc.onWorkers((workers) => {
      const before = owners.members;
      if (owners.update(workers)) {
        const left = before.filter((owner) => !owners.members.includes(owner));
        for (const owner of left) calls.abandon(owner, "the conversation's owner exited; retry");
        ownersChanged(left);
      }
    });
    relay.onMessage((message) => ipc.receive(message));
  } else {
    broker = new NoBroker();
    kind = "local";
    calls = new OwnerCalls(workerId, { available: () => false, send: () => {}, onReceive: () => {} });
  }

  const hub = new Hub({ broker, groupsOf: options.groupsOf });
  broker.onPublication((channel, publication) => hub.handle(channel, publication));
  // Membership publications lost in a broker outage: the hub re-reads who is in which group.
  broker.onRecovered?.(() => {
    void hub.resync().then((users) => logger.info({ users }, "hub re-read the groups of its users after the broker outage"));
  });
  const events = new ChannelPublisher(workerId, hub, broker);
  const timer = setInterval(() => {
    const now = clock.nowMs();
    calls.tick(now);
    directory?.tick(now);
  }, 100);
  timer.unref();

  return {
    hub,
    broker,
    events,
    owners,
    calls,
    pushLink: direct?.channel(3) ?? { send: () => {}, onReceive: () => {} },
    onOwnersChanged: (listener) => void ownersListeners.push(listener),
    kind,
    workerId,
    stats: () => ({ kind, workerId, owners: owners.members.length, hub: hub.stats(), broker: broker.stats(), calls: calls.stats() }),
    async close() {
      clearInterval(timer);
      await directory?.close();
      await broker.close();
    },
  };
}

/** One kind of bytes sent to named processes over the direct link. */
export interface DirectChannel {
  /** Best effort, in order per destination. */
  send(to: string, bytes: Uint8Array): void;
  onReceive(receive: (bytes: Uint8Array) => void): void;
}

/**
 * Several kinds of bytes over one direct link: the first byte names the kind (1 owner call,
 * 2 its reply, 3 offline push).
 */
class DirectKinds {
  readonly #link: DirectLink;
  readonly #receivers = new Map<number, (bytes: Uint8Array) => void>();

  constructor(link: DirectLink) {
    this.#link = link;
    link.onDirect((bytes) => {
      if (bytes.byteLength >= 1) this.#receivers.get(bytes[0]!)?.(bytes.subarray(1));
    });
  }

  channel(kind: number): DirectChannel {
    return {
      send: (to, bytes) => {
        const out = new Uint8Array(bytes.byteLength + 1);
        out[0] = kind;
        out.set(bytes, 1);
        this.#link.sendDirect(to, out);
      },
      onReceive: (receive) => void this.#receivers.set(kind, receive),
    };
  }
}

/** Owner calls (kind 1) and their replies (kind 2) on the direct link. */
function ownerTransport(direct: DirectKinds, available: () => boolean): OwnerTransport {
  const calls = direct.channel(1);
  const replies = direct.channel(2);
  return {
    available,
    send: (to, kind, bytes) => (kind === "call" ? calls : replies).send(to, bytes),
    onReceive(receive) {
      calls.onReceive((bytes) => receive("call", bytes));
      replies.onReceive((bytes) => receive("reply", bytes));
    },
  };
}

export type { BrokerStats };
