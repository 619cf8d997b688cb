import { execFile } from "node:child_process";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BUF, createBufCurlDriver } from "../interop/buf-curl-driver.js";
import { expectReport } from "../interop/expect-report.js";
import { startInteropServer, type InteropServer } from "../interop/interop-server.js";
import { logTimes } from "../interop/plan-file.js";
import { runPlan } from "../interop/run-plan.js";
import { CACHE } from "../interop/toolchains.js";

const run = promisify(execFile);

/** Steps buf curl cannot express, and why. */
const CANNOT = { undecodable_request: "buf curl sends only messages it encodes from JSON" };

/** `buf curl` (the project's dev dependency) runs the interop plan over gRPC, one process per call. */
describe("interop with buf curl", () => {
  let server: InteropServer;
  const image = path.join(CACHE, "buf-schema.binpb");
  beforeAll(async () => {
    mkdirSync(CACHE, { recursive: true });
    [server] = await Promise.all([startInteropServer(), run(BUF, ["build", "-o", image])]);
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("lists every method through server reflection", async () => {
    const { stdout } = await run(BUF, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "--list-methods", `http://${server.target}`]);
    expect(stdout.trim().split("\n").filter((m) => m.startsWith("im.v1."))).toEqual([
      "im.v1.CallService/Accept",
      "im.v1.CallService/CreateLiveRoom",
      "im.v1.CallService/Decline",
      "im.v1.CallService/GetCall",
      "im.v1.CallService/GetIceServers",
      "im.v1.CallService/Hangup",
      "im.v1.CallService/JoinRoom",
      "im.v1.CallService/Keepalive",
      "im.v1.CallService/Ring",
      "im.v1.CallService/SetRole",
      "im.v1.CallService/Signal",
      "im.v1.CallService/StartCall",
      "im.v1.ConversationService/AddMembers",
      "im.v1.ConversationService/CreateGroup",
      "im.v1.ConversationService/ListConversations",
      "im.v1.ConversationService/ListMembers",
      "im.v1.ConversationService/RemoveMembers",
      "im.v1.GatewayService/Connect",
      "im.v1.GatewayService/FetchRange",
      "im.v1.GatewayService/MarkRead",
      "im.v1.GatewayService/Send",
      "im.v1.GatewayService/Subscribe",
      "im.v1.GatewayService/Sync",
      "im.v1.PushService/ListDevices",
      "im.v1.PushService/RegisterDevice",
      "im.v1.PushService/UnregisterDevice",
    ]);
  });

  it("runs the interop plan: long connection, unary calls, refusals with their ErrorDetail, Subscribe", async () => {
    const started = Date.now();
    const report = await runPlan("buf curl", await server.plan(), createBufCurlDriver(`http://${server.target}`, image), CANNOT);
    logTimes("buf curl", { plan: Date.now() - started });
    expectReport(report, { protocol: "grpc", rawDetails: true, contentTypes: ["unary", "stream"], cancelObserved: false, cannot: CANNOT });
  }, 120_000);
});
