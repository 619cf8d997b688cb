import { create, fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HealthCheckRequestSchema, HealthCheckResponseSchema, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { ConnectRequestSchema, ConnectResponseSchema, DisconnectReason, type ConnectResponse } from "../../gen/im/v1/gateway_pb.js";
import { expectReport } from "../interop/expect-report.js";
import { createGrpcJsDriver } from "../interop/grpc-js-driver.js";
import { startInteropServer, type InteropServer } from "../interop/interop-server.js";
import { runPlan } from "../interop/run-plan.js";
import { statusJsonFromDetailsBin } from "../interop/status-details.js";

const codec = <D extends DescMessage>(schema: D) => ({
  serialize: (m: MessageShape<D>) => Buffer.from(toBinary(schema, m)),
  deserialize: (b: Buffer) => fromBinary(schema, b),
});

/** @grpc/grpc-js with the generated protobuf-es codecs, against a server process. */
describe("interop with an @grpc/grpc-js client", () => {
  let server: InteropServer;
  let client: grpc.Client;
  const md = async (user: string) => {
    const m = new grpc.Metadata();
    m.set("authorization", `Bearer ${await server.token(user)}`);
    return m;
  };
  beforeAll(async () => {
    server = await startInteropServer();
    client = new grpc.Client(server.target, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    client?.close();
    await server?.stop();
  });

  it("runs the interop plan: long connection, unary calls, refusals with their ErrorDetail, Subscribe", async () => {
    const report = await runPlan("grpc-js", await server.plan(), createGrpcJsDriver(client));
    expectReport(report, { protocol: "grpc", rawDetails: true, contentTypes: ["unary", "stream"], cancelObserved: true });
  });

  /** Opens a long connection as alice whose frames are written by `serialize`; returns how it ended. */
  async function badLongConnection(serialize: () => Buffer) {
    const r = codec(ConnectResponseSchema);
    const stream = client.makeBidiStreamRequest("/im.v1.GatewayService/Connect", serialize, r.deserialize, await md("alice"));
    const frames: ConnectResponse[] = [];
    stream.on("data", (f: ConnectResponse) => frames.push(f));
    stream.on("error", () => {});
    const status = new Promise<grpc.StatusObject>((resolve) => stream.on("status", resolve));
    stream.write({});
    const end = await status;
    const bin = end.metadata.get("grpc-status-details-bin")[0] as Buffer | undefined;
    return { code: end.code, details: end.details, status: bin === undefined ? undefined : statusJsonFromDetailsBin(bin.toString("base64")), last: frames[frames.length - 1]?.frame };
  }

  it("ends a long connection that sends an undecodable frame: PROTOCOL_ERROR, then INVALID_ARGUMENT with an ErrorDetail", async () => {
    // Field 1 with wire type 7, which does not exist: no protobuf parser accepts it.
    const end = await badLongConnection(() => Buffer.from([0x0f, 0x01]));
    const message = "a request message could not be decoded as im.v1.ConnectRequest: illegal tag: field no 1 wire type 7";
    expect(end.last?.case === "disconnect" && end.last.value).toMatchObject({ reason: DisconnectReason.PROTOCOL_ERROR, message });
    expect(end.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(end.details).toBe(message);
    expect(end.status).toEqual({ code: 3, message, details: [{ "@type": "type.googleapis.com/im.v1.ErrorDetail", reason: "ERROR_REASON_INVALID_ARGUMENT" }] });
  });

  it("ends a long connection whose frame is over --max-frame-bytes: RESOURCE_EXHAUSTED with an ErrorDetail", async () => {
    const frame = create(ConnectRequestSchema, { requestId: 1n, frame: { case: "send", value: { target: { case: "toUserId", value: "bob" }, clientMsgId: "f", body: { contentType: "t", data: new Uint8Array(5000) } } } });
    const size = toBinary(ConnectRequestSchema, frame).byteLength;
    const end = await badLongConnection(() => Buffer.from(toBinary(ConnectRequestSchema, frame)));
    const message = `a request message of ${size} bytes is over the limit of 4096`;
    expect(end.last?.case === "disconnect" && end.last.value).toMatchObject({ reason: DisconnectReason.PROTOCOL_ERROR, message });
    expect(end.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(end.status).toEqual({ code: 8, message, details: [{ "@type": "type.googleapis.com/im.v1.ErrorDetail", reason: "ERROR_REASON_LIMIT_EXCEEDED" }] });
  });

  it("answers the standard health check", async () => {
    const c = codec(HealthCheckRequestSchema);
    const r = codec(HealthCheckResponseSchema);
    const res = await new Promise<MessageShape<typeof HealthCheckResponseSchema>>((resolve, reject) =>
      client.makeUnaryRequest("/grpc.health.v1.Health/Check", c.serialize, r.deserialize, create(HealthCheckRequestSchema, { service: "" }), new grpc.Metadata(), (err, v) => (err ? reject(err) : resolve(v!))),
    );
    expect(res.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
  });
});
