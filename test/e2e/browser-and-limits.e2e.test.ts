import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createWritableIterable } from "@connectrpc/connect/protocol";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import {
  ConnectRequestSchema,
  DisconnectReason,
  GatewayService,
  type ConnectRequest,
  type ConnectResponse,
  type SubscribeResponse,
} from "../../gen/im/v1/gateway_pb.js";
import { ConversationService } from "../../gen/im/v1/conversation_pb.js";
import { directConversationId } from "../../server/core/conversation-id.js";
import { dropPushes } from "../support/drop-pushes.js";
import { browserTransport, recordMessages, startTestServer, waitFor, type TestServer } from "../support/test-server.js";

describe("browser path: Subscribe plus unary calls over HTTP/1.1", () => {
  let t: TestServer;
  afterEach(async () => {
    await t.stop();
  });

  it.each([
    ["Connect protocol over HTTP/1.1", (url: string) => browserTransport(url)],
    ["gRPC-Web over HTTP/1.1", (url: string) => createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1" })],
  ])("gives the same results as the long connection (%s)", async (_name, makeTransport) => {
    t = await startTestServer(["--heartbeat-interval-ms", "200"]);
    const transport = makeTransport(t.baseUrl);
    const gateway = createClient(GatewayService, transport);
    const headers = { authorization: `Bearer ${await t.token("bob")}` };
    const abort = new AbortController();
    const frames: SubscribeResponse[] = [];
    const subscribed = (async () => {
      try {
        for await (const f of gateway.subscribe({}, { headers, signal: abort.signal })) frames.push(f);
      } catch {
        // aborted at the end of the test
      }
    })();
    await waitFor(() => t.server.gateway.connectionCount() === 1, "subscription registered");
    const alice = await t.client("alice");
    await waitFor(() => alice.idle(), "alice live");
    await alice.send({ toUserId: "bob", body: "to the browser" });
    await waitFor(() => frames.some((f) => f.frame.case === "message"), "pushed message");
    await waitFor(() => frames.some((f) => f.frame.case === "heartbeatMs"), "server heartbeat");

    const conv = directConversationId("alice", "bob");
    const reply = await gateway.send({ target: { case: "conversationId", value: conv }, clientMsgId: "b-1", body: { contentType: "text/plain", data: new TextEncoder().encode("from the browser") } }, { headers });
    expect(reply.seq).toBe(2n);
    expect(reply.prevSeq).toBe(1n);
    const sync = await gateway.sync({ cursors: [{ conversationId: conv, lastSeq: 1n }] }, { headers });
    expect(sync.sessions.map((s) => s.messages.map((m) => m.seq))).toEqual([[2n]]);
    const read = await gateway.markRead({ conversationId: conv, readSeq: 2n }, { headers });
    expect(read.readSeq).toBe(2n);
    const page = await createClient(ConversationService, transport).listConversations({}, { headers });
    expect(page.sessions.map((s) => [s.conversationId, s.lastSeq, s.readSeq])).toEqual([[conv, 2n, 2n]]);
    abort.abort();
    await subscribed;
  });
});

describe("the SDK in browser mode (Subscribe plus unary calls)", () => {
  let t: TestServer;
  afterEach(async () => {
    await t.stop();
  });

  it("delivers, repairs gaps and catches up like the long connection", async () => {
    t = await startTestServer(["--heartbeat-interval-ms", "200"]);
    const browser = (user: string, options = {}) => t.client(user, { transport: browserTransport(t.baseUrl), mode: "browser", ...options });
    const alice = await browser("alice");
    const lossy = createConnectTransport({ baseUrl: t.baseUrl, httpVersion: "1.1", interceptors: [dropPushes((m) => m.seq === 2n)] });
    const bob = await browser("bob", { transport: lossy });
    const bobSeen = recordMessages(bob);
    const aliceSeen = recordMessages(alice);
    await waitFor(() => alice.idle() && bob.idle(), "browser clients live");
    for (let i = 1; i <= 3; i++) await alice.send({ toUserId: "bob", body: `b${i}` });
    const conv = directConversationId("alice", "bob");
    const expected = [1, 2, 3].map((i) => `${conv}:${i}:b${i}`);
    await waitFor(() => bobSeen.length === 3 && aliceSeen.length === 3, "deliveries");
    expect(bobSeen).toEqual(expected);
    expect(aliceSeen).toEqual(expected);
    const carol = await browser("carol");
    const { conversation } = await alice.conversations.createGroup({ title: "web", memberUserIds: ["carol"] });
    await alice.send({ conversationId: conversation!.conversationId, body: "hi carol" });
    const carolSeen = recordMessages(carol);
    await waitFor(() => carolSeen.length === 1, "carol's push");
    expect(await carol.markRead(conversation!.conversationId, 1)).toBe(1);
  });
});

describe("bounds on a long connection", () => {
  let t: TestServer;
  afterEach(async () => {
    await t.stop();
  });

  it("disconnects a client that does not read its pushes with SLOW_CONSUMER, and stays up", async () => {
    t = await startTestServer(["--push-queue-max", "4", "--push-queue-bytes-max", "100000"]);
    const gateway = createClient(GatewayService, createGrpcTransport({ baseUrl: t.baseUrl }));
    const outgoing = createWritableIterable<ConnectRequest>();
    const responses = gateway.connect(outgoing, { headers: { authorization: `Bearer ${await t.token("bob")}` } });
    const iterator = responses[Symbol.asyncIterator]();
    void outgoing.write(create(ConnectRequestSchema, { requestId: 1n, frame: { case: "ping", value: {} } }));
    await iterator.next(); // the pong: connected. Now stop reading.
    const alice = await t.client("alice");
    await waitFor(() => alice.idle(), "alice live");
    const body = new Uint8Array(30_000);
    // All at once, so pushes pile up faster than a stream that is not read can take them.
    await Promise.all(Array.from({ length: 40 }, () => alice.send({ toUserId: "bob", body })));
    const seen: ConnectResponse[] = [];
    for (let r = await iterator.next(); !r.done; r = await iterator.next()) seen.push(r.value);
    const last = seen[seen.length - 1]!.frame;
    expect(last.case).toBe("disconnect");
    expect(last.case === "disconnect" && last.value.reason).toBe(DisconnectReason.SLOW_CONSUMER);
    expect(seen.filter((f) => f.frame.case === "message").length).toBeLessThan(40);
    outgoing.close();
    // The SDK client of the same user then syncs everything.
    const bob = await t.client("bob");
    const bobSeen = recordMessages(bob);
    await waitFor(() => bobSeen.length === 40, "bob's sync");
  });

  it("drains on shutdown: every client is told SERVER_SHUTDOWN with a reconnect delay", async () => {
    t = await startTestServer();
    const bob = await t.client("bob");
    const reasons: { reason: DisconnectReason; after: number }[] = [];
    bob.on("disconnect", (d) => reasons.push({ reason: d.reason, after: d.reconnectAfterMs }));
    await waitFor(() => bob.idle(), "bob live");
    await t.server.gateway.close({ drainTimeoutMs: 2000, reconnectSpreadMs: 3000 });
    await waitFor(() => reasons.length === 1, "disconnect frame");
    expect(reasons[0]!.reason).toBe(DisconnectReason.SERVER_SHUTDOWN);
    expect(reasons[0]!.after).toBeLessThanOrEqual(3000);
  });
});

describe("the listening socket", () => {
  it("uses the configured accept backlog, so reconnect storms are not reset", async () => {
    const t = await startTestServer(["--listen-backlog", "1000"]);
    try {
      // ss shows a listening socket's backlog in Send-Q (capped by net.core.somaxconn).
      const somaxconn = Number(readFileSync("/proc/sys/net/core/somaxconn", "utf8"));
      const line = execFileSync("ss", ["-ltnH", `sport = :${t.port}`], { encoding: "utf8" }).trim();
      expect(Number(line.split(/\s+/)[2])).toBe(Math.min(1000, somaxconn));
    } finally {
      await t.stop();
    }
  });
});
