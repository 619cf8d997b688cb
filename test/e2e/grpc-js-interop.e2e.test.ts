import { create, fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HealthCheckRequestSchema, HealthCheckResponseSchema, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { CreateGroupRequestSchema, CreateGroupResponseSchema } from "../../gen/im/v1/conversation_pb.js";
import {
  ConnectRequestSchema,
  ConnectResponseSchema,
  DisconnectReason,
  SendRequestSchema,
  SendResponseSchema,
  type ConnectResponse,
} from "../../gen/im/v1/gateway_pb.js";
import { directConversationId } from "../../server/core/conversation-id.js";
import { recordMessages, startTestServer, waitFor, type TestServer } from "../support/test-server.js";

const codec = <D extends DescMessage>(schema: D) => ({
  serialize: (m: MessageShape<D>) => Buffer.from(toBinary(schema, m)),
  deserialize: (b: Buffer) => fromBinary(schema, b),
});

function unary<I extends DescMessage, O extends DescMessage>(client: grpc.Client, path: string, i: I, o: O, req: MessageShape<I>, md: grpc.Metadata): Promise<MessageShape<O>> {
  const ci = codec(i);
  const co = codec(o);
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(path, ci.serialize, co.deserialize, req, md, (err, res) => (err ? reject(err) : resolve(res!)));
  });
}

