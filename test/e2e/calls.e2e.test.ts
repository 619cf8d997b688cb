import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CallEndReason, CallState, PartyState, SdpType } from "../../gen/im/v1/call_pb.js";
import { GatewayService } from "../../gen/im/v1/gateway_pb.js";
import { ErrorDetailSchema, ErrorReason } from "../../gen/im/v1/message_pb.js";
import { ConnectError } from "@connectrpc/connect";
import { CALL_MESSAGE_CONTENT_TYPE } from "../../server/core/call-model.js";
import { directConversationId } from "../../server/core/conversation-id.js";
import { CallDevice } from "../support/call-device.js";
import { browserTransport, startTestServer, waitFor, type TestServer } from "../support/test-server.js";

let ts: TestServer;
beforeAll(async () => {
  ts = await startTestServer(["--call-ring-timeout-ms", "1500", "--call-keepalive-timeout-ms", "60000"]);
});
afterAll(async () => {
  await ts?.stop();
});

const devices: CallDevice[] = [];
afterEach(async () => {
  await Promise.all(devices.splice(0).map((d) => d.close()));
});

let run = 0;
/** Two users with two devices each: one on the long connection, one as a browser (unary calls, Subscribe). */
async function twoByTwo(): Promise<{ alice: [CallDevice, CallDevice]; bob: [CallDevice, CallDevice]; names: [string, string] }> {
  run++;
  const names: [string, string] = [`alice${run}`, `bob${run}`];
  const grpc = createGrpcTransport({ baseUrl: ts.baseUrl });
  const browser = browserTransport(ts.baseUrl);
  const make = async (user: string, i: number) => {
    const d = new CallDevice(user, `${user}-${i}`, i === 1 ? grpc : browser, await ts.token(user), i === 1 ? "stream" : "browser");
    devices.push(d);
    return d;
  };
  const alice: [CallDevice, CallDevice] = [await make(names[0], 1), await make(names[0], 2)];
  const bob: [CallDevice, CallDevice] = [await make(names[1], 1), await make(names[1], 2)];
  await Promise.all([...alice, ...bob].map((d) => d.live()));
  return { alice, bob, names };
}

function reasonOf(error: unknown): ErrorReason | undefined {
  return ConnectError.from(error).findDetails(ErrorDetailSchema)[0]?.reason;
}

async function storedCallEvents(user: string, conversationId: string): Promise<string[]> {
  const gateway = createClient(GatewayService, createGrpcTransport({ baseUrl: ts.baseUrl }));
  const page = await gateway.fetchRange({ conversationId, afterSeq: 0n, limit: 100 }, { headers: { authorization: `Bearer ${await ts.token(user)}` } });
  return page.messages
    .filter((m) => m.body?.contentType === CALL_MESSAGE_CONTENT_TYPE)
    .map((m) => JSON.parse(new TextDecoder().decode(m.body?.data)) as { event: string; reason?: string })
    .map((b) => (b.reason === undefined ? b.event : `${b.event}:${b.reason}`));
}

