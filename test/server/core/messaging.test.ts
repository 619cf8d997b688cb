import { describe, expect, it } from "vitest";
import { createSeededRandom, type Clock } from "../../../server/core/clock.js";
import { DEFAULT_LIMITS, type Limits } from "../../../server/core/limits.js";
import { createMessageIdGenerator } from "../../../server/core/message-id.js";
import { Messaging, type Cursor, type SendTarget, type SyncCommand } from "../../../server/core/messaging.js";
import type { Result } from "../../../server/core/result.js";
import { fromBinary } from "@bufbuild/protobuf";
import { MessageSchema } from "../../../gen/im/v1/message_pb.js";
import type { EventSink } from "../../../server/core/events.js";
import type { ConversationRecord, StoredMessage } from "../../../server/core/model.js";
import { NoBroker } from "../../../server/route/broker.js";
import { ChannelPublisher } from "../../../server/route/channel-publisher.js";
import { Hub, type Subscriber } from "../../../server/route/hub.js";
import type { Publication } from "../../../server/route/publication.js";
import { MemoryMessageStore } from "../../../server/store/memory-message-store.js";

const LIMITS: Limits = {
  ...DEFAULT_LIMITS,
  bodyBytesMax: 16,
  groupMembersMax: 5,
  syncMessagesDefault: 3,
  syncMessagesMax: 5,
  syncSessionsDefault: 2,
  syncSessionsMax: 3,
  fetchDefault: 3,
  fetchMax: 5,
  pageDefault: 2,
  pageMax: 4,
};

/** A live connection that keeps what it was delivered, decoded. */
interface Connection extends Subscriber {
  readonly received: Array<{ kind: "message"; message: { seq: number; messageId: string } } | { kind: "read"; conversationId: string; readSeq: number } | { kind: "membership"; conversationId: string; joined: boolean }>;
}

/** Records every event the core emits, then hands it to the real channel publisher. */
class RecordingEvents implements EventSink {
  readonly messages: Array<{ readonly conversationId: string; readonly seq: number; readonly except: string | undefined }> = [];
  readonly members: Array<{ readonly conversationId: string; readonly added: readonly string[]; readonly removed: readonly string[] }> = [];
  readonly #next: EventSink;

  constructor(next: EventSink) {
    this.#next = next;
  }

  messageAppended(conversation: ConversationRecord, message: StoredMessage, originConnectionId: string | undefined): void {
    this.messages.push({ conversationId: conversation.id, seq: message.seq, except: originConnectionId });
    this.#next.messageAppended(conversation, message, originConnectionId);
  }

  readMoved(userId: string, conversationId: string, readSeq: number, originConnectionId: string | undefined): void {
    this.#next.readMoved(userId, conversationId, readSeq, originConnectionId);
  }

  membersChanged(conversation: ConversationRecord, added: readonly string[], removed: readonly string[]): void {
    this.members.push({ conversationId: conversation.id, added: [...added], removed: [...removed] });
    this.#next.membersChanged(conversation, added, removed);
  }
}

function decoded(publication: Publication): Connection["received"][number] {
  const event = publication.wire.event;
  if (event.case === "message") {
    const m = fromBinary(MessageSchema, event.value);
    return { kind: "message", message: { seq: Number(m.seq), messageId: m.messageId } };
  }
  if (event.case === "read") return { kind: "read", conversationId: event.value.conversationId, readSeq: Number(event.value.readSeq) };
  if (event.case === "membership") return { kind: "membership", conversationId: event.value.conversationId, joined: event.value.joined };
  throw new Error(`unexpected ${String(event.case)}`);
}

