import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { compareSessions, PREVIEW_BYTES_MAX, type StoredMessage } from "../../../server/core/model.js";
import { StoreUnavailableError } from "../../../server/core/result.js";
import type { AppendResult, MessageStore, NewMessage } from "../../../server/store/message-store.js";

/** How the suite gets a store; `durable` adapters also say how to reopen the same data. */
export interface MessageStoreContractOptions {
  /** Opens the data of the store last returned by `open` again (after it was closed). */
  readonly durable?: { readonly reopen: () => Promise<MessageStore> | MessageStore };
}

const DIRECT = "d:alice:bob";
const GROUP = "g:team";
const BIG = 1_000;

let messageCounter = 0;

/** A message with a unique messageId; the body defaults to the clientMsgId's bytes. */
function message(conversationId: string, senderId: string, clientMsgId: string, extra: Partial<NewMessage> = {}): NewMessage {
  messageCounter++;
  return {
    conversationId,
    senderId,
    clientMsgId,
    messageId: `m${String(messageCounter).padStart(8, "0")}`,
    sentAtMs: 1_000 + messageCounter,
    contentType: "text/plain",
    data: new TextEncoder().encode(`body of ${clientMsgId}`),
    ...extra,
  };
}

function bytes(length: number, seed = 7): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff);
}

/**
 * A whole log: seqs are positive and strictly increasing (adapters may skip seqs) and every
 * prevSeq names the message right before it, 0 for the first.
 */
function expectChain(log: readonly StoredMessage[]): void {
  expect(log.filter((m, i) => !(m.seq > (i === 0 ? 0 : log[i - 1]!.seq))).map((m) => m.seq)).toEqual([]);
  expect(log.map((m) => m.prevSeq)).toEqual(log.map((_, i) => (i === 0 ? 0 : log[i - 1]!.seq)));
}

/**
 * The MessageStore contract (server/store/message-store.ts), run against every adapter. Each
 * test gets a fresh store from `open`; the suite closes it afterwards.
 */