describe("calls over HTTP/2, two users with two devices each", () => {
  it("rings every device, the first to accept wins, the other sees it answered elsewhere; signals reach the answering device", async () => {
    const { alice, bob, names } = await twoByTwo();
    const started = await alice[0].op("startCall", { target: { case: "toUserId", value: names[1] }, clientCallId: "c1", deviceId: alice[0].deviceId, video: true });
    const callId = started.call!.callId;
    expect(started.iceServers.length).toBe(0);
    for (const d of [...alice, ...bob]) await d.waitForState(callId, CallState.RINGING);
    await bob[0].op("ringCall", { callId, deviceId: bob[0].deviceId });
    await bob[1].op("ringCall", { callId, deviceId: bob[1].deviceId });
    await alice[1].waitForCall((c) => c.parties[1]?.ringingDeviceIds.length === 2, "both of bob's devices ringing");
    const accepted = await bob[1].op("acceptCall", { callId, deviceId: bob[1].deviceId });
    expect(accepted.call!.state).toBe(CallState.CONNECTING);
    const late = await bob[0].op("acceptCall", { callId, deviceId: bob[0].deviceId }).catch((e: unknown) => e);
    expect(reasonOf(late)).toBe(ErrorReason.ANSWERED_ELSEWHERE);
    // Answered elsewhere, as bob's first device sees it.
    const seen = await bob[0].waitForState(callId, CallState.CONNECTING);
    expect(seen.parties[1]).toMatchObject({ state: PartyState.ACCEPTED, deviceId: bob[1].deviceId });

    const signal = await alice[0].op("callSignal", {
      callId,
      deviceId: alice[0].deviceId,
      signal: { case: "description", value: { $typeName: "im.v1.SessionDescription", type: SdpType.OFFER, sdp: "v=0 offer", iceRestart: false } },
    });
    expect(signal.signalSeq).toBe(1n);
    await waitFor(() => bob[1].signals(callId).length > 0, "the signal at bob's answering device");
    const got = bob[1].signals(callId)[0]!;
    expect(got).toMatchObject({ signalSeq: 1n, prevSignalSeq: 0n, fromDeviceId: alice[0].deviceId, toDeviceId: bob[1].deviceId });
    expect(got.signal.case === "description" && got.signal.value.sdp).toBe("v=0 offer");
    expect(alice[1].signals(callId)).toEqual([]);
    const fromWrongDevice = await bob[0].op("callSignal", { callId, deviceId: bob[0].deviceId, signal: { case: "renegotiate", value: { $typeName: "im.v1.Renegotiate" } } }).catch((e: unknown) => e);
    expect(reasonOf(fromWrongDevice)).toBe(ErrorReason.ANSWERED_ELSEWHERE);
    const view = await bob[1].op("getCall", { callId, deviceId: bob[1].deviceId, afterSignalSeq: 0n });
    expect(view).toMatchObject({ lastSignalSeq: 1n, signalsMissed: true });

    await bob[1].op("hangupCall", { callId, deviceId: bob[1].deviceId, reason: CallEndReason.UNSPECIFIED });
    for (const d of [...alice, ...bob]) expect((await d.waitForState(callId, CallState.ENDED)).endReason).toBe(CallEndReason.HANGUP);
    expect(await storedCallEvents(names[1], directConversationId(...names))).toEqual(["started", "ended:hangup"]);
  });

  it.each([
    ["decline", CallEndReason.DECLINED, (d: { bob: CallDevice[]; alice: CallDevice[] }, callId: string) => d.bob[1]!.op("declineCall", { callId, deviceId: d.bob[1]!.deviceId })],
    ["cancel", CallEndReason.CANCELLED, (d: { bob: CallDevice[]; alice: CallDevice[] }, callId: string) => d.alice[0]!.op("hangupCall", { callId, deviceId: d.alice[0]!.deviceId, reason: CallEndReason.HANGUP })],
    ["no answer", CallEndReason.NO_ANSWER, async () => {}],
  ])("%s ends the call for every device of both users", async (_name, reason, act) => {
    const all = await twoByTwo();
    const started = await all.alice[0].op("startCall", { target: { case: "toUserId", value: all.names[1] }, clientCallId: "c", deviceId: all.alice[0].deviceId, video: false });
    const callId = started.call!.callId;
    await all.bob[1].waitForState(callId, CallState.RINGING);
    await act(all, callId);
    for (const d of [...all.alice, ...all.bob]) expect((await d.waitForState(callId, CallState.ENDED, 15_000)).endReason).toBe(reason);
    const tag = { [CallEndReason.DECLINED]: "declined", [CallEndReason.CANCELLED]: "cancelled", [CallEndReason.NO_ANSWER]: "no_answer" }[reason as number];
    expect(await storedCallEvents(all.names[0], directConversationId(...all.names))).toEqual(["started", `ended:${tag}`]);
  });

  it("busy: a third user calling someone in a call gets BUSY at once", async () => {
    const { alice, bob, names } = await twoByTwo();
    const first = await alice[0].op("startCall", { target: { case: "toUserId", value: names[1] }, clientCallId: "c", deviceId: alice[0].deviceId, video: false });
    const carol = new CallDevice(`carol${run}`, "carol-1", createGrpcTransport({ baseUrl: ts.baseUrl }), await ts.token(`carol${run}`));
    devices.push(carol);
    await carol.live();
    const busy = await carol.op("startCall", { target: { case: "toUserId", value: names[1] }, clientCallId: "c", deviceId: "carol-1", video: false });
    expect(busy.call).toMatchObject({ state: CallState.ENDED, endReason: CallEndReason.BUSY });
    // Bob's devices are told of the missed call too; the first call still rings.
    await bob[0].waitForState(busy.call!.callId, CallState.ENDED);
    expect(bob[0].latest(first.call!.callId)?.state).toBe(CallState.RINGING);
    const refused = await bob[0].op("startCall", { target: { case: "toUserId", value: `carol${run}` }, clientCallId: "x", deviceId: bob[0].deviceId, video: false }).catch((e: unknown) => e);
    expect(reasonOf(refused)).toBe(ErrorReason.ALREADY_IN_CALL);
  });

  it("refuses malformed call requests with INVALID_ARGUMENT and keeps the connection", async () => {
    const { alice } = await twoByTwo();
    const bad = await alice[0].op("startCall", { target: { case: "toUserId", value: "not a user!" }, clientCallId: "c", deviceId: alice[0].deviceId, video: false }).catch((e: unknown) => e);
    expect(reasonOf(bad)).toBe(ErrorReason.INVALID_ARGUMENT);
    const unknown = await alice[1].op("getCall", { callId: "nope", deviceId: alice[1].deviceId, afterSignalSeq: 0n }).catch((e: unknown) => e);
    expect(reasonOf(unknown)).toBe(ErrorReason.CALL_NOT_FOUND);
    expect((await alice[0].op("getIceServers", {})).iceServers).toEqual([]);
  });
});
