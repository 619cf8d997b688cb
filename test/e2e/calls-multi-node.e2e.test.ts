import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, describe, expect, it } from "vitest";
import { CallEndReason, CallState } from "../../gen/im/v1/call_pb.js";
import { GatewayService } from "../../gen/im/v1/gateway_pb.js";
import { CALL_MESSAGE_CONTENT_TYPE } from "../../server/core/call-model.js";
import { DEV_JWT_SECRET, mintToken } from "../../server/gateway/auth.js";
import { CallDevice } from "../support/call-device.js";
import { startNodeProcess, type NodeProcess } from "../support/node-process.js";
import { sharedRedisUrl } from "../support/redis.js";

const redisUrl = sharedRedisUrl();
const dirs: string[] = [];
const nodes: NodeProcess[] = [];
const devices: CallDevice[] = [];
afterAll(async () => {
  await Promise.all(devices.map((d) => d.close()));
  for (const node of nodes) if (node.child.exitCode === null && node.child.signalCode === null) node.kill("SIGTERM");
  await Promise.all(nodes.map((n) => n.exited));
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(redisUrl === "")("calls on two worker processes sharing Redis and one SQLite file", () => {
  it("a worker killed with SIGKILL mid-ring loses nothing: the other worker's tick ends the call NO_ANSWER", async () => {
    const dir = mkdtempSync(join(tmpdir(), "calls-nodes-"));
    dirs.push(dir);
    const run = randomBytes(3).toString("hex");
    const common = ["--workers", "1", "--port", "0", "--data-dir", dir, "--sqlite-sync", "normal", "--redis-url", redisUrl, "--presence-ttl-ms", "1500", "--call-ring-timeout-ms", "3000", "--call-keepalive-timeout-ms", "60000"];
    const [a, b] = await Promise.all([startNodeProcess([...common, "--node-id", `calls-a-${run}`]), startNodeProcess([...common, "--node-id", `calls-b-${run}`])]);
    nodes.push(a!, b!);
    const alice = `alice-${run}`;
    const bob = `bob-${run}`;
    const caller = new CallDevice(alice, "alice-1", createGrpcTransport({ baseUrl: `http://127.0.0.1:${a!.port}` }), await mintToken(DEV_JWT_SECRET, alice));
    const callee = new CallDevice(bob, "bob-1", createGrpcTransport({ baseUrl: `http://127.0.0.1:${b!.port}` }), await mintToken(DEV_JWT_SECRET, bob));
    devices.push(caller, callee);
    await Promise.all([caller.live(), callee.live()]);
    const started = await caller.op("startCall", { target: { case: "toUserId", value: bob }, clientCallId: "k", deviceId: "alice-1", video: false });
    const callId = started.call!.callId;
    // The invitation crossed to the other worker through Redis.
    await callee.waitForState(callId, CallState.RINGING);
    await callee.op("ringCall", { callId, deviceId: "bob-1" });
    a!.kill("SIGKILL");
    expect((await a!.exited).signal).toBe("SIGKILL");
    const ended = await callee.waitForState(callId, CallState.ENDED, 15_000);
    expect(ended.endReason).toBe(CallEndReason.NO_ANSWER);
    const gateway = createClient(GatewayService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${b!.port}` }));
    const page = await gateway.fetchRange(
      { conversationId: started.call!.conversationId, afterSeq: 0n, limit: 10 },
      { headers: { authorization: `Bearer ${await mintToken(DEV_JWT_SECRET, bob)}` } },
    );
    const events = page.messages.filter((m) => m.body?.contentType === CALL_MESSAGE_CONTENT_TYPE).map((m) => (JSON.parse(new TextDecoder().decode(m.body?.data)) as { event: string }).event);
    expect(events).toEqual(["started", "ended"]);
    // The slots are free: bob can call alice again.
    const again = await callee.op("startCall", { target: { case: "toUserId", value: alice }, clientCallId: "k2", deviceId: "bob-1", video: false });
    expect(again.call!.state).toBe(CallState.RINGING);
  });
});
