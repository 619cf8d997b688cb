import { fromBinary } from "@bufbuild/protobuf";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MessageSchema } from "../../../gen/im/v1/message_pb.js";
import type { ConversationRecord, StoredMessage } from "../../../server/core/model.js";
import type { Broker } from "../../../server/route/broker.js";
import { ChannelPublisher } from "../../../server/route/channel-publisher.js";
import { Hub, type Subscriber } from "../../../server/route/hub.js";
import type { Publication } from "../../../server/route/publication.js";
import { waitFor } from "../../support/test-server.js";

/** One gateway process as delivery sees it: its broker, its hub and its publisher. */
export interface DeliveryProcess {
  readonly id: string;
  readonly broker: Broker;
  readonly hub: Hub;
  readonly events: ChannelPublisher;
}

/** The groups of each user, as the store would answer the hub (shared by every process). */
export type Memberships = Map<string, Set<string>>;

/** Processes that share one broker adapter. */
export interface DeliveryFixture {
  readonly processes: readonly DeliveryProcess[];
  close(): Promise<void>;
}

/** Builds a process around `broker`, its hub reading groups from `memberships`. */
export function deliveryProcess(id: string, broker: Broker, memberships: Memberships): DeliveryProcess {
  const hub = new Hub({ broker, groupsOf: async (userId) => [...(memberships.get(userId) ?? [])] });
  broker.onPublication((channel, publication) => hub.handle(channel, publication));
  return { id, broker, hub, events: new ChannelPublisher(id, hub, broker) };
}

/** A fake connection that records the seqs and events it is delivered. */
export interface RecordingDevice extends Subscriber {
  readonly got: string[];
  seqs(conversationId?: string): number[];
}

export function device(connectionId: string, userId: string): RecordingDevice {
  const got: string[] = [];
  return {
    connectionId,
    userId,
    got,
    deliver(publication: Publication) {
      const event = publication.wire.event;
      if (event.case === "message") {
        const m = fromBinary(MessageSchema, event.value);
        got.push(`${m.conversationId}#${m.seq}`);
      } else if (event.case === "read") {
        got.push(`read ${event.value.conversationId} ${event.value.readSeq}`);
      } else if (event.case === "membership") {
        got.push(`${event.value.joined ? "joined" : "left"} ${event.value.conversationId}`);
      }
    },
    seqs(conversationId?: string) {
      return got.flatMap((g) => {
        const [c, seq] = g.split("#");
        return seq !== undefined && (conversationId === undefined || c === conversationId) ? [Number(seq)] : [];
      });
    },
  };
}

function record(id: string, kind: "direct" | "group"): ConversationRecord {
  return { id, kind, title: "", ownerId: "", memberCount: 0, lastSeq: 0, lastMessage: undefined, createdAtMs: 0 };
}

function message(conversationId: string, seq: number): StoredMessage {
  return {
    conversationId,
    seq,
    prevSeq: seq - 1,
    messageId: `id-${seq}`,
    senderId: "alice",
    sentAtMs: 1_700_000_000_000 + seq,
    contentType: "text/plain",
    data: new TextEncoder().encode(`m${seq}`),
    clientMsgId: `c-${seq}`,
  };
}

/**
 * Publishes a marker message on `conversationId` from `via` and waits until every device in
 * `devices` has it: publications made before it on the same path have arrived by then (the
 * broker keeps per-publisher order), so what a device has not got by then it will not get.
 */
async function barrier(via: DeliveryProcess, conversationId: string, devices: RecordingDevice[], seq: number): Promise<void> {
  via.events.messageAppended(record(conversationId, conversationId.startsWith("d:") ? "direct" : "group"), message(conversationId, seq), undefined);
  await waitFor(() => devices.every((d) => d.seqs(conversationId).includes(seq)), `barrier ${conversationId}#${seq}`);
}

/**
 * The delivery contract (Broker's and Hub's doc comments) for one broker adapter, run with
 * `size` processes. With three, a user has devices on two processes other than the publisher,
 * which a delivery that reaches only one other process fails.
 */
