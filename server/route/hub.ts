import type { Broker } from "./broker.js";
import { groupChannel, userChannel, type Publication } from "./publication.js";

/** A live device stream as the hub holds it. */
export interface Subscriber {
  /** Unique among every live connection of the deployment. */
  readonly connectionId: string;
  readonly userId: string;
  /**
   * Takes a publication meant for devices. Must not block or throw: a connection that cannot
   * keep up closes itself (slow-consumer disconnect) and its device repairs through sync.
   */
  deliver(publication: Publication): void;
}

/** What a hub is built from. */
export interface HubOptions {
  /** The channels this process receives; the hub subscribes to each while it holds a member. */
  readonly broker: Pick<Broker, "subscribe" | "unsubscribe">;
  /** The ids of the groups a user belongs to (read once per user, when its first connection attaches here). */
  readonly groupsOf: (userId: string) => Promise<readonly string[]>;
}

/** Counters for /stats. */
export interface HubStats {
  readonly subscribers: number;
  readonly users: number;
  readonly groups: number;
}

interface UserEntry {
  readonly userId: string;
  /** Made with its first connection: a literal of one holds one slot, an empty array that is pushed to holds 17. */
  readonly subscribers: Subscriber[];
  /** The groups indexed for this user: exactly those whose channel delivers to it (made on the first). */
  groups: Set<string> | undefined;
  /** Resolves when the user's channels are subscribed and its groups indexed. */
  ready: Promise<void>;
  /** Membership changes that arrived while the groups were being read, applied after them in order. */
  queued: { conversationId: string; joined: boolean }[] | undefined;
  /** Detached while loading. */
  gone: boolean;
}

/** The `ready` of a user whose channels and groups are in place. */
const LOADED: Promise<void> = Promise.resolve();

/**
 * One process's index of who listens where (centrifuge's Hub): user -> its local
 * connections, group -> its local members. A publication reaches the hub once per process
 * and channel, and the hub hands the same Publication (whose device frames are encoded once)
 * to every local connection of the channel; no store read and no presence lookup per
 * message. Pure: no I/O of its own, so the simulator runs it.
 *
 * A connection's user subscribes to its user channel at once and to the channel of each of
 * its groups, read from the store when the user's first connection attaches here. Member
 * changes keep the index current without reads: a `members` publication on the group's
 * channel (in order with the group's messages, so a removed member gets nothing published
 * after its removal) and a `membership` publication on the user's channel (which is how a
 * hub that does not hold the group yet learns of an added member).
 */
export class Hub {
  readonly #broker: HubOptions["broker"];
  readonly #groupsOf: HubOptions["groupsOf"];
  readonly #users = new Map<string, UserEntry>();
  readonly #groups = new Map<string, Set<UserEntry>>();
  /** Subscriptions requested and not yet confirmed, so a later attach can wait for them too. */
  readonly #subscribing = new Map<string, Promise<void>>();
  #presence: ((userId: string, online: boolean) => void) | undefined;
  #subscribers = 0;
  #handled = 0;
  #deliveries = 0;

  constructor(options: HubOptions) {
    this.#broker = options.broker;
    this.#groupsOf = options.groupsOf;
  }

  /** Sets what hears of a user's first connection attaching here and its last one detaching. */
  onPresence(listener: (userId: string, online: boolean) => void): void {
    this.#presence = listener;
  }

  /** The users with a connection attached here. */
  users(): IterableIterator<string> {
    return this.#users.keys();
  }

  /**
   * Registers a connection. Resolves once it receives everything published from then on;
   * rejects when the user's groups cannot be read (the store is unavailable), in which case
   * the connection is already detached.
   */
  async attach(subscriber: Subscriber): Promise<void> {
    let entry = this.#users.get(subscriber.userId);
    if (entry === undefined) {
      entry = { userId: subscriber.userId, subscribers: [subscriber], groups: undefined, ready: LOADED, queued: [], gone: false };
      this.#users.set(subscriber.userId, entry);
      const loading = this.#load(entry);
      entry.ready = loading;
      // Once loaded, the entry forgets its own promise (a promise per user stays live otherwise).
      const loaded = entry;
      loading.then(() => {
        if (loaded.ready === loading) loaded.ready = LOADED;
      }, () => {});
      this.#presence?.(entry.userId, true);
    } else {
      entry.subscribers.push(subscriber);
    }
    this.#subscribers++;
    try {
      await entry.ready;
    } catch (error) {
      this.detach(subscriber);
      throw error;
    }
  }

  /** Unregisters a connection; idempotent. */
  detach(subscriber: Subscriber): void {
    const entry = this.#users.get(subscriber.userId);
    if (entry === undefined) return;
    const at = entry.subscribers.indexOf(subscriber);
    if (at < 0) return;
    entry.subscribers.splice(at, 1);
    this.#subscribers--;
    if (entry.subscribers.length > 0) return;
    this.#users.delete(entry.userId);
    entry.gone = true;
    this.#presence?.(entry.userId, false);
    this.#broker.unsubscribe(userChannel(entry.userId));
    for (const g of [...(entry.groups ?? [])]) this.#removeGroup(entry, g);
  }

  /** Live connections of `userId` attached here. */
  connectionsOf(userId: string): number {
    return this.#users.get(userId)?.subscribers.length ?? 0;
  }

