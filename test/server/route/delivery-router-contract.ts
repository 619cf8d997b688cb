import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { StoredMessage } from "../../../server/core/model.js";
import type { DeliveryRouter, Push, PushTarget } from "../../../server/route/delivery-router.js";
import { waitFor } from "../../support/test-server.js";

/** Routers that share presence and delivery: a push handed to one reaches connections attached to any. */
export interface RouterFixture {
  readonly routers: readonly DeliveryRouter[];
  close(): Promise<void>;
}

/** A fake connection that records what it is pushed. */
export interface RecordingTarget extends PushTarget {
  readonly got: Push[];
  /** Seqs of the message pushes, in arrival order. */
  seqs(): number[];
}

export function target(connectionId: string, userId: string): RecordingTarget {
  const got: Push[] = [];
  return {
    connectionId,
    userId,
    got,
    push: (p) => void got.push(p),
    seqs: () => got.flatMap((p) => (p.kind === "message" ? [p.message.seq] : [])),
  };
}

export function messagePush(seq: number, body = `m${seq}`): Push {
  const message: StoredMessage = {
    conversationId: "g:room",
    seq,
    prevSeq: seq - 1,
    messageId: `id-${seq}`,
    senderId: "alice",
    sentAtMs: 1_700_000_000_000 + seq,
    contentType: "text/plain",
    data: new TextEncoder().encode(body),
    clientMsgId: `c-${seq}`,
  };
  return { kind: "message", message };
}

/**
 * Pushes a marker through `via` to `targets` and waits until each has it: pushes handed off
 * before it on the same path have arrived by then (order is kept per connection), so what a
 * target has not got by then it will not get.
 */
async function barrier(via: DeliveryRouter, targets: RecordingTarget[], seq: number): Promise<void> {
  via.deliver([...new Set(targets.map((t) => t.userId))], messagePush(seq, "barrier"));
  await waitFor(() => targets.every((t) => t.seqs().includes(seq)), `barrier ${seq}`);
}

/**
 * The DeliveryRouter contract (see its doc comment), for every adapter. `peers` routers come
 * from one fixture; with two or more, the cross-process cases run too.
 */
