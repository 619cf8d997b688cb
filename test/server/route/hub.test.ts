import { describe, expect, it } from "vitest";
import { Hub, type Subscriber } from "../../../server/route/hub.js";
import { Publication } from "../../../server/route/publication.js";

/** A broker that records subscriptions and confirms them when told. */
class ManualBroker {
  readonly subscribed = new Set<string>();
  readonly log: string[] = [];
  readonly #pending: (() => void)[] = [];

  subscribe(channel: string): Promise<void> {
    this.subscribed.add(channel);
    this.log.push(`+${channel}`);
    return new Promise((resolve) => this.#pending.push(resolve));
  }

  unsubscribe(channel: string): void {
    this.subscribed.delete(channel);
    this.log.push(`-${channel}`);
  }

  confirmAll(): void {
    for (const resolve of this.#pending.splice(0)) resolve();
  }
}

function subscriber(connectionId: string, userId: string): Subscriber & { got: string[] } {
  const got: string[] = [];
  return { connectionId, userId, got, deliver: (p) => got.push(p.kind ?? "?") };
}

/** Resolves after pending promise callbacks ran. */
const settle = () => new Promise((r) => setImmediate(r));

describe("Hub", () => {
  it("resolves attach only once the user's channel and every group channel are confirmed", async () => {
    const broker = new ManualBroker();
    let groupsAsked = 0;
    const hub = new Hub({ broker, groupsOf: async () => (groupsAsked++, ["g:1", "g:2"]) });
    let attached = false;
    void hub.attach(subscriber("c1", "ann")).then(() => (attached = true));
    await settle();
    expect(broker.log).toEqual(["+u:ann"]);
    broker.confirmAll();
    await settle();
    expect(broker.log).toEqual(["+u:ann", "+c:g:1", "+c:g:2"]);
    expect(attached).toBe(false);
    broker.confirmAll();
    await settle();
    expect(attached).toBe(true);
    // A second connection of the user reads nothing and subscribes nothing.
    await hub.attach(subscriber("c2", "ann"));
    expect(groupsAsked).toBe(1);
    expect(hub.stats()).toEqual({ subscribers: 2, users: 1, groups: 2 });
  });

  it("subscribes a group's channel for its first local member and unsubscribes it after its last", async () => {
    const broker = new ManualBroker();
    const hub = new Hub({ broker, groupsOf: async () => ["g:1"] });
    const a = subscriber("c1", "ann");
    const b = subscriber("c2", "bob");
    const attaching = Promise.all([hub.attach(a), hub.attach(b)]);
    for (let i = 0; i < 3; i++) {
      await settle();
      broker.confirmAll();
    }
    await attaching;
    expect(broker.log.filter((l) => l === "+c:g:1")).toHaveLength(1);
    hub.detach(a);
    expect(broker.subscribed.has("c:g:1")).toBe(true);
    hub.detach(b);
    hub.detach(b);
    expect([...broker.subscribed]).toEqual([]);
    expect(hub.stats()).toEqual({ subscribers: 0, users: 0, groups: 0 });
  });

  it("applies membership changes that arrive while the user's groups are read, after them and in order", async () => {
    const broker = new ManualBroker();
    let answer!: (groups: string[]) => void;
    const hub = new Hub({ broker, groupsOf: () => new Promise((r) => (answer = r)) });
    const ann = subscriber("c1", "ann");
    const attaching = hub.attach(ann);
    await settle();
    broker.confirmAll();
    await settle();
    // Read before the changes: the store still lists g:old and not g:new.
    hub.handle("u:ann", Publication.membership("x", "g:new", true, 0));
    hub.handle("u:ann", Publication.membership("x", "g:old", false, 0));
    answer(["g:old"]);
    await settle();
    broker.confirmAll();
    await attaching;
    expect([...broker.subscribed].sort()).toEqual(["c:g:new", "u:ann"]);
    expect(ann.got).toEqual(["membership", "membership"]);
  });

  it("detaches a connection whose groups cannot be read, and rejects its attach", async () => {
    const broker = new ManualBroker();
    const hub = new Hub({ broker, groupsOf: async () => Promise.reject(new Error("store unavailable")) });
    const attaching = hub.attach(subscriber("c1", "ann"));
    await settle();
    broker.confirmAll();
    await expect(attaching).rejects.toThrow("store unavailable");
    expect(hub.stats()).toEqual({ subscribers: 0, users: 0, groups: 0 });
    expect([...broker.subscribed]).toEqual([]);
  });

  it("indexes nothing for a user whose last connection left while its groups were read", async () => {
    const broker = new ManualBroker();
    let answer!: (groups: string[]) => void;
    const hub = new Hub({ broker, groupsOf: () => new Promise((r) => (answer = r)) });
    const ann = subscriber("c1", "ann");
    const attaching = hub.attach(ann);
    await settle();
    broker.confirmAll();
    await settle();
    hub.detach(ann);
    answer(["g:1"]);
    await attaching;
    expect([...broker.subscribed]).toEqual([]);
    expect(hub.stats().groups).toBe(0);
  });

  it("hands one Publication to every local device of a group, skipping the origin connection", async () => {
    const hub = new Hub({ broker: { subscribe: async () => {}, unsubscribe: () => {} }, groupsOf: async (u) => (u === "zed" ? [] : ["g:1"]) });
    const devices = [subscriber("c1", "ann"), subscriber("c2", "ann"), subscriber("c3", "bob"), subscriber("c4", "zed")];
    const seen: Publication[] = [];
    for (const d of devices) {
      const deliver = d.deliver;
      (d as { deliver: Subscriber["deliver"] }).deliver = (p) => {
        seen.push(p);
        deliver(p);
      };
      await hub.attach(d);
    }
    const publication = Publication.message("x", new Uint8Array([1, 2, 3]), "c2");
    hub.handle("c:g:1", publication);
    expect(devices.map((d) => d.got.length)).toEqual([1, 0, 1, 0]);
    expect(seen.every((p) => p === publication)).toBe(true);
  });

  it("removes a member on the group's channel, so a message published before the removal still reaches it when the user's channel is faster", async () => {
    const hub = new Hub({ broker: { subscribe: async () => {}, unsubscribe: () => {} }, groupsOf: async () => ["g:1"] });
    const erin = subscriber("c1", "erin");
    await hub.attach(erin);
    // Published in the order message, members, membership; the user's channel overtakes.
    hub.handle("u:erin", Publication.membership("x", "g:1", false, 1));
    hub.handle("c:g:1", Publication.message("x", new Uint8Array([1])));
    hub.handle("c:g:1", Publication.members("x", [], ["erin"]));
    hub.handle("c:g:1", Publication.message("x", new Uint8Array([2])));
    expect(erin.got).toEqual(["membership", "message"]);
    expect(hub.stats().groups).toBe(0);
  });

  it("keeps queueing membership changes until the group channels are confirmed", async () => {
    const broker = new ManualBroker();
    const hub = new Hub({ broker, groupsOf: async () => ["g:1"] });
    const attaching = hub.attach(subscriber("c1", "ann"));
    await settle();
    broker.confirmAll();
    await settle();
    expect(broker.subscribed.has("c:g:1")).toBe(true);
    // The removal went out on c:g:1 before this subscription was confirmed, so only the user's channel tells it.
    hub.handle("u:ann", Publication.membership("x", "g:1", false, 1));
    broker.confirmAll();
    await attaching;
    expect(broker.subscribed.has("c:g:1")).toBe(false);
  });

  it("re-reads its users' groups on resync and reconciles the index, applying changes that arrive meanwhile after the read", async () => {
    const broker = new ManualBroker();
    const store = new Map<string, string[]>([["ann", ["g:1", "g:2"]], ["bob", ["g:2"]]]);
    let holding = false;
    const held: (() => void)[] = [];
    const hub = new Hub({
      broker,
      groupsOf: async (u) => {
        if (holding) await new Promise<void>((r) => held.push(r));
        return [...store.get(u)!];
      },
    });
    const ann = subscriber("c1", "ann");
    const attaching = Promise.all([hub.attach(ann), hub.attach(subscriber("c2", "bob"))]);
    for (let i = 0; i < 3; i++) {
      await settle();
      broker.confirmAll();
    }
    await attaching;
    // Lost in an outage: ann left g:1 and joined g:3; bob left g:2.
    store.set("ann", ["g:2", "g:3"]);
    store.set("bob", []);
    holding = true;
    const resynced = hub.resync();
    await settle();
    // While ann's groups are read, she leaves g:3 (published after the read's snapshot).
    hub.handle("c:g:3", Publication.members("x", [], ["ann"]));
    hub.handle("u:ann", Publication.membership("x", "g:3", false, 0));
    expect(held).toHaveLength(2);
    for (const release of held) release();
    expect(await resynced).toBe(2);
    await settle();
    broker.confirmAll();
    expect([...broker.subscribed].sort()).toEqual(["c:g:2", "u:ann", "u:bob"]);
    expect(hub.stats()).toEqual({ subscribers: 2, users: 2, groups: 1 });
    hub.handle("c:g:2", Publication.message("x", new Uint8Array([1])));
    expect(ann.got).toEqual(["membership", "message"]);
  });
});
