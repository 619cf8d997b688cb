import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ErrorDetailSchema, ErrorReason } from "../../gen/im/v1/message_pb.js";
import { DisconnectReason, GatewayService } from "../../gen/im/v1/gateway_pb.js";
import { directConversationId } from "../../server/core/conversation-id.js";
import { dropPushes } from "../support/drop-pushes.js";
import { startTestServer, waitFor, recordMessages, type TestServer } from "../support/test-server.js";
import { messagingScenarios } from "./messaging-scenarios.js";

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

  messagingScenarios(() => t);

  it("sees a push lost at the tail of a conversation through its periodic sync", async () => {
    const alice = await t.client("alice");
    const lossy = createGrpcTransport({ baseUrl: t.baseUrl, interceptors: [dropPushes((m) => m.seq === 1n)] });
    const bob = await t.client("bob", { resyncIntervalMs: 300, transport: lossy });
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

  it("learns at once that it joined a group or was removed from one, without waiting for its periodic sync", async () => {
    const alice = await t.client("alice", { resyncIntervalMs: 3_600_000 });
    const bob = await t.client("bob", { resyncIntervalMs: 3_600_000 });
    const sessions: string[] = [];
    const removed: string[] = [];
    bob.on("session", (s) => sessions.push(s.conversationId));
    bob.on("removed", (r) => removed.push(r.conversationId));
    await waitFor(() => alice.idle() && bob.idle(), "clients live");
    const { conversation } = await alice.conversations.createGroup({ title: "news", memberUserIds: ["bob"] });
    const group = conversation!.conversationId;
    await waitFor(() => sessions.includes(group), "bob's session event for the new group");
    await alice.conversations.removeMembers({ conversationId: group, userIds: ["bob"] });
    await waitFor(() => removed.includes(group), "bob's removed event");
  });
});
