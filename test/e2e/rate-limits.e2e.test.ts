import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createWritableIterable } from "@connectrpc/connect/protocol";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConversationService } from "../../gen/im/v1/conversation_pb.js";
import { ConnectRequestSchema, GatewayService, type ConnectRequest, type ConnectResponse } from "../../gen/im/v1/gateway_pb.js";
import { ErrorDetailSchema, ErrorReason } from "../../gen/im/v1/message_pb.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

const body = { contentType: "text/plain", data: new TextEncoder().encode("flood") };

describe("rate limits", () => {
  let t: TestServer;
  beforeAll(async () => {
    // Bursts of 4 s: 4 sends per connection (then one a second), 8 per user (then one per
    // 500 ms), 2 groups per minute. Each bucket starts full, so a burst always passes; slow
    // refills, so a flood meets the limit even on a machine too busy to send quickly.
    t = await startTestServer(["--rate-connection-sends-per-s", "1", "--rate-user-sends-per-s", "2", "--rate-user-groups-per-min", "2", "--rate-burst-s", "4"]);
  });
  afterAll(async () => {
    await t.stop();
  });

  async function longConnection(userId: string) {
    const outgoing = createWritableIterable<ConnectRequest>();
    const gateway = createClient(GatewayService, createGrpcTransport({ baseUrl: t.baseUrl }));
    const responses = gateway.connect(outgoing, { headers: { authorization: `Bearer ${await t.token(userId)}` } })[Symbol.asyncIterator]();
    const answers = new Map<bigint, ConnectResponse>();
    const waiters: (() => void)[] = [];
    void (async () => {
      for (let r = await responses.next(); !r.done; r = await responses.next()) {
        if (r.value.requestId !== 0n) answers.set(r.value.requestId, r.value);
        for (const w of waiters.splice(0)) w();
      }
    })().catch(() => {});
    const answer = async (id: bigint) => {
      while (!answers.has(id)) await new Promise<void>((resolve) => waiters.push(resolve));
      return answers.get(id)!;
    };
    return { outgoing, answer, close: () => outgoing.close() };
  }

  it("answers a flood on the long connection with RESOURCE_EXHAUSTED, RATE_LIMITED and a retry delay, and keeps the connection", async () => {
    const conn = await longConnection("flooder");
    for (let i = 1; i <= 8; i++) {
      void conn.outgoing.write(create(ConnectRequestSchema, { requestId: BigInt(i), frame: { case: "send", value: { target: { case: "toUserId", value: "victim" }, clientMsgId: `f${i}`, body } } }));
    }
    const frames = await Promise.all(Array.from({ length: 8 }, (_, i) => conn.answer(BigInt(i + 1))));
    // The burst passes; the rest is refused (one more may pass if the machine stalled a second).
    expect(frames.slice(0, 4).map((f) => f.frame.case)).toEqual(["send", "send", "send", "send"]);
    const refused = frames.slice(4).filter((f) => f.frame.case === "error");
    expect(refused.length).toBeGreaterThanOrEqual(3);
    for (const f of refused) {
      if (f.frame.case !== "error") throw new Error("not an error frame");
      expect(f.frame.value.code).toBe(Code.ResourceExhausted);
      expect(f.frame.value.detail).toMatchObject({ reason: ErrorReason.RATE_LIMITED, retryable: true });
      expect(f.frame.value.detail!.retryAfterMs).toBeGreaterThan(0);
      expect(f.frame.value.detail!.retryAfterMs).toBeLessThanOrEqual(1000);
      expect(f.frame.value.message).toMatch(/^this connection sent too many messages: retry after \d+ ms$/);
    }
    // The connection is still usable.
    void conn.outgoing.write(create(ConnectRequestSchema, { requestId: 100n, frame: { case: "ping", value: {} } }));
    expect((await conn.answer(100n)).frame.case).toBe("pong");
    conn.close();
  });

  it("limits the user across unary calls too, and leaves other users alone", async () => {
    const gateway = createClient(GatewayService, createGrpcTransport({ baseUrl: t.baseUrl }));
    const as = async (u: string) => ({ headers: { authorization: `Bearer ${await t.token(u)}` } });
    const results = [];
    for (let i = 0; i < 24; i++) {
      results.push(await gateway.send({ target: { case: "toUserId", value: "victim" }, clientMsgId: `u${i}`, body }, await as("unary-flooder")).then(() => "ok", (e: unknown) => ConnectError.from(e)));
    }
    expect(results.slice(0, 8)).toEqual(Array.from({ length: 8 }, () => "ok"));
    const refused = results.filter((r) => r instanceof ConnectError);
    // 24 calls outrun a refill of one per 500 ms even at 100 ms a call.
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused) {
      expect(r.code).toBe(Code.ResourceExhausted);
      expect(r.findDetails(ErrorDetailSchema)[0]).toMatchObject({ reason: ErrorReason.RATE_LIMITED, retryable: true });
      expect(r.findDetails(ErrorDetailSchema)[0]!.retryAfterMs).toBeGreaterThan(0);
    }
    // Another user at the same moment: unaffected.
    const other = await gateway.send({ target: { case: "toUserId", value: "victim" }, clientMsgId: "o1", body }, await as("bystander"));
    expect(other.seq).toBe(1n);
  });

  it("lets the SDK resend after the delay, so every send of a burst is stored once", async () => {
    const sdk = await t.client("patient");
    const sent = await Promise.all(Array.from({ length: 6 }, (_, i) => sdk.send({ toUserId: "victim", body: `p${i}` })));
    expect(sent.map((s) => Number(s.seq)).sort((a, b) => a - b)).toEqual(Array.from({ length: 6 }, (_, i) => i + 1));
    expect(sent.every((s) => !s.duplicate)).toBe(true);
  });

  it("limits groups created per minute", async () => {
    const conversations = createClient(ConversationService, createGrpcTransport({ baseUrl: t.baseUrl }));
    const headers = { authorization: `Bearer ${await t.token("founder")}` };
    await conversations.createGroup({ title: "one" }, { headers });
    await conversations.createGroup({ title: "two" }, { headers });
    const error = ConnectError.from(await conversations.createGroup({ title: "three" }, { headers }).catch((e: unknown) => e));
    expect(error.code).toBe(Code.ResourceExhausted);
    expect(error.findDetails(ErrorDetailSchema)[0]).toMatchObject({ reason: ErrorReason.RATE_LIMITED, retryable: true });
    expect(error.findDetails(ErrorDetailSchema)[0]!.retryAfterMs).toBeGreaterThan(20_000);
  });
});
