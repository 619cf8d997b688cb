import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { directConversationId } from "../../server/core/conversation-id.js";
import { dropKeyspace, rawClient, sharedCassandraContactPoint, uniqueKeyspace } from "../support/cassandra.js";
import { recordMessages, startTestServer, waitFor, type TestServer } from "../support/test-server.js";
import { messagingScenarios } from "./messaging-scenarios.js";

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

  messagingScenarios(() => t);

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