export function describeDeliveryRouterContract(name: string, create: () => Promise<RouterFixture>, peers: number): void {
  describe(`${name}: DeliveryRouter contract`, () => {
    let fixture: RouterFixture;
    let a: DeliveryRouter;
    beforeEach(async () => {
      fixture = await create();
      expect(fixture.routers).toHaveLength(peers);
      a = fixture.routers[0]!;
    });
    afterEach(async () => {
      await fixture.close();
    });

    describe("deliver()", () => {
      it("reaches every connection of every listed user except the origin connection", async () => {
        const phone = target("a-1", "alice");
        const laptop = target("a-2", "alice");
        const bob = target("b-1", "bob");
        const carol = target("c-1", "carol");
        for (const t of [phone, laptop, bob, carol]) a.attach(t);
        a.deliver(["alice", "bob"], messagePush(1), "a-1");
        await barrier(a, [phone, laptop, bob, carol], 2);
        expect(phone.seqs()).toEqual([2]);
        expect(laptop.seqs()).toEqual([1, 2]);
        expect(bob.seqs()).toEqual([1, 2]);
        expect(carol.seqs()).toEqual([2]);
      });

      it("carries read positions as well as messages", async () => {
        const bob = target("b-1", "bob");
        a.attach(bob);
        a.deliver(["bob"], { kind: "read", conversationId: "g:room", readSeq: 7 });
        await waitFor(() => bob.got.length === 1, "read push");
        expect(bob.got[0]).toEqual({ kind: "read", conversationId: "g:room", readSeq: 7 });
      });

      it("keeps the hand-off order for one connection", async () => {
        const bob = target("b-1", "bob");
        a.attach(bob);
        for (let seq = 1; seq <= 200; seq++) a.deliver(["bob"], messagePush(seq));
        await waitFor(() => bob.got.length === 200, "200 pushes");
        expect(bob.seqs()).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
      });
    });

    describe("attach() / detach()", () => {
      it("counts live connections and stops delivering after detach, which is idempotent", async () => {
        const bob1 = target("b-1", "bob");
        const bob2 = target("b-2", "bob");
        a.attach(bob1);
        a.attach(bob2);
        a.attach(bob2);
        expect(a.connectionCount()).toBe(2);
        a.detach(bob1);
        a.detach(bob1);
        expect(a.connectionCount()).toBe(1);
        a.deliver(["bob"], messagePush(1));
        await barrier(a, [bob2], 2);
        expect(bob1.seqs()).toEqual([]);
        expect(bob2.seqs()).toEqual([1, 2]);
      });
    });

    if (peers < 2) return;

    describe("across processes", () => {
      it("reaches a user's connections on another router, in hand-off order", async () => {
        const b = fixture.routers[1]!;
        const bob = target("b-1", "bob");
        b.attach(bob);
        await settlePresence(a, b, bob);
        const before = bob.seqs().length;
        for (let seq = 2; seq <= 101; seq++) a.deliver(["bob"], messagePush(seq));
        await waitFor(() => bob.seqs().length >= before + 100, "remote pushes");
        expect(bob.seqs().slice(before)).toEqual(Array.from({ length: 100 }, (_, i) => i + 2));
      });

      it("reaches a user on both routers once each, and never the origin connection", async () => {
        const b = fixture.routers[1]!;
        const aliceHere = target("a-1", "alice");
        const aliceThere = target("a-2", "alice");
        const bob = target("b-1", "bob");
        a.attach(aliceHere);
        b.attach(aliceThere);
        b.attach(bob);
        await settlePresence(a, b, bob);
        await settlePresence(a, b, aliceThere);
        const before = [aliceHere, aliceThere, bob].map((t) => t.seqs().length);
        a.deliver(["alice", "bob"], messagePush(10), "a-1");
        await barrier(a, [aliceHere, aliceThere, bob], 11);
        expect(aliceHere.seqs().slice(before[0])).toEqual([11]);
        expect(aliceThere.seqs().slice(before[1])).toEqual([10, 11]);
        expect(bob.seqs().slice(before[2])).toEqual([10, 11]);
        // Connection ids are unique per process only in name: the origin is excluded everywhere.
        b.deliver(["alice"], messagePush(12), "a-2");
        await barrier(b, [aliceHere], 13);
        expect(aliceThere.seqs().slice(before[1])).toEqual([10, 11, 13]);
      });

      it("stops delivering to a connection detached on the other router", async () => {
        const b = fixture.routers[1]!;
        const bob = target("b-1", "bob");
        const carol = target("c-1", "carol");
        b.attach(bob);
        b.attach(carol);
        await settlePresence(a, b, bob);
        await settlePresence(a, b, carol);
        b.detach(bob);
        const before = bob.seqs().length;
        // Presence removal travels like a push: give it the same path before delivering.
        await barrier(b, [carol], 20);
        await waitForAbsence(a, "bob");
        a.deliver(["bob", "carol"], messagePush(21));
        await waitFor(() => carol.seqs().includes(21), "carol's push");
        await barrier(a, [carol], 22);
        expect(bob.seqs().length).toBe(before);
      });
    });
  });
}

/**
 * Presence propagates asynchronously: pushes probes (seq 1) through `from` until one reaches
 * `t` on the other router, then a barrier, so no probe is still in flight afterwards.
 */
async function settlePresence(from: DeliveryRouter, _to: DeliveryRouter, t: RecordingTarget): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!t.seqs().includes(1)) {
    if (Date.now() > deadline) throw new Error(`presence of ${t.userId} never reached the other router`);
    from.deliver([t.userId], messagePush(1, "presence probe"));
    await new Promise((r) => setTimeout(r, 20));
  }
  await barrier(from, [t], 1000);
}

/** Waits until routers that expose presence lookups no longer see `userId` elsewhere. */
async function waitForAbsence(router: DeliveryRouter, userId: string): Promise<void> {
  const lookup = (router as { lookup?: (u: string[]) => Promise<Map<string, string[]>> }).lookup;
  if (lookup === undefined) return;
  const deadline = Date.now() + 10_000;
  while ((await lookup.call(router, [userId])).has(userId)) {
    if (Date.now() > deadline) throw new Error(`${userId} still present`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