/** The second client stack: @grpc/grpc-js with the generated protobuf-es codecs. */
describe("interop with an @grpc/grpc-js client", () => {
  let t: TestServer;
  let client: grpc.Client;
  const md = async (user: string) => {
    const m = new grpc.Metadata();
    m.set("authorization", `Bearer ${await t.token(user)}`);
    return m;
  };
  beforeAll(async () => {
    t = await startTestServer(["--max-body-bytes", "1024"]);
    client = new grpc.Client(`127.0.0.1:${t.port}`, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    client.close();
    await t.stop();
  });

  it("sends and receives on the bidirectional Connect stream, exchanging with an SDK user", async () => {
    const bob = await t.client("bob");
    const bobSeen = recordMessages(bob);
    await waitFor(() => bob.idle(), "bob live");
    const c = codec(ConnectRequestSchema);
    const r = codec(ConnectResponseSchema);
    const stream = client.makeBidiStreamRequest("/im.v1.GatewayService/Connect", c.serialize, r.deserialize, await md("alice"));
    const frames: ConnectResponse[] = [];
    stream.on("data", (f: ConnectResponse) => frames.push(f));
    stream.write(create(ConnectRequestSchema, { requestId: 1n, frame: { case: "ping", value: { clientTimeMs: 42n } } }));
    stream.write(
      create(ConnectRequestSchema, {
        requestId: 2n,
        frame: { case: "send", value: { target: { case: "toUserId", value: "bob" }, clientMsgId: "g-1", body: { contentType: "text/plain", data: new TextEncoder().encode("from grpc-js") } } },
      }),
    );
    // An invalid frame gets an error answer and the stream stays open.
    stream.write(create(ConnectRequestSchema, { requestId: 3n, frame: { case: "send", value: { clientMsgId: "" } } }));
    await waitFor(() => frames.filter((f) => f.requestId !== 0n).length === 3, "three answers");
    const byId = new Map(frames.map((f) => [f.requestId, f.frame]));
    const pong = byId.get(1n);
    expect(pong?.case === "pong" && pong.value.clientTimeMs).toBe(42n);
    const sent = byId.get(2n);
    expect(sent?.case === "send" && sent.value.seq).toBe(1n);
    const bad = byId.get(3n);
    expect(bad?.case).toBe("error");
    expect(bad?.case === "error" && bad.value.code).toBe(grpc.status.INVALID_ARGUMENT);
    await waitFor(() => bobSeen.length === 1, "bob receives");
    expect(bobSeen[0]).toBe(`${directConversationId("alice", "bob")}:1:from grpc-js`);

    await bob.send({ toUserId: "alice", body: "reply" });
    await waitFor(() => frames.some((f) => f.frame.case === "message"), "alice's push");
    const push = frames.find((f) => f.frame.case === "message")!.frame;
    expect(push.case === "message" && new TextDecoder().decode(push.value.body?.data)).toBe("reply");
    expect(push.case === "message" && push.value.prevSeq).toBe(1n);
    stream.end();
    await new Promise((resolve) => stream.on("end", resolve));
  });

  it("maps refusals to gRPC status codes with an ErrorDetail in the trailers", async () => {
    const meta = await md("dave");
    const group = await unary(client, "/im.v1.ConversationService/CreateGroup", CreateGroupRequestSchema, CreateGroupResponseSchema, create(CreateGroupRequestSchema, { title: "x" }), await md("alice"));
    const err = (await unary(
      client,
      "/im.v1.GatewayService/Send",
      SendRequestSchema,
      SendResponseSchema,
      create(SendRequestSchema, { target: { case: "conversationId", value: group.conversation!.conversationId }, clientMsgId: "d1", body: { contentType: "t", data: new Uint8Array(1) } }),
      meta,
    ).catch((e: unknown) => e)) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
    const bin = err.metadata.get("grpc-status-details-bin")[0] as Buffer | undefined;
    // google.rpc.Status with an im.v1.ErrorDetail in its details.
    expect(bin?.toString("latin1")).toContain("type.googleapis.com/im.v1.ErrorDetail");
    expect(err.details).toContain("not a member");

    const big = (await unary(
      client,
      "/im.v1.GatewayService/Send",
      SendRequestSchema,
      SendResponseSchema,
      create(SendRequestSchema, { target: { case: "toUserId", value: "bob" }, clientMsgId: "d2", body: { contentType: "t", data: new Uint8Array(2048) } }),
      meta,
    ).catch((e: unknown) => e)) as grpc.ServiceError;
    expect(big.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(big.details).toContain("limit is 1024");
  });

  it("ends a long connection that sends an undecodable frame with PROTOCOL_ERROR, and keeps serving", async () => {
    const r = codec(ConnectResponseSchema);
    // Field 1 with wire type 7, which does not exist: no protobuf parser accepts it.
    const garbage = () => Buffer.from([0x0f, 0x01]);
    const stream = client.makeBidiStreamRequest("/im.v1.GatewayService/Connect", garbage, r.deserialize, await md("alice"));
    const frames: ConnectResponse[] = [];
    stream.on("data", (f: ConnectResponse) => frames.push(f));
    const status = new Promise<grpc.StatusObject>((resolve) => stream.on("status", resolve));
    stream.on("error", () => {});
    stream.write({});
    const { code, details, metadata } = await status;
    // Malformed input, with the typed detail every refusal carries.
    expect(code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(decodeURIComponent(details)).toContain("could not be decoded");
    expect((metadata.get("grpc-status-details-bin")[0] as Buffer | undefined)?.toString("latin1")).toContain("type.googleapis.com/im.v1.ErrorDetail");
    const last = frames[frames.length - 1]?.frame;
    expect(last?.case === "disconnect" && last.value.reason).toBe(DisconnectReason.PROTOCOL_ERROR);
    const garbageUnary = await new Promise<grpc.ServiceError | null>((resolve) =>
      client.makeUnaryRequest("/im.v1.GatewayService/Sync", garbage, (b: Buffer) => b, {}, new grpc.Metadata({}), (err) => resolve(err)),
    );
    expect(garbageUnary?.code).toBe(grpc.status.INTERNAL);
    const res = await unary(client, "/grpc.health.v1.Health/Check", HealthCheckRequestSchema, HealthCheckResponseSchema, create(HealthCheckRequestSchema, { service: "" }), new grpc.Metadata());
    expect(res.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
  });

  it("answers the standard health check", async () => {
    const res = await unary(client, "/grpc.health.v1.Health/Check", HealthCheckRequestSchema, HealthCheckResponseSchema, create(HealthCheckRequestSchema, { service: "" }), new grpc.Metadata());
    expect(res.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
  });
});