export function describeDeliveryContract(name: string, create: (memberships: Memberships) => Promise<DeliveryFixture>, size: number): void {
  describe(`${name}: delivery contract (${size} process${size === 1 ? "" : "es"})`, () => {
    let memberships: Memberships;
    let fixture: DeliveryFixture;
    let p: DeliveryProcess[];
    const at = (i: number) => p[Math.min(i, p.length - 1)]!;

    beforeEach(async () => {
      memberships = new Map();
      fixture = await create(memberships);
      p = [...fixture.processes];
      expect(p).toHaveLength(size);
    });
    afterEach(async () => {
      await fixture.close();
    });

    function member(userId: string, ...groups: string[]): void {
      let set = memberships.get(userId);
      if (set === undefined) memberships.set(userId, (set = new Set()));
      for (const g of groups) set.add(g);
    }

    it("delivers a group message once to every member's device on every process, except the origin device, and to no one else", async () => {
      member("alice", "g:team");
      member("bob", "g:team");
      member("carol", "g:team");
      const aliceHere = device("a-1", "alice");
      const aliceThere = device("a-2", "alice");
      const bobOne = device("b-1", "bob");
      const bobTwo = device("b-2", "bob");
      const carol = device("c-1", "carol");
      const dave = device("d-1", "dave");
      await at(0).hub.attach(aliceHere);
      await at(1).hub.attach(aliceThere);
      await at(1).hub.attach(bobOne);
      await at(2).hub.attach(bobTwo);
      await at(0).hub.attach(carol);
      await at(2).hub.attach(dave);
      at(0).events.messageAppended(record("g:team", "group"), message("g:team", 1), "a-1");
      await barrier(at(0), "g:team", [aliceThere, bobOne, bobTwo, carol], 2);
      expect(aliceHere.seqs()).toEqual([2]);
      for (const d of [aliceThere, bobOne, bobTwo, carol]) expect(d.seqs()).toEqual([1, 2]);
      expect(dave.got).toEqual([]);
    });

    it("delivers a direct message to both participants' devices wherever they are, and a read position to the user's other devices", async () => {
      const alice = [device("a-1", "alice"), device("a-2", "alice"), device("a-3", "alice")];
      const bob = device("b-1", "bob");
      for (const [i, d] of alice.entries()) await at(i).hub.attach(d);
      await at(1).hub.attach(bob);
      at(2).events.messageAppended(record("d:alice:bob", "direct"), message("d:alice:bob", 1), "b-0");
      at(0).events.readMoved("alice", "d:alice:bob", 1, "a-1");
      await barrier(at(2), "d:alice:bob", [...alice, bob], 2);
      expect(bob.got).toEqual(["d:alice:bob#1", "d:alice:bob#2"]);
      expect(alice[0]!.got).toEqual(["d:alice:bob#1", "d:alice:bob#2"]);
      for (const d of alice.slice(1)) {
        await waitFor(() => d.got.includes("read d:alice:bob 1"), "the read position");
        expect(d.seqs()).toEqual([1, 2]);
      }
    });

    it("keeps one publisher's order on a channel at every other process", async () => {
      member("bob", "g:order");
      const far = device("b-1", "bob");
      const near = device("b-2", "bob");
      await at(2).hub.attach(far);
      await at(0).hub.attach(near);
      for (let seq = 1; seq <= 200; seq++) at(0).events.messageAppended(record("g:order", "group"), message("g:order", seq), undefined);
      await waitFor(() => far.seqs().length === 200 && near.seqs().length === 200, "200 messages");
      const expected = Array.from({ length: 200 }, (_, i) => i + 1);
      expect(far.seqs()).toEqual(expected);
      expect(near.seqs()).toEqual(expected);
    });

    it("stops delivering a group to a removed member at once, ordered with the group's messages, and tells its devices", async () => {
      member("alice", "g:club");
      member("erin", "g:club");
      const erin = [device("e-1", "erin"), device("e-2", "erin")];
      const alice = device("a-1", "alice");
      await at(1).hub.attach(erin[0]!);
      await at(2).hub.attach(erin[1]!);
      await at(2).hub.attach(alice);
      const club = record("g:club", "group");
      at(0).events.messageAppended(club, message("g:club", 1), undefined);
      memberships.get("erin")!.delete("g:club");
      at(0).events.membersChanged(club, [], ["erin"]);
      at(0).events.messageAppended(club, message("g:club", 2), undefined);
      await barrier(at(0), "g:club", [alice], 3);
      for (const d of erin) {
        await waitFor(() => d.got.includes("left g:club"), "the membership event");
        expect(d.seqs("g:club")).toEqual([1]);
      }
    });

    it("starts delivering a group to an added member, and tells its devices", async () => {
      member("alice", "g:new");
      const alice = device("a-1", "alice");
      const frank = [device("f-1", "frank"), device("f-2", "frank")];
      await at(0).hub.attach(alice);
      await at(1).hub.attach(frank[0]!);
      await at(2).hub.attach(frank[1]!);
      member("frank", "g:new");
      at(0).events.membersChanged(record("g:new", "group"), ["frank"], []);
      for (const d of frank) await waitFor(() => d.got.includes("joined g:new"), "the membership event");
      // The hubs that hold frank subscribe to the group's channel now; once that is in place
      // its messages reach them (the device repairs the ones before through a fetch).
      let seq = 0;
      await waitFor(() => {
        at(0).events.messageAppended(record("g:new", "group"), message("g:new", ++seq), undefined);
        return frank.every((d) => d.seqs("g:new").length > 0);
      }, "frank's devices to get the group's messages");
      expect(alice.seqs("g:new").length).toBe(seq);
    });

    it("reaches a device that attaches after earlier devices of its user left, and none after it leaves", async () => {
      member("gina", "g:late");
      const first = device("g-1", "gina");
      await at(1).hub.attach(first);
      at(1).hub.detach(first);
      const second = device("g-2", "gina");
      await at(2).hub.attach(second);
      await barrier(at(0), "g:late", [second], 1);
      at(2).hub.detach(second);
      await barrier(at(0), "g:late", [], 2);
      await new Promise((r) => setTimeout(r, 50));
      expect(first.got).toEqual([]);
      expect(second.seqs()).toEqual([1]);
    });

    it("a process that published gets its own publication once, through its hub, not back from the broker", async () => {
      member("hal", "g:self");
      const here = device("h-1", "hal");
      const there = device("h-2", "hal");
      await at(0).hub.attach(here);
      await at(1).hub.attach(there);
      await barrier(at(0), "g:self", [here, there], 1);
      await barrier(at(1), "g:self", [here, there], 2);
      await new Promise((r) => setTimeout(r, 50));
      expect(here.seqs()).toEqual([1, 2]);
      expect(there.seqs()).toEqual([1, 2]);
    });
  });
}