function setup(options: { limits?: Limits; store?: MemoryMessageStore } = {}) {
  const store = options.store ?? new MemoryMessageStore();
  const clock = { now: 1_000, nowMs(): number { return this.now; } } satisfies Clock & { now: number };
  let messaging: Messaging | undefined;
  const hub = new Hub({ broker: new NoBroker(), groupsOf: (u) => messaging!.groupsOf(u) });
  const events = new RecordingEvents(new ChannelPublisher("test", hub, new NoBroker()));
  messaging = new Messaging({
    store,
    events,
    clock,
    ids: createMessageIdGenerator(clock, createSeededRandom(42)),
    limits: options.limits ?? LIMITS,
  });
  let clientMsgCounter = 0;
  return {
    store,
    events,
    hub,
    clock,
    messaging,
    async connect(userId: string, connectionId: string): Promise<Connection> {
      const received: Connection["received"] = [];
      const connection: Connection = { userId, connectionId, received, deliver: (p) => received.push(decoded(p)) };
      await hub.attach(connection);
      return connection;
    },
    /** Sends a text and returns the stored message; fails the test on a refusal. */
    async send(userId: string, target: SendTarget, text = "hi", origin?: string) {
      const result = await messaging!.send(userId, { target, clientMsgId: `cm-${++clientMsgCounter}`, contentType: "text/plain", data: utf8(text) }, origin);
      return value(result).message;
    },
    async group(ownerId: string, memberIds: readonly string[]): Promise<string> {
      return value(await messaging!.createGroup(ownerId, "Team", memberIds)).id;
    },
  };
}

function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

function value<T>(result: Result<T>): T {
  if (!result.ok) throw new Error(`expected success, got ${result.reason}: ${result.message}`);
  return result.value;
}

function outcome(result: Result<unknown>): string {
  return result.ok ? "ok" : result.reason;
}

const sync = (cursors: readonly Cursor[] = [], extra: Partial<SyncCommand> = {}): SyncCommand => ({
  cursors,
  maxMessagesPerConversation: 0,
  maxSessions: 0,
  ...extra,
});

const messageSeqs = (connection: Connection): number[] =>
  connection.received.flatMap((p) => (p.kind === "message" ? [p.message.seq] : []));

const messageIds = (connection: Connection): string[] =>
  connection.received.flatMap((p) => (p.kind === "message" ? [p.message.messageId] : []));

