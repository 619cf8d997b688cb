import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ErrorDetailSchema, ErrorReason } from "../../gen/im/v1/message_pb.js";
import { DisconnectReason, GatewayService } from "../../gen/im/v1/gateway_pb.js";
import { directConversationId } from "../../server/core/conversation-id.js";
import { recordMessages, startTestServer, waitFor, type TestServer } from "../support/test-server.js";

function reasonOf(error: unknown): ErrorReason | undefined {
  return ConnectError.from(error).findDetails(ErrorDetailSchema)[0]?.reason;
}

describe("gateway over HTTP/2 with the SDK client", () => {
  let t: TestServer;
  beforeEach(async () => {
    t = await startTestServer(["--max-body-bytes", "1024", "--max-frame-bytes", "4096"]);
  });
  afterEach(async () => {
    await t.stop();
  });

  it("delivers 1:1 messages to the peer and to the sender's other devices, in order", async () => {
    const alicePhone = await t.client("alice");
    const aliceLaptop = await t.client("alice");
    const bob = await t.client("bob");
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

  it("sees a push lost at the tail of a conversation through its periodic sync", async () => {
    const alice = await t.client("alice");
    const bob = await t.client("bob", { resyncIntervalMs: 300, faults: { dropPush: (m) => m.seq === 1 } });
    const bobSeen = recordMessages(bob);
    await waitFor(() => alice.idle() && bob.idle(), "clients live");
    await alice.send({ toUserId: "bob", body: "only one" });
    await waitFor(() => bobSeen.length === 1, "bob's resync");
  });

  it("moves its own read position with the answer to markRead", async () => {
    const alice = await t.client("alice");
    const reads: number[] = [];
    alice.on("read", (r) => reads.push(r.readSeq));
    await waitFor(() => alice.idle(), "client live");
    const r = await alice.send({ toUserId: "bob", body: "x" });
    expect(await alice.markRead(r.conversationId, 1)).toBe(1);
    expect(reads).toEqual([1]);
    expect(alice.cursors()).toEqual([{ conversationId: r.conversationId, lastSeq: 1, readSeq: 1 }]);
  });

  it("returns the original result for a repeated client_msg_id and stores one message", async () => {
    const alice = await t.client("alice");
    const bob = await t.client("bob");
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

  it("refuses non-members with PERMISSION_DENIED and keeps the connection usable", async () => {
    const alice = await t.client("alice");
    const dave = await t.client("dave");
    await waitFor(() => alice.idle() && dave.idle(), "clients live");
    const { conversation } = await alice.conversations.createGroup({ title: "private", memberUserIds: ["bob"] });
    const err = await dave.send({ conversationId: conversation!.conversationId, body: "let me in" }).catch((e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.PermissionDenied);
    expect(reasonOf(err)).toBe(ErrorReason.NOT_MEMBER);
    const direct = await dave.send({ conversationId: directConversationId("alice", "bob"), body: "hi" }).catch((e: unknown) => e);
    expect(ConnectError.from(direct).code).toBe(Code.PermissionDenied);
    const members = await dave.conversations.listMembers({ conversationId: conversation!.conversationId }).catch((e: unknown) => e);
    expect(ConnectError.from(members).code).toBe(Code.PermissionDenied);
    // Same connection, next request succeeds.
    const ok = await dave.send({ toUserId: "alice", body: "hi" });
    expect(ok.seq).toBe(1n);
  });

  it("refuses an oversized body with INVALID_ARGUMENT and an oversized frame with RESOURCE_EXHAUSTED", async () => {
    const alice = await t.client("alice");
    await waitFor(() => alice.idle(), "client live");
    const big = await alice.send({ toUserId: "bob", body: new Uint8Array(1025) }).catch((e: unknown) => e);
    expect(ConnectError.from(big).code).toBe(Code.InvalidArgument);
    expect(reasonOf(big)).toBe(ErrorReason.BODY_TOO_LARGE);
    const fits = await alice.send({ toUserId: "bob", body: new Uint8Array(1024) });
    expect(fits.seq).toBe(1n);

    const gateway = createClient(GatewayService, createGrpcTransport({ baseUrl: t.baseUrl }));
    const headers = { authorization: `Bearer ${await t.token("alice")}` };
    const huge = await gateway
      .send({ target: { case: "toUserId", value: "bob" }, clientMsgId: "huge", body: { contentType: "x", data: new Uint8Array(8192) } }, { headers })
      .catch((e: unknown) => e);
    expect(ConnectError.from(huge).code).toBe(Code.ResourceExhausted);
    // The server keeps serving.
    const after = await gateway.send({ target: { case: "toUserId", value: "bob" }, clientMsgId: "small", body: { contentType: "x", data: new Uint8Array(8) } }, { headers });
    expect(after.seq).toBe(2n);
  });

  it.each([
    ["no header", undefined, "missing authorization header (expected: Bearer <JWT>)"],
    ["not bearer", "Basic abc", "authorization header must be: Bearer <JWT>"],
    ["garbage token", "Bearer not.a.jwt", "token is malformed"],
  ])("refuses %s with UNAUTHENTICATED", async (_name, authorization, message) => {
    const gateway = createClient(GatewayService, createGrpcTransport({ baseUrl: t.baseUrl }));
    const headers: Record<string, string> = authorization === undefined ? {} : { authorization };
    const err = await gateway.sync({}, { headers }).catch((e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.Unauthenticated);
    expect(ConnectError.from(err).rawMessage).toBe(message);
    expect(reasonOf(err)).toBe(ErrorReason.UNAUTHENTICATED);
  });

  it("refuses an expired token and one signed with another secret", async () => {
    const gateway = createClient(GatewayService, createGrpcTransport({ baseUrl: t.baseUrl }));
    const expired = await t.token("alice", -60);
    const e1 = await gateway.sync({}, { headers: { authorization: `Bearer ${expired}` } }).catch((e: unknown) => e);
    expect(ConnectError.from(e1).rawMessage).toBe("token expired");
    const { mintToken } = await import("../../server/gateway/auth.js");
    const forged = await mintToken("another-secret", "alice");
    const e2 = await gateway.sync({}, { headers: { authorization: `Bearer ${forged}` } }).catch((e: unknown) => e);
    expect(ConnectError.from(e2).code).toBe(Code.Unauthenticated);
    expect(ConnectError.from(e2).rawMessage).toBe("token signature is invalid");
  });

  it("tells a long connection TOKEN_EXPIRED when its token runs out", async () => {
    const bob = await t.client("bob", { token: await t.token("bob", 2) });
    const reasons: DisconnectReason[] = [];
    bob.on("disconnect", (d) => reasons.push(d.reason));
    await waitFor(() => reasons.length > 0, "token expiry disconnect", 8000);
    expect(reasons[0]).toBe(DisconnectReason.TOKEN_EXPIRED);
  });

  it("answers range fetches out of bounds with OUT_OF_RANGE", async () => {
    const alice = await t.client("alice");
    await waitFor(() => alice.idle(), "client live");
    await alice.send({ toUserId: "bob", body: "1" });
    const gateway = createClient(GatewayService, createGrpcTransport({ baseUrl: t.baseUrl }));
    const headers = { authorization: `Bearer ${await t.token("alice")}` };
    const conv = directConversationId("alice", "bob");
    const err = await gateway.fetchRange({ conversationId: conv, afterSeq: 5n }, { headers }).catch((e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.OutOfRange);
    const missing = await gateway.fetchRange({ conversationId: "g:nope" }, { headers }).catch((e: unknown) => e);
    expect(ConnectError.from(missing).code).toBe(Code.NotFound);
    const ok = await gateway.fetchRange({ conversationId: conv, afterSeq: 0n }, { headers });
    expect(ok.messages.map((m) => m.seq)).toEqual([1n]);
    expect(ok.lastSeq).toBe(1n);
  });
});
