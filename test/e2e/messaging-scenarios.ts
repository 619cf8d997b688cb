import { createGrpcTransport } from "@connectrpc/connect-node";
import { expect, it } from "vitest";
import { directConversationId } from "../../server/core/conversation-id.js";
import { dropPushes } from "../support/drop-pushes.js";
import { recordMessages, waitFor, type TestServer } from "../support/test-server.js";

/**
 * The messaging scenarios every store runs end to end: registers them in the calling
 * describe block against the server `server()` returns.
 */
export function messagingScenarios(server: () => TestServer): void {
  it("delivers 1:1 messages to the peer and to the sender's other devices, in order", async () => {
    const alicePhone = await server().client("alice");
    const aliceLaptop = await server().client("alice");
    const bob = await server().client("bob");
    const bobSeen = recordMessages(bob);
    const laptopSeen = recordMessages(aliceLaptop);
    const phoneSeen = recordMessages(alicePhone);
    await waitFor(() => alicePhone.idle() && aliceLaptop.idle() && bob.idle(), "clients live");
    const conv = directConversationId("alice", "bob");
    for (let i = 1; i <= 5; i++) {
      const r = await alicePhone.send({ toUserId: "bob", body: `hello ${i}` });
      expect(r.seq).toBe(BigInt(i));
      expect(r.prevSeq).toBe(BigInt(i - 1));
      expect(r.conversationId).toBe(conv);
    }
    const expected = [1, 2, 3, 4, 5].map((i) => `${conv}:${i}:hello ${i}`);
    await waitFor(() => bobSeen.length === 5 && laptopSeen.length === 5, "pushes");
    expect(bobSeen).toEqual(expected);
    expect(laptopSeen).toEqual(expected);
    // The sending device gets its own messages from the send results, not as pushes.
    expect(phoneSeen).toEqual(expected);
    expect(alicePhone.lastSeq(conv)).toBe(5);
  });

  it("lets an offline group member catch up through sync on connect", async () => {
    const alice = await server().client("alice");
    const bob = await server().client("bob");
    const bobSeen = recordMessages(bob);
    await waitFor(() => alice.idle() && bob.idle(), "clients live");
    const { conversation } = await alice.conversations.createGroup({ title: "trio", memberUserIds: ["bob", "carol"] });
    const groupId = conversation!.conversationId;
    for (let i = 1; i <= 3; i++) await alice.send({ conversationId: groupId, body: `g${i}` });
    await waitFor(() => bobSeen.length === 3, "bob's pushes");
    const carol = await server().client("carol");
    const carolSeen = recordMessages(carol);
    const sessions: string[] = [];
    carol.on("session", (s) => sessions.push(`${s.conversationId}:${s.lastSeq}:${s.title}`));
    await waitFor(() => carolSeen.length === 3, "carol's sync");
    expect(carolSeen).toEqual([1, 2, 3].map((i) => `${groupId}:${i}:g${i}`));
    expect(sessions).toEqual([`${groupId}:3:trio`]);
  });

  it("repairs a gap when a device misses pushes", async () => {
    const alice = await server().client("alice");
    const lossy = createGrpcTransport({ baseUrl: server().baseUrl, interceptors: [dropPushes((m) => m.seq === 2n || m.seq === 3n)] });
    const bob = await server().client("bob", { transport: lossy });
    const bobSeen = recordMessages(bob);
    await waitFor(() => alice.idle() && bob.idle(), "clients live");
    for (let i = 1; i <= 4; i++) await alice.send({ toUserId: "bob", body: `m${i}` });
    await waitFor(() => bobSeen.length === 4, "bob's repaired log");
    const conv = directConversationId("alice", "bob");
    expect(bobSeen).toEqual([1, 2, 3, 4].map((i) => `${conv}:${i}:m${i}`));
  });

  it("returns the original result for a repeated client_msg_id and stores one message", async () => {
    const alice = await server().client("alice");
    const bob = await server().client("bob");
    const bobSeen = recordMessages(bob);
    await waitFor(() => alice.idle() && bob.idle(), "clients live");
    const first = await alice.send({ toUserId: "bob", body: "once", clientMsgId: "k-1" });
    const again = await alice.send({ toUserId: "bob", body: "once", clientMsgId: "k-1" });
    expect(first.duplicate).toBe(false);
    expect(again.duplicate).toBe(true);
    expect(again.seq).toBe(first.seq);
    expect(again.messageId).toBe(first.messageId);
    await alice.send({ toUserId: "bob", body: "next" });
    await waitFor(() => bobSeen.length === 2, "bob's pushes");
    expect(bobSeen.map((s) => s.split(":").slice(-1)[0])).toEqual(["once", "next"]);
  });
}