describe("Messaging", () => {
  describe("send()", () => {
    it("creates the direct conversation on the first message to a user, and both see it in sync", async () => {
      const t = setup();
      const sent = await t.send("alice", { toUserId: "bob" }, "hello");
      expect(sent).toMatchObject({ conversationId: "d:alice:bob", seq: 1, prevSeq: 0, senderId: "alice", sentAtMs: 1_000 });
      for (const [user, peer] of [["alice", "bob"], ["bob", "alice"]]) {
        const { sessions } = value(await t.messaging.sync(user!, sync()));
        expect(sessions).toHaveLength(1);
        expect(sessions[0]?.session).toMatchObject({ conversationId: "d:alice:bob", kind: "direct", lastSeq: 1, peerUserId: peer });
        expect(sessions[0]?.messages).toEqual([sent]);
      }
      const again = await t.send("bob", { toUserId: "alice" });
      expect(again).toMatchObject({ conversationId: "d:alice:bob", seq: 2, prevSeq: 1 });
    });

    it.each([
      { case: "to yourself", sender: "alice", target: { toUserId: "alice" }, reason: "invalid_argument" },
      { case: "to an invalid user id", sender: "alice", target: { toUserId: "not valid!" }, reason: "invalid_argument" },
      { case: "to a malformed conversation id", sender: "alice", target: { conversationId: "x:1" }, reason: "invalid_argument" },
      { case: "to an unknown group", sender: "alice", target: { conversationId: "g:unknown" }, reason: "conversation_not_found" },
      { case: "to a direct id not involving the sender", sender: "alice", target: { conversationId: "d:bob:carol" }, reason: "not_member" },
      { case: "to a group by a non-member", sender: "dave", target: { conversationId: "GROUP" }, reason: "not_member" },
      { case: "to a group by a member", sender: "carol", target: { conversationId: "GROUP" }, reason: "ok" },
    ])("sending $case is $reason", async ({ sender, target, reason }) => {
      const t = setup();
      const group = await t.group("alice", ["bob", "carol"]);
      const resolved = "conversationId" in target && target.conversationId === "GROUP" ? { conversationId: group } : target;
      const result = await t.messaging.send(sender, { target: resolved, clientMsgId: "c", contentType: "text/plain", data: utf8("x") });
      expect(outcome(result)).toBe(reason);
      expect(t.events.messages.length > 0).toBe(reason === "ok");
    });

    it.each([
      { bytes: 0, reason: "ok" },
      { bytes: LIMITS.bodyBytesMax, reason: "ok" },
      { bytes: LIMITS.bodyBytesMax + 1, reason: "body_too_large" },
    ])("a body of $bytes bytes is $reason", async ({ bytes, reason }) => {
      const t = setup();
      const result = await t.messaging.send("alice", { target: { toUserId: "bob" }, clientMsgId: "c", contentType: "x", data: new Uint8Array(bytes) });
      expect(outcome(result)).toBe(reason);
      expect((await t.store.getConversation("d:alice:bob"))?.lastSeq ?? 0).toBe(reason === "ok" ? 1 : 0);
    });

    it("answers a repeated clientMsgId with the original message, duplicate=true, and pushes it once", async () => {
      const t = setup();
      const bob = await t.connect("bob", "b1");
      const command = { target: { toUserId: "bob" }, clientMsgId: "same", contentType: "text/plain", data: utf8("one") };
      const first = value(await t.messaging.send("alice", command));
      t.clock.now += 50;
      const second = value(await t.messaging.send("alice", { ...command, data: utf8("two") }));
      expect(first.duplicate).toBe(false);
      expect(second).toEqual({ message: first.message, duplicate: true });
      expect(messageSeqs(bob)).toEqual([1]);
      expect(t.events.messages).toHaveLength(1);
    });

    it.each(["direct", "group"])("pushes a %s message to every member's connections except the origin", async (kind) => {
      const t = setup();
      const [a1, a2, b1, b2, c1, d1] = [
        await t.connect("alice", "a1"), await t.connect("alice", "a2"), await t.connect("bob", "b1"),
        await t.connect("bob", "b2"), await t.connect("carol", "c1"), await t.connect("dave", "d1"),
      ];
      const target = kind === "direct" ? { toUserId: "bob" } : { conversationId: await t.group("alice", ["bob", "carol"]) };
      const sent = await t.send("alice", target, "hi", "a1");
      const got = messageIds;
      expect([a1, a2, b1, b2, c1, d1].map(got)).toEqual([
        [], [sent.messageId], [sent.messageId], [sent.messageId],
        kind === "group" ? [sent.messageId] : [], [],
      ]);
      expect(t.events.messages.every((c) => c.except === "a1")).toBe(true);
    });

    it.each([1, 2, 5])("publishes a group message of %i members once, and every member's connection gets it", async (members) => {
      const t = setup();
      const users = ["u1", "u2", "u3", "u4", "u5"].slice(0, members);
      const connections = await Promise.all(users.map((u) => t.connect(u, `${u}-c`)));
      const group = await t.group("u1", users.slice(1));
      await t.send("u1", { conversationId: group });
      expect(t.events.messages).toEqual([{ conversationId: group, seq: 1, except: undefined }]);
      expect(connections.map(messageSeqs)).toEqual(users.map(() => [1]));
    });

    it("hands the events of one conversation over in seq order even when sends overlap", async () => {
      const t = setup();
      const group = await t.group("u1", ["u2", "u3", "u4", "u5"]);
      const connections = await Promise.all(["u1", "u2", "u3", "u4", "u5"].map((u) => t.connect(u, `${u}-c`)));
      const sent = await Promise.all(Array.from({ length: 10 }, (_, i) => t.send(`u${(i % 5) + 1}`, { conversationId: group }, `m${i}`)));
      expect(sent.map((m) => m.seq).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      const order = t.events.messages.map((c) => c.seq);
      expect(order).toEqual([...order].sort((a, b) => a - b));
      for (const connection of connections) expect(messageSeqs(connection)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    });
  });

  describe("sync()", () => {
    async function threeConversations() {
      const t = setup();
      const group = await t.group("alice", ["bob"]);
      await t.send("alice", { toUserId: "bob" });
      t.clock.now += 10;
      await t.send("carol", { toUserId: "alice" });
      t.clock.now += 10;
      await t.send("bob", { conversationId: group });
      const cursors = async (user: string): Promise<Cursor[]> =>
        value(await t.messaging.sync(user, sync([], { maxSessions: 100 }))).sessions.map(({ session }) => ({
          conversationId: session.conversationId,
          lastSeq: session.lastSeq,
          readSeq: session.readSeq,
        }));
      return { t, group, cursors };
    }

    it("returns nothing when every cursor is current, then only the changed session with the messages after its cursor", async () => {
      const { t, group, cursors } = await threeConversations();
      const current = await cursors("alice");
      expect(current).toHaveLength(3);
      expect(value(await t.messaging.sync("alice", sync(current)))).toEqual({ sessions: [], removedConversationIds: [], hasMoreSessions: false });
      const m2 = await t.send("bob", { conversationId: group }, "two");
      const m3 = await t.send("bob", { conversationId: group }, "three");
      const { sessions } = value(await t.messaging.sync("alice", sync(current)));
      expect(sessions.map((s) => [s.session.conversationId, s.messages, s.hasMoreMessages])).toEqual([[group, [m2, m3], false]]);
    });

    it("counts a moved read position as a change, with no messages", async () => {
      const { t, cursors } = await threeConversations();
      const current = await cursors("alice");
      value(await t.messaging.markRead("alice", "d:alice:bob", 1));
      const { sessions } = value(await t.messaging.sync("alice", sync(current)));
      expect(sessions.map((s) => [s.session.conversationId, s.session.readSeq, s.messages])).toEqual([["d:alice:bob", 1, []]]);
    });

    it.each([
      { requested: 0, perPage: LIMITS.syncMessagesDefault },
      { requested: 2, perPage: 2 },
      { requested: 100, perPage: LIMITS.syncMessagesMax },
    ])("pages the messages of a session ($requested asked, $perPage per sync) until has_more_messages is false", async ({ requested, perPage }) => {
      const t = setup();
      const all = [];
      for (let i = 0; i < 11; i++) all.push(await t.send("bob", { toUserId: "alice" }, `m${i}`));
      const received = [];
      let cursor: Cursor | undefined;
      for (let round = 0; round < 20; round++) {
        const { sessions } = value(await t.messaging.sync("alice", sync(cursor === undefined ? [] : [cursor], { maxMessagesPerConversation: requested })));
        const update = sessions[0]!;
        expect(update.messages.length).toBeLessThanOrEqual(perPage);
        received.push(...update.messages);
        cursor = { conversationId: update.session.conversationId, lastSeq: update.messages.at(-1)!.seq, readSeq: 0 };
        if (!update.hasMoreMessages) break;
        expect(update.messages).toHaveLength(perPage);
      }
      expect(received).toEqual(all);
    });

    it.each([
      { maxSessions: 0, perSync: LIMITS.syncSessionsDefault },
      { maxSessions: 1, perSync: 1 },
      { maxSessions: 100, perSync: LIMITS.syncSessionsMax },
    ])("pages changed sessions with has_more_sessions (max_sessions $maxSessions)", async ({ maxSessions, perSync }) => {
      const t = setup();
      for (const peer of ["bob", "carol", "dave", "erin", "frank"]) await t.send(peer, { toUserId: "alice" });
      const cursors: Cursor[] = [];
      const seen: string[] = [];
      for (let round = 0; round < 10; round++) {
        const result = value(await t.messaging.sync("alice", sync(cursors, { maxSessions })));
        expect(result.sessions.length).toBeLessThanOrEqual(perSync);
        for (const { session } of result.sessions) {
          seen.push(session.conversationId);
          cursors.push({ conversationId: session.conversationId, lastSeq: session.lastSeq, readSeq: session.readSeq });
        }
        if (!result.hasMoreSessions) break;
        expect(result.sessions).toHaveLength(perSync);
      }
      expect(seen.sort()).toEqual(["d:alice:bob", "d:alice:carol", "d:alice:dave", "d:alice:erin", "d:alice:frank"]);
    });

    it("reports cursors of conversations the user left, or never had, as removed", async () => {
      const { t, group, cursors } = await threeConversations();
      const current = await cursors("alice");
      value(await t.messaging.removeMembers("alice", group, ["alice"]));
      const stale = { conversationId: "g:gone", lastSeq: 4, readSeq: 0 };
      const result = value(await t.messaging.sync("alice", sync([...current, stale])));
      expect(result.sessions).toEqual([]);
      expect(result.removedConversationIds.sort()).toEqual([group, "g:gone"].sort());
    });
  });

  describe("fetchRange()", () => {
    async function sixMessages() {
      const t = setup();
      for (let i = 1; i <= 6; i++) await t.send("alice", { toUserId: "bob" }, `m${i}`);
      return t;
    }

    it.each([
      { afterSeq: 0, upToSeq: 0, limit: 0, seqs: [1, 2, 3], hasMore: true },
      { afterSeq: 2, upToSeq: 4, limit: 10, seqs: [3, 4], hasMore: false },
      { afterSeq: 0, upToSeq: 6, limit: 10, seqs: [1, 2, 3, 4, 5], hasMore: true },
      { afterSeq: 1, upToSeq: 0, limit: 5, seqs: [2, 3, 4, 5, 6], hasMore: false },
      { afterSeq: 3, upToSeq: 5, limit: 2, seqs: [4, 5], hasMore: false },
      { afterSeq: 6, upToSeq: 0, limit: 5, seqs: [], hasMore: false },
      { afterSeq: 4, upToSeq: 4, limit: 5, seqs: [], hasMore: false },
    ])("returns $seqs for ($afterSeq, $upToSeq] limit $limit", async ({ afterSeq, upToSeq, limit, seqs, hasMore }) => {
      const t = await sixMessages();
      const result = value(await t.messaging.fetchRange("bob", { conversationId: "d:alice:bob", afterSeq, upToSeq, limit }));
      expect({ seqs: result.messages.map((m) => m.seq), lastSeq: result.lastSeq, hasMore: result.hasMore }).toEqual({ seqs, lastSeq: 6, hasMore });
    });

    it.each([
      { user: "bob", conversationId: "d:alice:bob", afterSeq: 7, upToSeq: 0, reason: "out_of_range" },
      { user: "bob", conversationId: "d:alice:bob", afterSeq: 0, upToSeq: 7, reason: "out_of_range" },
      { user: "bob", conversationId: "d:alice:bob", afterSeq: 4, upToSeq: 2, reason: "invalid_argument" },
      { user: "carol", conversationId: "d:alice:bob", afterSeq: 0, upToSeq: 0, reason: "not_member" },
      { user: "bob", conversationId: "g:unknown", afterSeq: 0, upToSeq: 0, reason: "conversation_not_found" },
      { user: "carol", conversationId: "d:alice:dave", afterSeq: 0, upToSeq: 0, reason: "not_member" },
      { user: "alice", conversationId: "d:alice:dave", afterSeq: 0, upToSeq: 0, reason: "conversation_not_found" },
      { user: "carol", conversationId: "d:alice:bob", afterSeq: 2n ** 64n - 1n, upToSeq: 0, reason: "not_member" },
    ])("refuses ($afterSeq, $upToSeq] of $conversationId by $user with $reason", async ({ user, conversationId, afterSeq, upToSeq, reason }) => {
      const t = await sixMessages();
      expect(outcome(await t.messaging.fetchRange(user, { conversationId, afterSeq, upToSeq, limit: 0 }))).toBe(reason);
    });

    it.each([
      { afterSeq: 2n ** 53n + 1n, upToSeq: 0, quoted: "9007199254740993" },
      { afterSeq: 0, upToSeq: 2n ** 64n - 1n, quoted: "18446744073709551615" },
      { afterSeq: 3, upToSeq: 2n ** 53n, quoted: "9007199254740992" },
    ])("answers a seq beyond 2^53 ($quoted) with out_of_range, quoting it exactly", async ({ afterSeq, upToSeq, quoted }) => {
      const t = await sixMessages();
      const result = await t.messaging.fetchRange("bob", { conversationId: "d:alice:bob", afterSeq, upToSeq, limit: 0 });
      expect(result).toEqual({ ok: false, reason: "out_of_range", message: `seq ${quoted} is beyond the conversation's last seq 6` });
    });
  });

  describe("markRead()", () => {
    it.each(["direct", "group"])("keeps the %s read position monotonic and tells the user's other connections", async (kind) => {
      const t = setup();
      const [a1, a2, b1] = [await t.connect("alice", "a1"), await t.connect("alice", "a2"), await t.connect("bob", "b1")];
      const id = kind === "direct" ? "d:alice:bob" : await t.group("bob", ["alice"]);
      for (let i = 0; i < 4; i++) await t.send("bob", kind === "direct" ? { toUserId: "alice" } : { conversationId: id });
      for (const c of [a1, a2, b1]) c.received.length = 0;
      const steps: Array<[number, string | number]> = [[3, 3], [1, 3], [4, 4], [5, "out_of_range"], [2, 4]];
      for (const [readSeq, expected] of steps) {
        const result = await t.messaging.markRead("alice", id, readSeq, "a1");
        expect(result.ok ? result.value : result.reason).toBe(expected);
      }
      const reads = [3, 3, 4, 4].map((readSeq) => ({ kind: "read", conversationId: id, readSeq }));
      expect([a1.received, a2.received, b1.received]).toEqual([[], reads, []]);
      const session = value(await t.messaging.sync("alice", sync())).sessions.find((s) => s.session.conversationId === id);
      expect(session?.session.readSeq).toBe(4);
    });

    it.each([
      { user: "carol", id: "d:alice:bob", reason: "not_member" },
      { user: "carol", id: "GROUP", reason: "not_member" },
      { user: "alice", id: "g:unknown", reason: "conversation_not_found" },
      { user: "carol", id: "d:alice:dave", reason: "not_member" },
      { user: "alice", id: "d:alice:dave", reason: "conversation_not_found" },
    ])("refuses $user on $id with $reason", async ({ user, id, reason }) => {
      const t = setup();
      await t.send("alice", { toUserId: "bob" });
      const group = await t.group("alice", ["bob"]);
      expect(outcome(await t.messaging.markRead(user, id === "GROUP" ? group : id, 0))).toBe(reason);
    });

    it("answers a read_seq beyond 2^53 with out_of_range, quoting it exactly", async () => {
      const t = setup();
      await t.send("alice", { toUserId: "bob" });
      expect(await t.messaging.markRead("alice", "d:alice:bob", 2n ** 53n + 1n)).toEqual({
        ok: false,
        reason: "out_of_range",
        message: "read_seq 9007199254740993 is beyond the conversation's last seq 1",
      });
    });
  });

  describe("groups", () => {
    it.each([
      { members: ["bob", "carol", "dave", "erin"], reason: "ok" },
      { members: ["bob", "carol", "dave", "erin", "alice", "bob"], reason: "ok" },
      { members: ["bob", "carol", "dave", "erin", "frank"], reason: "limit_exceeded" },
      { members: ["bob", "not valid!"], reason: "invalid_argument" },
    ])("createGroup(alice + $members) is $reason", async ({ members, reason }) => {
      const t = setup();
      const result = await t.messaging.createGroup("alice", "Team", members);
      expect(outcome(result)).toBe(reason);
      if (result.ok) {
        expect(result.value).toMatchObject({ kind: "group", ownerId: "alice", title: "Team", memberCount: 5, lastSeq: 0 });
        expect(await t.store.listMembers(result.value.id, "", 10)).toEqual(["alice", "bob", "carol", "dave", "erin"]);
      }
    });

    it.each([
      { case: "to a direct conversation", user: "alice", id: "d:alice:bob", add: ["carol"], reason: "failed_precondition" },
      { case: "by a non-member", user: "dave", id: "GROUP", add: ["erin"], reason: "not_member" },
      { case: "over groupMembersMax", user: "bob", id: "GROUP", add: ["dave", "erin", "frank"], reason: "limit_exceeded" },
      { case: "with an invalid id", user: "bob", id: "GROUP", add: ["not valid!"], reason: "invalid_argument" },
      { case: "up to groupMembersMax, existing ignored", user: "bob", id: "GROUP", add: ["alice", "dave", "erin"], reason: "ok" },
    ])("addMembers $case is $reason", async ({ user, id, add, reason }) => {
      const t = setup();
      await t.send("alice", { toUserId: "bob" });
      const group = await t.group("alice", ["bob", "carol"]);
      const result = await t.messaging.addMembers(user, id === "GROUP" ? group : id, add);
      expect(outcome(result)).toBe(reason);
      if (result.ok) expect(result.value).toEqual({ added: 2, memberCount: 5 });
      else expect((await t.store.getConversation(group))?.memberCount).toBe(3);
    });

    it.each([
      { case: "the owner removing others", user: "alice", remove: ["bob", "zed"], reason: "ok", removed: 1 },
      { case: "a member removing itself", user: "bob", remove: ["bob"], reason: "ok", removed: 1 },
      { case: "a member removing someone else", user: "bob", remove: ["carol"], reason: "permission_denied", removed: 0 },
      { case: "a member removing itself and another", user: "bob", remove: ["bob", "carol"], reason: "permission_denied", removed: 0 },
      { case: "a non-member", user: "dave", remove: ["dave"], reason: "not_member", removed: 0 },
    ])("removeMembers by $case is $reason", async ({ user, remove, reason, removed }) => {
      const t = setup();
      const group = await t.group("alice", ["bob", "carol"]);
      const result = await t.messaging.removeMembers(user, group, remove);
      expect(outcome(result)).toBe(reason);
      expect((await t.store.getConversation(group))?.memberCount).toBe(3 - removed);
      if (result.ok) expect(result.value).toEqual({ removed, memberCount: 3 - removed });
    });
  });

  describe("listMembers() and listConversations()", () => {
    it.each([0, 1, 2, 3, 4, 10])("pages through every member once with page size %i", async (pageSize) => {
      const t = setup();
      const group = await t.group("erin", ["dave", "carol", "bob", "alice"]);
      const seen: string[] = [];
      let token = "";
      for (let page = 0; page < 10; page++) {
        const { items, nextPageToken } = value(await t.messaging.listMembers("alice", group, pageSize, token));
        expect(items.length).toBeLessThanOrEqual(Math.min(pageSize || LIMITS.pageDefault, LIMITS.pageMax));
        seen.push(...items);
        token = nextPageToken;
        if (token === "") break;
      }
      expect(seen).toEqual(["alice", "bob", "carol", "dave", "erin"]);
    });

    it.each([0, 1, 2, 3, 4, 10])("pages through every conversation once, most recent first, with page size %i", async (pageSize) => {
      const t = setup();
      // Ties in activity time, so the token must carry the conversation id too.
      for (const [i, peer] of ["bob", "carol", "dave", "erin", "frank", "gina"].entries()) {
        t.clock.now = 1_000 + Math.floor(i / 2) * 10;
        await t.send("alice", { toUserId: peer });
      }
      await t.group("alice", ["bob"]);
      const expected = await t.store.listSessions("alice", 100);
      const seen = [];
      let token = "";
      for (let page = 0; page < 20; page++) {
        const { items, nextPageToken } = value(await t.messaging.listConversations("alice", pageSize, token));
        expect(items.length).toBeLessThanOrEqual(Math.min(pageSize || LIMITS.pageDefault, LIMITS.pageMax));
        seen.push(...items);
        token = nextPageToken;
        if (token === "") break;
      }
      expect(expected).toHaveLength(7);
      expect(seen).toEqual(expected);
    });

    it.each(["not valid!", " "])("refuses the member page token %j", async (token) => {
      const t = setup();
      const group = await t.group("alice", ["bob"]);
      expect(outcome(await t.messaging.listMembers("alice", group, 2, token))).toBe("invalid_argument");
    });

    it.each(["garbage", "123", ".g:x", "12.", "abc.g:x", "12.not-a-conversation"])(
      "refuses the conversation page token %j",
      async (token) => {
        const t = setup();
        await t.send("alice", { toUserId: "bob" });
        expect(outcome(await t.messaging.listConversations("alice", 2, token))).toBe("invalid_argument");
      },
    );

    it("refuses listMembers to a non-member", async () => {
      const t = setup();
      const group = await t.group("alice", ["bob"]);
      expect(outcome(await t.messaging.listMembers("carol", group, 2, ""))).toBe("not_member");
    });
  });
});