export function describeMessageStoreContract(
  name: string,
  open: () => Promise<MessageStore> | MessageStore,
  options: MessageStoreContractOptions = {},
): void {
  describe(`${name} (MessageStore contract)`, () => {
    let store: MessageStore;

    beforeEach(async () => {
      store = await open();
    });
    afterEach(async () => {
      await store.close();
    });

    async function seed(): Promise<void> {
      await store.ensureDirect(DIRECT, "alice", "bob", 100);
      await store.createGroup({ id: GROUP, title: "Team", ownerId: "alice", createdAtMs: 200 }, ["alice", "bob", "carol"]);
    }

    const readAll = (conversationId: string): Promise<StoredMessage[]> => store.readRange(conversationId, 0, undefined, BIG);

    describe("append()", () => {
      beforeEach(seed);

      it.each([DIRECT, GROUP])("assigns increasing seqs with exact prevSeq links in %s", async (id) => {
        const results = [];
        for (const key of ["c1", "c2", "c3"]) results.push(await store.append(message(id, "alice", key)));
        expect(results.map((r) => r.duplicate)).toEqual([false, false, false]);
        expectChain(results.map((r) => r.message));
        expect(await readAll(id)).toEqual(results.map((r) => r.message));
      });

      it("returns the original with duplicate=true for a repeated clientMsgId and writes nothing", async () => {
        const first = await store.append(message(GROUP, "alice", "k"));
        const other = await store.append(message(GROUP, "bob", "other"));
        const again = await store.append(message(GROUP, "alice", "k", { data: bytes(5), sentAtMs: 99_999 }));
        expect(again).toEqual({ message: first.message, duplicate: true });
        expect((await readAll(GROUP)).map((m) => m.clientMsgId)).toEqual(["k", "other"]);
        expect((await store.getConversation(GROUP))?.lastSeq).toBe(other.message.seq);
      });

      it.each([
        { case: "a different sender", conversationId: GROUP, senderId: "bob" },
        { case: "a different conversation", conversationId: DIRECT, senderId: "alice" },
      ])("treats the same clientMsgId from $case as a new message", async ({ conversationId, senderId }) => {
        const first = await store.append(message(GROUP, "alice", "k"));
        const second = await store.append(message(conversationId, senderId, "k"));
        expect(second.duplicate).toBe(false);
        expect(second.message.messageId).not.toBe(first.message.messageId);
        expect(await readAll(conversationId)).toContainEqual(second.message);
      });

      it.each([0, 1, PREVIEW_BYTES_MAX, PREVIEW_BYTES_MAX + 1, 4096])(
        "moves the head to the new message with a %i-byte body cut to the preview",
        async (length) => {
          const body = bytes(length);
          const { message: stored } = await store.append(message(GROUP, "bob", "k", { data: body }));
          expect(stored.data).toEqual(body);
          const head = await store.getConversation(GROUP);
          expect(head?.lastSeq).toBe(stored.seq);
          expect(head?.lastMessage).toEqual({ ...stored, data: body.slice(0, PREVIEW_BYTES_MAX) });
        },
      );

      it("updates both participants' direct sessions", async () => {
        const { message: stored } = await store.append(message(DIRECT, "alice", "k", { data: bytes(600), sentAtMs: 5_000 }));
        for (const [user, peer] of [["alice", "bob"], ["bob", "alice"]] as const) {
          const session = (await store.listSessions(user, BIG)).find((s) => s.conversationId === DIRECT);
          expect(session).toEqual({
            conversationId: DIRECT,
            kind: "direct",
            lastSeq: stored.seq,
            lastMessage: { ...stored, data: stored.data.slice(0, PREVIEW_BYTES_MAX) },
            readSeq: 0,
            peerUserId: peer,
            title: "",
            updatedAtMs: 5_000,
          });
        }
      });

      it("writes nothing per group member: every member, even one added later, sees the group record", async () => {
        await store.append(message(GROUP, "alice", "k1"));
        const last = await store.append(message(GROUP, "carol", "k2", { sentAtMs: 7_000 }));
        await store.addMembers(GROUP, ["dave"], BIG, 8_000);
        const record = await store.getConversation(GROUP);
        for (const user of ["alice", "bob", "dave"]) {
          const session = (await store.listSessions(user, BIG)).find((s) => s.conversationId === GROUP);
          expect(session).toEqual({
            conversationId: GROUP,
            kind: "group",
            lastSeq: record?.lastSeq,
            lastMessage: record?.lastMessage,
            readSeq: 0,
            peerUserId: "",
            title: "Team",
            updatedAtMs: 7_000,
          });
        }
        expect(record?.lastSeq).toBe(last.message.seq);
      });

      it("is linearizable: 200 appends started at once get distinct seqs, each result is the log's entry, chain unbroken", async () => {
        const results = await Promise.all(Array.from({ length: 200 }, (_, i) => store.append(message(GROUP, "bob", `c${i}`))));
        expect(new Set(results.map((r) => r.message.seq)).size).toBe(200);
        const log = await readAll(GROUP);
        expectChain(log);
        expect(log).toEqual(results.map((r) => r.message).sort((a, b) => a.seq - b.seq));
        expect(new Set(log.map((m) => m.clientMsgId)).size).toBe(200);
        expect((await store.getConversation(GROUP))?.lastSeq).toBe(log[log.length - 1]?.seq);
      });

      it("gives appends to one conversation seqs in the order they were issued and settles them in that order", async () => {
        const issued: Array<{ readonly id: string; readonly key: string; readonly promise: Promise<AppendResult> }> = [];
        const settled: string[] = [];
        const issue = (id: string, senderId: string, clientMsgId: string): Promise<AppendResult> => {
          const promise = store.append(message(id, senderId, clientMsgId));
          const key = `${senderId}/${clientMsgId}`;
          issued.push({ id, key, promise });
          promise.then(
            () => settled.push(`${id} ${key}`),
            () => settled.push(`${id} ${key}`),
          );
          return promise;
        };
        // Many at once, to two conversations, some repeating a clientMsgId that is in flight.
        for (let i = 0; i < 150; i++) {
          const first = issue(GROUP, "bob", `c${i}`);
          if (i % 10 === 5) issue(GROUP, "bob", `c${i - 5}`);
          if (i % 3 === 0) issue(DIRECT, "alice", `c${i}`);
          // Issued from a settlement, while later ones are still in flight.
          if (i % 50 === 7) void first.then(() => issue(GROUP, "carol", `from-settlement-${i}`));
        }
        // And from a later turn of the event loop, while the first ones are in flight.
        await new Promise((resolve) => setImmediate(resolve));
        for (let i = 150; i < 200; i++) issue(GROUP, "bob", `c${i}`);
        await Promise.all(issued.map((x) => x.promise));
        // Every promise is settled by now, so `issued` holds the settlements' appends too.
        await Promise.all(issued.map((x) => x.promise));

        for (const id of [GROUP, DIRECT]) {
          const mine = issued.filter((x) => x.id === id);
          expect(settled.filter((s) => s.startsWith(`${id} `))).toEqual(mine.map((x) => `${id} ${x.key}`));
          const results = await Promise.all(mine.map((x) => x.promise));
          const fresh = results.filter((r) => !r.duplicate).map((r) => r.message);
          expect(fresh.map((m) => `${m.senderId}/${m.clientMsgId}`)).toEqual([...new Set(mine.map((x) => x.key))]);
          expectChain(fresh);
          expect(await readAll(id)).toEqual(fresh);
          const firstOf = new Map(fresh.map((m) => [`${m.senderId}/${m.clientMsgId}`, m]));
          for (const [i, r] of results.entries()) {
            if (r.duplicate) expect(r.message, mine[i]!.key).toEqual(firstOf.get(mine[i]!.key));
          }
        }
        expect(issued.filter((x) => x.key.startsWith("carol/"))).toHaveLength(3);
        expect((await Promise.all(issued.map((x) => x.promise))).filter((r) => r.duplicate)).toHaveLength(15);
      });

      it("answers a clientMsgId repeated while its first append is in flight with the first result", async () => {
        const [first, other, again] = await Promise.all([
          store.append(message(GROUP, "alice", "k")),
          store.append(message(GROUP, "bob", "x")),
          store.append(message(GROUP, "alice", "k", { data: bytes(5) })),
        ]);
        expect(first.duplicate).toBe(false);
        expect(other.duplicate).toBe(false);
        expect(again).toEqual({ message: first.message, duplicate: true });
        expect((await readAll(GROUP)).map((m) => m.clientMsgId)).toEqual(["k", "x"]);
      });

      it("fails only the append that cannot commit among appends issued together", async () => {
        const outcomes = await Promise.allSettled([
          store.append(message(GROUP, "alice", "a")),
          store.append(message("g:nowhere", "alice", "b")),
          store.append(message(GROUP, "bob", "c")),
          store.append(message(DIRECT, "bob", "d")),
        ]);
        expect(outcomes.map((o) => o.status)).toEqual(["fulfilled", "rejected", "fulfilled", "fulfilled"]);
        expect((outcomes[1] as PromiseRejectedResult).reason).not.toBeInstanceOf(StoreUnavailableError);
        const group = await readAll(GROUP);
        expect(group.map((m) => m.clientMsgId)).toEqual(["a", "c"]);
        expectChain(group);
        expect((await readAll(DIRECT)).map((m) => m.clientMsgId)).toEqual(["d"]);
        expect(await readAll("g:nowhere")).toEqual([]);
      });

      it("copies the body: mutating the input afterwards changes nothing stored", async () => {
        const body = bytes(300);
        const { message: stored } = await store.append(message(GROUP, "alice", "k", { data: body }));
        const copy = body.slice();
        body.fill(0);
        expect(stored.data).toEqual(copy);
        expect((await readAll(GROUP))[0]?.data).toEqual(copy);
        expect((await store.getConversation(GROUP))?.lastMessage?.data).toEqual(copy.slice(0, PREVIEW_BYTES_MAX));
      });

      it("stores the bytes of a view, not its whole buffer", async () => {
        const view = bytes(64).subarray(10, 20);
        await store.append(message(GROUP, "alice", "k", { data: view }));
        expect((await readAll(GROUP))[0]?.data).toEqual(view.slice());
      });

      it("rejects an append to a conversation that does not exist", async () => {
        await expect(store.append(message("g:nowhere", "alice", "k"))).rejects.toThrow();
      });

      it("keeps logs equal to a model for any appends with repeated clientMsgIds", async () => {
        const step = fc.record({
          conversationId: fc.constantFrom(DIRECT, GROUP, "g:other"),
          senderId: fc.constantFrom("alice", "bob"),
          key: fc.integer({ min: 0, max: 6 }),
        });
        await fc.assert(
          fc.asyncProperty(fc.array(step, { maxLength: 40 }), async (steps) => {
            const s = await open();
            try {
              await s.ensureDirect(DIRECT, "alice", "bob", 1);
              await s.createGroup({ id: GROUP, title: "", ownerId: "alice", createdAtMs: 1 }, ["alice", "bob"]);
              await s.createGroup({ id: "g:other", title: "", ownerId: "bob", createdAtMs: 1 }, ["bob"]);
              const model = new Map<string, Map<string, number>>();
              for (const { conversationId, senderId, key } of steps) {
                const log = model.get(conversationId) ?? new Map<string, number>();
                model.set(conversationId, log);
                const dedupKey = `${senderId}/${key}`;
                const result = await s.append(message(conversationId, senderId, String(key)));
                expect(result.duplicate).toBe(log.has(dedupKey));
                if (!log.has(dedupKey)) log.set(dedupKey, result.message.seq);
                expect(result.message.seq).toBe(log.get(dedupKey));
              }
              for (const id of [DIRECT, GROUP, "g:other"]) {
                const stored = await s.readRange(id, 0, undefined, BIG);
                const expected = model.get(id) ?? new Map<string, number>();
                expect(stored.map((m) => `${m.senderId}/${m.clientMsgId}`)).toEqual([...expected.keys()]);
                expect(stored.map((m) => m.seq)).toEqual([...expected.values()]);
                expectChain(stored);
                expect((await s.getConversation(id))?.lastSeq).toBe(stored[stored.length - 1]?.seq ?? 0);
              }
            } finally {
              await s.close();
            }
          }),
          { numRuns: 25 },
        );
      });
    });

    describe("readRange()", () => {
      // The table's bounds and results are positions: k stands for the seq of the k-th message
      // (c<k>), and past the tenth for the last seq plus k - 10; for an adapter that does not
      // skip seqs, positions are the seqs.
      let appended: number[] = [];
      const at = (k: number): number => (k === 0 ? 0 : k <= 10 ? appended[k - 1]! : appended[9]! + k - 10);
      beforeEach(async () => {
        await seed();
        appended = [];
        for (let i = 1; i <= 10; i++) appended.push((await store.append(message(GROUP, "alice", `c${i}`))).message.seq);
      });

      it.each([
        { afterSeq: 0, upToSeq: undefined, limit: 100, seqs: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] },
        { afterSeq: 3, upToSeq: undefined, limit: 100, seqs: [4, 5, 6, 7, 8, 9, 10] },
        { afterSeq: 3, upToSeq: 6, limit: 100, seqs: [4, 5, 6] },
        { afterSeq: 3, upToSeq: 6, limit: 2, seqs: [4, 5] },
        { afterSeq: 0, upToSeq: undefined, limit: 3, seqs: [1, 2, 3] },
        { afterSeq: 5, upToSeq: 5, limit: 10, seqs: [] },
        { afterSeq: 0, upToSeq: 0, limit: 10, seqs: [] },
        { afterSeq: 10, upToSeq: undefined, limit: 10, seqs: [] },
        { afterSeq: 15, upToSeq: 20, limit: 10, seqs: [] },
        { afterSeq: 0, upToSeq: undefined, limit: 0, seqs: [] },
        { afterSeq: 9, upToSeq: 100, limit: 10, seqs: [10] },
      ])("returns $seqs for afterSeq=$afterSeq upToSeq=$upToSeq limit=$limit", async ({ afterSeq, upToSeq, limit, seqs }) => {
        const got = await store.readRange(GROUP, at(afterSeq), upToSeq === undefined ? undefined : at(upToSeq), limit);
        expect(got.map((m) => m.seq)).toEqual(seqs.map(at));
        expect(got.map((m) => m.clientMsgId)).toEqual(seqs.map((s) => `c${s}`));
      });

      it.each([DIRECT, "g:missing"])("returns nothing for the empty or missing conversation %s", async (id) => {
        expect(await store.readRange(id, 0, undefined, 10)).toEqual([]);
      });
    });

    describe("listSessions()", () => {
      beforeEach(async () => {
        // Activity order, newest first: d:alice:dave (9000), g:b (8000), g:a and g:c (tie at 300), d:alice:bob (100).
        await store.ensureDirect(DIRECT, "alice", "bob", 100);
        await store.ensureDirect("d:alice:dave", "alice", "dave", 150);
        for (const id of ["g:c", "g:a", "g:b"]) {
          await store.createGroup({ id, title: id, ownerId: "alice", createdAtMs: 300 }, ["alice", "erin"]);
        }
        await store.append(message("g:b", "erin", "k", { sentAtMs: 8_000 }));
        await store.append(message("d:alice:dave", "dave", "k", { sentAtMs: 9_000 }));
      });
      const order = ["d:alice:dave", "g:b", "g:a", "g:c", DIRECT];

      it("lists the user's direct sessions and groups, most recently active first (compareSessions)", async () => {
        const sessions = await store.listSessions("alice", BIG);
        expect(sessions.map((s) => s.conversationId)).toEqual(order);
        expect([...sessions].sort(compareSessions)).toEqual(sessions);
        expect(sessions.map((s) => s.updatedAtMs)).toEqual([9_000, 8_000, 300, 300, 100]);
      });

      it.each([0, 1, 3, 5, 6])("returns at most limit=%i entries, the first ones", async (limit) => {
        const sessions = await store.listSessions("alice", limit);
        expect(sessions.map((s) => s.conversationId)).toEqual(order.slice(0, limit));
      });

      it.each([
        { user: "bob", ids: [DIRECT] },
        { user: "erin", ids: ["g:b", "g:a", "g:c"] },
        { user: "nobody", ids: [] },
      ])("lists only the conversations of $user", async ({ user, ids }) => {
        expect((await store.listSessions(user, BIG)).map((s) => s.conversationId)).toEqual(ids);
      });
    });

    describe("ensureDirect()", () => {
      it("creates a two-member direct conversation with an empty log", async () => {
        const record = await store.ensureDirect(DIRECT, "alice", "bob", 100);
        expect(record).toEqual({
          id: DIRECT, kind: "direct", title: "", ownerId: "", memberCount: 2, lastSeq: 0, lastMessage: undefined, createdAtMs: 100,
        });
        expect(await store.getConversation(DIRECT)).toEqual(record);
        expect(await store.listMembers(DIRECT, "", 10)).toEqual(["alice", "bob"]);
        expect([await store.isMember(DIRECT, "alice"), await store.isMember(DIRECT, "bob"), await store.isMember(DIRECT, "carol")]).toEqual([true, true, false]);
        expect((await store.listSessions("bob", 10))[0]).toMatchObject({ conversationId: DIRECT, lastSeq: 0, updatedAtMs: 100, peerUserId: "alice" });
      });

      it("is idempotent: a later call returns the existing conversation and resets nothing", async () => {
        await store.ensureDirect(DIRECT, "alice", "bob", 100);
        const { message: sent } = await store.append(message(DIRECT, "bob", "k", { sentAtMs: 500 }));
        await store.markRead("alice", DIRECT, sent.seq);
        const again = await store.ensureDirect(DIRECT, "alice", "bob", 900);
        expect(again).toEqual(await store.getConversation(DIRECT));
        expect(again).toMatchObject({ lastSeq: sent.seq, createdAtMs: 100, memberCount: 2 });
        expect(await store.listSessions("alice", 10)).toEqual([expect.objectContaining({ lastSeq: sent.seq, readSeq: sent.seq, updatedAtMs: 500 })]);
        expect(await readAll(DIRECT)).toHaveLength(1);
      });
    });

    describe("createGroup(), getConversation(), isMember()", () => {
      it("creates a group with the owner and the distinct members", async () => {
        const record = await store.createGroup({ id: GROUP, title: "Team", ownerId: "alice", createdAtMs: 200 }, ["bob", "carol", "bob"]);
        expect(record).toEqual({
          id: GROUP, kind: "group", title: "Team", ownerId: "alice", memberCount: 3, lastSeq: 0, lastMessage: undefined, createdAtMs: 200,
        });
        expect(await store.getConversation(GROUP)).toEqual(record);
        expect(await store.listMembers(GROUP, "", 10)).toEqual(["alice", "bob", "carol"]);
      });

      it.each([
        { conversationId: GROUP, userId: "carol", member: true },
        { conversationId: GROUP, userId: "dave", member: false },
        { conversationId: "g:missing", userId: "alice", member: false },
        { conversationId: DIRECT, userId: "carol", member: false },
      ])("isMember($conversationId, $userId) is $member", async ({ conversationId, userId, member }) => {
        await seed();
        expect(await store.isMember(conversationId, userId)).toBe(member);
      });

      it("returns undefined for a conversation that does not exist", async () => {
        expect(await store.getConversation("g:missing")).toBeUndefined();
      });

      it("rejects a group id that exists", async () => {
        await seed();
        await expect(store.createGroup({ id: GROUP, title: "x", ownerId: "bob", createdAtMs: 1 }, ["bob"])).rejects.toThrow();
        expect(await store.getConversation(GROUP)).toMatchObject({ title: "Team", ownerId: "alice", memberCount: 3 });
      });
    });

    describe("addMembers() and removeMembers()", () => {
      beforeEach(seed);

      it("adds new members and leaves existing ones alone", async () => {
        expect(await store.addMembers(GROUP, ["bob", "dave", "erin", "dave"], BIG, 1)).toEqual({ changed: 2, memberCount: 5 });
        expect(await store.listMembers(GROUP, "", 10)).toEqual(["alice", "bob", "carol", "dave", "erin"]);
        expect((await store.getConversation(GROUP))?.memberCount).toBe(5);
        expect((await store.listSessions("dave", 10)).map((s) => s.conversationId)).toEqual([GROUP]);
      });

      it.each([
        { case: "fits exactly", userIds: ["bob", "dave", "erin"], membersMax: 5, expected: { changed: 2, memberCount: 5 } },
        { case: "is one over", userIds: ["dave", "erin", "frank"], membersMax: 5, expected: "limit" },
        { case: "is over with existing members only", userIds: ["alice"], membersMax: 2, expected: "limit" },
      ])("returns $expected when the new count $case", async ({ userIds, membersMax, expected }) => {
        expect(await store.addMembers(GROUP, userIds, membersMax, 1)).toEqual(expected);
        if (expected === "limit") {
          expect((await store.getConversation(GROUP))?.memberCount).toBe(3);
          expect(await store.listMembers(GROUP, "", 10)).toEqual(["alice", "bob", "carol"]);
          expect(await store.isMember(GROUP, "dave")).toBe(false);
          expect(await store.listSessions("dave", 10)).toEqual([]);
        }
      });

      it("removes members, ignores non-members, and the removed no longer list the group", async () => {
        expect(await store.removeMembers(GROUP, ["bob", "zed", "bob", "carol"])).toEqual({ changed: 2, memberCount: 1 });
        expect((await store.getConversation(GROUP))?.memberCount).toBe(1);
        expect(await store.listMembers(GROUP, "", 10)).toEqual(["alice"]);
        expect(await store.isMember(GROUP, "bob")).toBe(false);
        expect((await store.listSessions("bob", 10)).map((s) => s.conversationId)).toEqual([DIRECT]);
        expect(await store.removeMembers(GROUP, ["zed"])).toEqual({ changed: 0, memberCount: 1 });
      });

      it("forgets a removed member's read position", async () => {
        await store.append(message(GROUP, "alice", "k"));
        await store.markRead("bob", GROUP, 1);
        await store.removeMembers(GROUP, ["bob"]);
        await store.addMembers(GROUP, ["bob"], BIG, 1);
        expect((await store.listSessions("bob", 10)).find((s) => s.conversationId === GROUP)?.readSeq).toBe(0);
      });
    });

    describe("listMembers()", () => {
      const users = Array.from({ length: 25 }, (_, i) => `u${String(i).padStart(2, "0")}`);
      beforeEach(async () => {
        await store.createGroup({ id: GROUP, title: "", ownerId: "u00", createdAtMs: 1 }, [...users].reverse());
      });

      it.each([1, 7, 10, 25, 30])("pages through every member once, ascending, %i at a time", async (pageSize) => {
        const seen: string[] = [];
        let after = "";
        for (;;) {
          const page = await store.listMembers(GROUP, after, pageSize);
          expect(page.length).toBeLessThanOrEqual(pageSize);
          seen.push(...page);
          if (page.length < pageSize) break;
          after = page[page.length - 1]!;
        }
        expect(seen).toEqual(users);
      });

      it.each([
        { afterUserId: "u10", limit: 3, expected: ["u11", "u12", "u13"] },
        { afterUserId: "u105", limit: 2, expected: ["u11", "u12"] },
        { afterUserId: "u24", limit: 5, expected: [] },
        { afterUserId: "", limit: 0, expected: [] },
      ])("returns $expected after $afterUserId with limit $limit", async ({ afterUserId, limit, expected }) => {
        expect(await store.listMembers(GROUP, afterUserId, limit)).toEqual(expected);
      });

      it("returns nothing for a missing conversation", async () => {
        expect(await store.listMembers("g:missing", "", 10)).toEqual([]);
      });
    });

    describe("listGroups()", () => {
      it("lists exactly the groups the user belongs to now, never a direct conversation", async () => {
        await store.ensureDirect(DIRECT, "alice", "bob", 1);
        for (const g of ["g:a", "g:b", "g:c"]) await store.createGroup({ id: g, title: "", ownerId: "alice", createdAtMs: 2 }, ["alice", "bob"]);
        await store.removeMembers("g:b", ["bob"]);
        await store.addMembers("g:c", ["carol"], BIG, 3);
        expect((await store.listGroups("alice", BIG)).sort()).toEqual(["g:a", "g:b", "g:c"]);
        expect((await store.listGroups("bob", BIG)).sort()).toEqual(["g:a", "g:c"]);
        expect(await store.listGroups("carol", BIG)).toEqual(["g:c"]);
        expect(await store.listGroups("nobody", BIG)).toEqual([]);
      });

      it.each([0, 1, 2])("returns at most %i", async (limit) => {
        for (const g of ["g:a", "g:b", "g:c"]) await store.createGroup({ id: g, title: "", ownerId: "alice", createdAtMs: 2 }, []);
        expect(await store.listGroups("alice", limit)).toHaveLength(limit);
      });
    });

    describe("markRead()", () => {
      beforeEach(async () => {
        await seed();
        for (const id of [DIRECT, GROUP]) for (let i = 0; i < 6; i++) await store.append(message(id, "alice", `c${i}`));
      });

      it.each([DIRECT, GROUP])("keeps the maximum read position in %s, per user", async (id) => {
        const steps: Array<[number, number]> = [[3, 3], [1, 3], [3, 3], [5, 5], [0, 5]];
        for (const [readSeq, expected] of steps) expect(await store.markRead("bob", id, readSeq)).toBe(expected);
        const readOf = async (user: string) => (await store.listSessions(user, 10)).find((s) => s.conversationId === id)?.readSeq;
        expect(await readOf("bob")).toBe(5);
        expect(await readOf("alice")).toBe(0);
      });
    });

    describe("close()", () => {
      it("makes later calls fail", async () => {
        await store.close();
        await expect(store.getConversation(GROUP)).rejects.toThrow();
      });
    });

    const durable = options.durable;
    // Only adapters that keep data across a restart get these tests; none is skipped.
    if (durable !== undefined) {
      describe("durability", () => {
        it("keeps everything across close and reopen, dedup included", async () => {
          await seed();
          const first = await store.append(message(DIRECT, "alice", "k1", { data: bytes(400) }));
          await store.append(message(GROUP, "bob", "k1"));
          await store.append(message(GROUP, "carol", "k2"));
          await store.markRead("bob", DIRECT, 1);
          await store.markRead("carol", GROUP, 2);
          await store.addMembers(GROUP, ["dave"], BIG, 1);
          await store.removeMembers(GROUP, ["bob"]);
          const before = {
            direct: await store.getConversation(DIRECT),
            group: await store.getConversation(GROUP),
            logs: [await readAll(DIRECT), await readAll(GROUP)],
            sessions: await Promise.all(["alice", "bob", "carol", "dave"].map((u) => store.listSessions(u, BIG))),
            members: await store.listMembers(GROUP, "", BIG),
          };
          await store.close();
          store = await durable!.reopen();
          expect({
            direct: await store.getConversation(DIRECT),
            group: await store.getConversation(GROUP),
            logs: [await readAll(DIRECT), await readAll(GROUP)],
            sessions: await Promise.all(["alice", "bob", "carol", "dave"].map((u) => store.listSessions(u, BIG))),
            members: await store.listMembers(GROUP, "", BIG),
          }).toEqual(before);
          expect(await store.append(message(DIRECT, "alice", "k1"))).toEqual({ message: first.message, duplicate: true });
          const groupLast = before.logs[1]![before.logs[1]!.length - 1]!.seq;
          const next = (await store.append(message(GROUP, "bob", "k3"))).message;
          expect(next.prevSeq).toBe(groupLast);
          expect(next.seq).toBeGreaterThan(groupLast);
        });
      });
    }
  });
}
