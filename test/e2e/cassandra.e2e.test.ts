import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { directConversationId } from "../../server/core/conversation-id.js";
import { dropKeyspace, rawClient, sharedCassandraContactPoint, uniqueKeyspace } from "../support/cassandra.js";
import { recordMessages, startTestServer, waitFor, type TestServer } from "../support/test-server.js";

const contactPoint = sharedCassandraContactPoint();
const keyspace = uniqueKeyspace("e2e");
const flags = ["--store", "cassandra", "--cassandra-contact-points", contactPoint, "--cassandra-keyspace", keyspace];
const admin = rawClient(contactPoint);
const TABLES = ["conversations", "user_conversations", "messages", "client_msg_ids", "seq_leases", "seq_wants"];

beforeAll(async () => {
  // The first server creates the keyspace; later ones find the schema complete.
  await (await startTestServer(flags)).stop();
  await admin.connect();
});
afterAll(async () => {
  await admin.shutdown();
  await dropKeyspace(contactPoint, keyspace);
});

/** The end-to-end scenarios of test/e2e/sdk.e2e.test.ts, with the server on Cassandra. */
describe("gateway and SDK client with the server on Cassandra", () => {
  let t: TestServer;
  const servers: TestServer[] = [];
  beforeEach(async () => {
    await Promise.all(TABLES.map((table) => admin.execute(`TRUNCATE ${keyspace}.${table}`)));
    t = await startTestServer(flags);
    servers.push(t);
  });
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.stop();
  });

  it("delivers 1:1 messages to the peer and to the sender's other devices, in order", async () => {
    const alicePhone = await t.client("alice");
    const aliceLaptop = await t.client("alice");
    const bob = await t.client("bob");
    const bobSeen = recordMessages(bob);
    const laptopSeen = recordMessages(aliceLaptop);
    await waitFor(() => alicePhone.idle() && aliceLaptop.idle() && bob.idle(), "clients live");
    const conv = directConversationId("alice", "bob");
    for (let i = 1; i <= 5; i++) {
      const r = await alicePhone.send({ toUserId: "bob", body: `hello ${i}` });
      expect([r.seq, r.prevSeq, r.conversationId]).toEqual([BigInt(i), BigInt(i - 1), conv]);
    }
    const expected = [1, 2, 3, 4, 5].map((i) => `${conv}:${i}:hello ${i}`);
    await waitFor(() => bobSeen.length === 5 && laptopSeen.length === 5, "pushes");
    expect(bobSeen).toEqual(expected);
    expect(laptopSeen).toEqual(expected);
  });

  it("lets an offline group member catch up through sync on connect", async () => {
    const alice = await t.client("alice");
    const bob = await t.client("bob");
    const bobSeen = recordMessages(bob);
    await waitFor(() => alice.idle() && bob.idle(), "clients live");
    const { conversation } = await alice.conversations.createGroup({ title: "trio", memberUserIds: ["bob", "carol"] });
    const groupId = conversation!.conversationId;
    for (let i = 1; i <= 3; i++) await alice.send({ conversationId: groupId, body: `g${i}` });
    await waitFor(() => bobSeen.length === 3, "bob's pushes");
    const carol = await t.client("carol");
    const carolSeen = recordMessages(carol);
    const sessions: string[] = [];
    carol.on("session", (s) => sessions.push(`${s.conversationId}:${s.lastSeq}:${s.title}`));
    await waitFor(() => carolSeen.length === 3, "carol's sync");
    expect(carolSeen).toEqual([1, 2, 3].map((i) => `${groupId}:${i}:g${i}`));
    expect(sessions).toEqual([`${groupId}:3:trio`]);
  });

  it("repairs a gap when a device misses pushes", async () => {
    const alice = await t.client("alice");
    const bob = await t.client("bob", { faults: { dropPush: (m) => m.seq === 2 || m.seq === 3 } });
    const bobSeen = recordMessages(bob);
    await waitFor(() => alice.idle() && bob.idle(), "clients live");
    for (let i = 1; i <= 4; i++) await alice.send({ toUserId: "bob", body: `m${i}` });
    await waitFor(() => bobSeen.length === 4, "bob's repaired log");
    const conv = directConversationId("alice", "bob");
    expect(bobSeen).toEqual([1, 2, 3, 4].map((i) => `${conv}:${i}:m${i}`));
  });

  it("returns the original result for a repeated client_msg_id and stores one message", async () => {
    const alice = await t.client("alice");
    const bob = await t.client("bob");
    const bobSeen = recordMessages(bob);
    await waitFor(() => alice.idle() && bob.idle(), "clients live");
    const first = await alice.send({ toUserId: "bob", body: "once", clientMsgId: "k-1" });
    const again = await alice.send({ toUserId: "bob", body: "once", clientMsgId: "k-1" });
    expect([first.duplicate, again.duplicate, again.seq, again.messageId]).toEqual([false, true, first.seq, first.messageId]);
    await alice.send({ toUserId: "bob", body: "next" });
    await waitFor(() => bobSeen.length === 2, "bob's pushes");
    expect(bobSeen.map((s) => s.split(":").slice(-1)[0])).toEqual(["once", "next"]);
  });

  it("keeps history, read positions and seqs across a server restart", async () => {
    const alice = await t.client("alice");
    await waitFor(() => alice.idle(), "client live");
    for (let i = 1; i <= 3; i++) await alice.send({ toUserId: "bob", body: `before ${i}` });
    const conv = directConversationId("alice", "bob");
    await alice.markRead(conv, 3);
    await t.stop();
    servers.splice(servers.indexOf(t), 1);
    t = await startTestServer(flags);
    servers.push(t);
    const bob = await t.client("bob");
    const bobSeen = recordMessages(bob);
    const alice2 = await t.client("alice");
    await waitFor(() => bobSeen.length === 3 && alice2.idle(), "bob's sync after the restart");
    const next = await alice2.send({ toUserId: "bob", body: "after" });
    // The old server released the conversation cleanly on stop: no seq skipped.
    expect([next.seq, next.prevSeq]).toEqual([4n, 3n]);
    await waitFor(() => bobSeen.length === 4, "bob's push");
    expect(bobSeen).toEqual([...[1, 2, 3].map((i) => `${conv}:${i}:before ${i}`), `${conv}:4:after`]);
    const sessions = await alice2.conversations.listConversations({});
    expect(sessions.sessions.map((s) => [s.conversationId, s.lastSeq, s.readSeq])).toEqual([[conv, 4n, 3n]]);
  });

  it("keeps one exact chain when two gateways take sends for the same group", async () => {
    const other = await startTestServer(flags);
    servers.push(other);
    const alice = await t.client("alice");
    const bob = await other.client("bob");
    await waitFor(() => alice.idle() && bob.idle(), "clients live");
    const { conversation } = await alice.conversations.createGroup({ title: "split", memberUserIds: ["bob", "carol"] });
    const groupId = conversation!.conversationId;
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? alice : bob).send({ conversationId: groupId, body: `s${i}` })),
    );
    const chain = results.map((r) => [Number(r.seq), Number(r.prevSeq)]).sort((a, b) => a[0]! - b[0]!);
    expect(chain.map(([, prev], i) => prev === (i === 0 ? 0 : chain[i - 1]![0]))).toEqual(chain.map(() => true));
    const carol = await t.client("carol");
    const carolSeen = recordMessages(carol);
    await waitFor(() => carolSeen.length === 20, "carol's sync");
    expect(carolSeen.map((s) => Number(s.split(":")[2]))).toEqual(chain.map(([seq]) => seq));
  });
});
