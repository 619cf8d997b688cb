import { createClient, Code, ConnectError, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorDetailSchema, ErrorReason } from "../../gen/im/v1/message_pb.js";
import { PushPlatform, PushService } from "../../gen/im/v1/push_pb.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

describe("PushService over gRPC", () => {
  let t: TestServer;
  let client: Client<typeof PushService>;
  const as = async (userId: string) => ({ headers: { authorization: `Bearer ${await t.token(userId)}` } });
  beforeAll(async () => {
    t = await startTestServer();
    client = createClient(PushService, createGrpcTransport({ baseUrl: t.baseUrl }));
  });
  afterAll(async () => {
    await t.stop();
  });

  it("registers, lists and unregisters the caller's own devices", async () => {
    const { device } = await client.registerDevice({ deviceId: "iphone-1", platform: PushPlatform.APNS, token: "a1b2" }, await as("alice"));
    expect(device).toMatchObject({ deviceId: "iphone-1", platform: PushPlatform.APNS, token: "a1b2" });
    expect(Number(device!.registeredAtMs)).toBeGreaterThan(0);
    expect((await client.listDevices({}, await as("alice"))).devices.map((d) => d.deviceId)).toEqual(["iphone-1"]);
    expect((await client.listDevices({}, await as("bob"))).devices).toEqual([]);
    expect((await client.unregisterDevice({ deviceId: "iphone-1" }, await as("bob"))).removed).toBe(false);
    expect((await client.unregisterDevice({ deviceId: "iphone-1" }, await as("alice"))).removed).toBe(true);
    expect((await client.listDevices({}, await as("alice"))).devices).toEqual([]);
  });

  it("moves a token to the user who registers it last", async () => {
    await client.registerDevice({ deviceId: "pixel", platform: PushPlatform.FCM, token: "shared-token" }, await as("carol"));
    await client.registerDevice({ deviceId: "pixel", platform: PushPlatform.FCM, token: "shared-token" }, await as("dave"));
    expect((await client.listDevices({}, await as("carol"))).devices).toEqual([]);
    expect((await client.listDevices({}, await as("dave"))).devices.map((d) => d.token)).toEqual(["shared-token"]);
  });

  it.each([
    ["no platform", { deviceId: "d", platform: PushPlatform.UNSPECIFIED, token: "t" }],
    ["an unknown platform", { deviceId: "d", platform: 7 as PushPlatform, token: "t" }],
    ["an empty token", { deviceId: "d", platform: PushPlatform.FCM, token: "" }],
    ["a bad device id", { deviceId: "has space", platform: PushPlatform.FCM, token: "t" }],
  ])("refuses %s with INVALID_ARGUMENT", async (_what, req) => {
    const error = ConnectError.from(await client.registerDevice(req, await as("erin")).catch((e: unknown) => e));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.findDetails(ErrorDetailSchema)[0]?.reason).toBe(ErrorReason.INVALID_ARGUMENT);
  });

  it("refuses a call without a valid token", async () => {
    const error = ConnectError.from(await client.listDevices({}).catch((e: unknown) => e));
    expect(error.code).toBe(Code.Unauthenticated);
  });
});

describe("PushService on the embedded store", () => {
  it("keeps registrations in the data directory across a restart", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "push-service-"));
    try {
      const flags = ["--store", "sqlite", "--data-dir", dir];
      let t = await startTestServer(flags);
      const headers = { authorization: `Bearer ${await t.token("alice")}` };
      await createClient(PushService, createGrpcTransport({ baseUrl: t.baseUrl })).registerDevice({ deviceId: "iphone", platform: PushPlatform.APNS, token: "ab12" }, { headers });
      await t.stop();
      t = await startTestServer(flags);
      const { devices } = await createClient(PushService, createGrpcTransport({ baseUrl: t.baseUrl })).listDevices({}, { headers });
      expect(devices.map((d) => [d.deviceId, d.token])).toEqual([["iphone", "ab12"]]);
      await t.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
