import { randomBytes } from "node:crypto";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CallEndReason, CallState, type IceServer } from "../../gen/im/v1/call_pb.js";
import { CallDevice } from "../support/call-device.js";
import { startCoturn, type Coturn } from "../support/coturn.js";
import { startTestServer, waitFor, type TestServer } from "../support/test-server.js";
import { WeriftLeg } from "../support/werift-leg.js";

const legs: WeriftLeg[] = [];
const devices: CallDevice[] = [];
afterEach(async () => {
  await Promise.all(legs.splice(0).map((l) => l.close()));
  await Promise.all(devices.splice(0).map((d) => d.close()));
});

let n = 0;
/** Alice calls bob through `ts`; bob answers; both get their ICE servers from the platform. */
async function answeredCall(ts: TestServer): Promise<{ caller: CallDevice; callee: CallDevice; callId: string; callerIce: IceServer[]; calleeIce: IceServer[] }> {
  n++;
  const transport = createGrpcTransport({ baseUrl: ts.baseUrl });
  const caller = new CallDevice(`alice${n}`, "alice-1", transport, await ts.token(`alice${n}`));
  const callee = new CallDevice(`bob${n}`, "bob-1", transport, await ts.token(`bob${n}`));
  devices.push(caller, callee);
  await Promise.all([caller.live(), callee.live()]);
  const started = await caller.op("startCall", { target: { case: "toUserId", value: `bob${n}` }, clientCallId: "c", deviceId: "alice-1", video: true });
  const callId = started.call!.callId;
  await callee.waitForState(callId, CallState.RINGING);
  const accepted = await callee.op("acceptCall", { callId, deviceId: "bob-1" });
  await caller.waitForState(callId, CallState.CONNECTING);
  return { caller, callee, callId, callerIce: started.iceServers, calleeIce: accepted.iceServers };
}

/** Both legs connected: RTP and data-channel bytes flow both ways, and the call becomes ACTIVE. */
async function mediaFlows(call: Awaited<ReturnType<typeof answeredCall>>, a: WeriftLeg, b: WeriftLeg): Promise<void> {
  await a.offer();
  await waitFor(() => a.pc.connectionState === "connected" && b.pc.connectionState === "connected", "both peers connected", 20_000);
  await waitFor(() => a.channel?.readyState === "open" && b.channel?.readyState === "open", "data channel open", 10_000);
  const deadline = Date.now() + 10_000;
  while ((a.rtpReceived < 20 || b.rtpReceived < 20) && Date.now() < deadline) {
    a.sendRtp(5);
    b.sendRtp(5);
    await new Promise((r) => setTimeout(r, 20));
  }
  expect(a.rtpReceived).toBeGreaterThanOrEqual(20);
  expect(b.rtpReceived).toBeGreaterThanOrEqual(20);
  a.channel!.send("hello from alice");
  b.channel!.send("hello from bob");
  await waitFor(() => a.messages.includes("hello from bob") && b.messages.includes("hello from alice"), "data-channel messages both ways");
  await call.caller.op("callKeepalive", { callId: call.callId, deviceId: "alice-1", mediaConnected: true });
  const kept = await call.callee.op("callKeepalive", { callId: call.callId, deviceId: "bob-1", mediaConnected: true });
  expect(kept.call!.state).toBe(CallState.ACTIVE);
}

describe("one-to-one media between two werift peers through the platform", () => {
  let ts: TestServer;
  beforeAll(async () => {
    ts = await startTestServer([]);
  });
  afterAll(async () => ts?.stop());

  it("carries RTP and data-channel bytes both ways over host candidates", async () => {
    const call = await answeredCall(ts);
    const a = new WeriftLeg(call.caller, call.callId, call.callerIce, "all");
    const b = new WeriftLeg(call.callee, call.callId, call.calleeIce, "all");
    legs.push(a, b);
    await mediaFlows(call, a, b);
  });
});

describe("one-to-one media relayed by coturn with TURN REST credentials", () => {
  let turn: Coturn;
  let ts: TestServer;
  let expired: TestServer;
  beforeAll(async () => {
    turn = await startCoturn(randomBytes(12).toString("hex"));
    const urls = `stun:127.0.0.1:${turn.port},turn:127.0.0.1:${turn.port}?transport=udp`;
    ts = await startTestServer(["--turn-urls", urls, "--turn-secret", turn.secret, "--turn-ttl-s", "600"]);
    expired = await startTestServer(["--turn-urls", urls, "--turn-secret", turn.secret, "--turn-ttl-s", "1", "--call-connect-timeout-ms", "6000"]);
  });
  afterAll(async () => {
    await ts?.stop();
    await expired?.stop();
    await turn?.stop();
  });

  it("connects with a relay-only policy: every path goes through the TURN server", async () => {
    const call = await answeredCall(ts);
    const turnEntry = call.callerIce.find((s) => s.urls.some((u) => u.startsWith("turn:")));
    expect(turnEntry?.username).toMatch(new RegExp(`^\\d+:${call.caller.userId}$`));
    const a = new WeriftLeg(call.caller, call.callId, call.callerIce, "relay");
    const b = new WeriftLeg(call.callee, call.callId, call.calleeIce, "relay");
    legs.push(a, b);
    await mediaFlows(call, a, b);
    for (const leg of [a, b]) {
      const pair = leg.pc.iceTransports[0]!.connection.nominated;
      expect(pair?.localCandidate.type).toBe("relay");
    }
  });

  it("fails the call when the TURN credentials have expired: no relay, ICE_FAILED at the connecting deadline", async () => {
    const call = await answeredCall(expired);
    // The credentials are valid for one second; use them after they ran out.
    await new Promise((r) => setTimeout(r, 2500));
    const a = new WeriftLeg(call.caller, call.callId, call.callerIce, "relay");
    const b = new WeriftLeg(call.callee, call.callId, call.calleeIce, "relay");
    legs.push(a, b);
    // Not awaited: gathering waits for the TURN server's refusals.
    const offering = a.offer();
    const ended = await call.caller.waitForState(call.callId, CallState.ENDED, 20_000);
    expect(ended.endReason).toBe(CallEndReason.ICE_FAILED);
    expect(a.pc.connectionState).not.toBe("connected");
    expect(b.pc.connectionState).not.toBe("connected");
    await offering;
    expect(a.pc.localDescription?.sdp ?? "").not.toContain("typ relay");
  });
});