  /** A publication on `channel`, published by this process or received from another. */
  handle(channel: string, publication: Publication): void {
    this.#handled++;
    if (channel.startsWith("u:")) {
      const entry = this.#users.get(channel.slice(2));
      if (entry === undefined) return;
      const event = publication.wire.event;
      if (event.case === "membership") {
        // A join may concern a group this hub does not hold yet, so only the user's channel can
        // tell it. A removal is applied from the group's channel, in order with its messages:
        // user and group channels need not arrive in publish order (Redis Cluster shards them),
        // and applying the removal from here could drop a message published before it. While
        // the user's groups load, the group's subscription may have missed that removal, so the
        // queue keeps it.
        const { conversationId, joined } = event.value;
        if (joined || entry.queued !== undefined) this.#membership(entry, conversationId, joined);
      }
      if (publication.forDevices) this.#deliveries += deliverTo(entry, publication);
    } else if (channel.startsWith("c:")) {
      const conversationId = channel.slice(2);
      const members = this.#groups.get(conversationId);
      if (members === undefined) return;
      const event = publication.wire.event;
      if (event.case === "members") {
        for (const userId of event.value.removed) {
          const entry = this.#users.get(userId);
          if (entry !== undefined) this.#membership(entry, conversationId, false);
        }
        for (const userId of event.value.added) {
          const entry = this.#users.get(userId);
          if (entry !== undefined) this.#membership(entry, conversationId, true);
        }
      } else if (publication.forDevices) {
        for (const entry of members) this.#deliveries += deliverTo(entry, publication);
      }
    }
  }

  /**
   * Re-reads the groups of every user attached here and reconciles the index with them. For
   * after a broker outage, in which membership publications may have been lost: a removed
   * member would keep receiving the group's pushes, an added one would miss them. At most
   * `concurrency` reads at once; membership publications that arrive during a user's read
   * queue and apply after it, as at attach. A user whose read fails keeps its index.
   * Resolves with the number of users whose groups were read.
   */
  async resync(concurrency = 16): Promise<number> {
    const users = [...this.#users.values()];
    let next = 0;
    let read = 0;
    const reconcile = async (): Promise<void> => {
      while (next < users.length) {
        const entry = users[next++]!;
        // A user still loading reads its groups anyway.
        if (entry.gone || entry.queued !== undefined) continue;
        entry.queued = [];
        let groups: readonly string[] | undefined;
        try {
          groups = await this.#groupsOf(entry.userId);
        } catch {
          groups = undefined;
        }
        const queued = entry.queued;
        entry.queued = undefined;
        if (entry.gone) continue;
        if (groups !== undefined) {
          read++;
          const current = new Set(groups);
          for (const g of [...(entry.groups ?? [])]) if (!current.has(g)) this.#removeGroup(entry, g);
          for (const g of current) void this.#addGroup(entry, g);
        }
        for (const change of queued) this.#membership(entry, change.conversationId, change.joined);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, users.length) }, reconcile));
    return read;
  }

  stats(): HubStats {
    return { subscribers: this.#subscribers, users: this.#users.size, groups: this.#groups.size };
  }

  /** Since start: publications handled (published here or received), and their deliveries to connections. */
  fanout(): { readonly publications: number; readonly deliveries: number } {
    return { publications: this.#handled, deliveries: this.#deliveries };
  }

  async #load(entry: UserEntry): Promise<void> {
    await this.#subscribe(userChannel(entry.userId));
    const groups = await this.#groupsOf(entry.userId);
    if (entry.gone) return;
    const waits: Promise<void>[] = [];
    for (const g of groups) {
      const wait = this.#addGroup(entry, g);
      if (wait !== undefined) waits.push(wait);
    }
    // Changes keep queueing until the group channels are confirmed: a removal published before
    // then may never arrive on the group's channel.
    await Promise.all(waits);
    const queued = entry.queued ?? [];
    entry.queued = undefined;
    for (const change of queued) this.#membership(entry, change.conversationId, change.joined);
  }

  #membership(entry: UserEntry, conversationId: string, joined: boolean): void {
    if (entry.queued !== undefined) entry.queued.push({ conversationId, joined });
    else if (joined) void this.#addGroup(entry, conversationId);
    else this.#removeGroup(entry, conversationId);
  }

  /** Indexes `entry` under group `g`; returns the pending subscription of its channel, if any. */
  #addGroup(entry: UserEntry, g: string): Promise<void> | undefined {
    if (entry.gone) return undefined;
    const channel = groupChannel(g);
    if (entry.groups?.has(g) !== true) {
      (entry.groups ??= new Set()).add(g);
      let members = this.#groups.get(g);
      if (members === undefined) {
        members = new Set();
        this.#groups.set(g, members);
        void this.#subscribe(channel).catch(() => {});
      }
      members.add(entry);
    }
    return this.#subscribing.get(channel);
  }

  #removeGroup(entry: UserEntry, g: string): void {
    if (entry.groups?.delete(g) !== true) return;
    const members = this.#groups.get(g);
    if (members === undefined) return;
    members.delete(entry);
    if (members.size > 0) return;
    this.#groups.delete(g);
    this.#broker.unsubscribe(groupChannel(g));
  }

  #subscribe(channel: string): Promise<void> {
    const pending = this.#broker.subscribe(channel).finally(() => {
      if (this.#subscribing.get(channel) === pending) this.#subscribing.delete(channel);
    });
    this.#subscribing.set(channel, pending);
    return pending;
  }
}

/** Hands `publication` to the user's connections but its origin; returns how many. */
function deliverTo(entry: UserEntry, publication: Publication): number {
  const except = publication.exceptConnectionId;
  let delivered = 0;
  for (const subscriber of entry.subscribers) {
    if (subscriber.connectionId !== except) {
      subscriber.deliver(publication);
      delivered++;
    }
  }
  return delivered;
}
