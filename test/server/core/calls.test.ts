import { describe, expect, it } from "vitest";
import { CALL_MESSAGE_CONTENT_TYPE, type CallRecord } from "../../../server/core/call-model.js";
import { callRoomName } from "../../../server/core/calls.js";
import { directConversationId } from "../../../server/core/conversation-id.js";
import type { Result } from "../../../server/core/result.js";
import { createCallHarness, TEST_TIMEOUTS, type CallHarness } from "../../support/call-harness.js";

function value<T>(r: Result<T>): T {
  if (!r.ok) throw new Error(`${r.reason}: ${r.message}`);
  return r.value;
}

async function start(h: CallHarness, from: string, to: string, id = `${from}-${to}`, device = `${from}-1`): Promise<CallRecord> {
  return value(await h.calls.startCall(from, { target: { toUserId: to }, clientCallId: id, deviceId: device, video: true })).call;
}

/** The stored call messages of a conversation as "event:reason". */
async function callLog(h: CallHarness, conversationId: string): Promise<string[]> {
  await h.settled();
  const messages = await h.messages.readRange(conversationId, 0, undefined, 100);
  return messages
    .filter((m) => m.contentType === CALL_MESSAGE_CONTENT_TYPE)
    .map((m) => JSON.parse(new TextDecoder().decode(m.data)) as { event: string; reason?: string })
    .map((b) => (b.reason === undefined ? b.event : `${b.event}:${b.reason}`));
}

describe("Calls: one-to-one lifecycle", () => {
  it("rings, is answered by the first device, and ends HANGUP with two stored messages", async () => {
    const h = createCallHarness();
    const call = await start(h, "alice", "bob");
    expect(call.state).toBe("ringing");
    expect(value(await h.calls.ring("bob", call.callId, "bob-1")).parties[1]!.state).toBe("ringing");
    await h.calls.ring("bob", call.callId, "bob-2");
    const accepted = value(await h.calls.accept("bob", call.callId, "bob-2"));
    expect(accepted.call.state).toBe("connecting");
    expect(accepted.call.parties[1]).toMatchObject({ state: "accepted", deviceId: "bob-2", ringingDeviceIds: ["bob-1", "bob-2"] });
    const other = await h.calls.accept("bob", call.callId, "bob-1");
    expect(other.ok ? "" : other.reason).toBe("answered_elsewhere");
    // The winning device may repeat its answer.
    expect(value(await h.calls.accept("bob", call.callId, "bob-2")).call.version).toBe(accepted.call.version);
    h.now += 100;
    await h.calls.keepalive("alice", call.callId, "alice-1", true);
    const active = value(await h.calls.keepalive("bob", call.callId, "bob-2", true));
    expect(active.state).toBe("active");
    h.now += 5000 - 100;
    // Keepalives are late here, but hangup comes first.
    const ended = value(await h.calls.hangup("alice", call.callId, "alice-1", "hangup"));
    expect(ended).toMatchObject({ state: "ended", endReason: "hangup" });
    expect(await callLog(h, directConversationId("alice", "bob"))).toEqual(["started", "ended:hangup"]);
    const body = (await h.messages.readRange(directConversationId("alice", "bob"), 0, undefined, 10)).map((m) => JSON.parse(new TextDecoder().decode(m.data)) as { duration_ms?: number });
    expect(body[1]!.duration_ms).toBe(5000);
  });

  it.each([
    ["decline by the callee", "declined", async (h: CallHarness, c: CallRecord) => h.calls.decline("bob", c.callId, "bob-1")],
    ["hangup by the caller while ringing", "cancelled", async (h: CallHarness, c: CallRecord) => h.calls.hangup("alice", c.callId, "alice-1", "hangup")],
    ["hangup by the callee while ringing", "declined", async (h: CallHarness, c: CallRecord) => h.calls.hangup("bob", c.callId, "bob-1", "hangup")],
    ["media failure reported after answering", "media_failed", async (h: CallHarness, c: CallRecord) => {
      await h.calls.accept("bob", c.callId, "bob-1");
      return h.calls.hangup("bob", c.callId, "bob-1", "media_failed");
    }],
  ])("ends on %s with reason %s", async (_what, reason, act) => {
    const h = createCallHarness();
    const call = await start(h, "alice", "bob");
    value(await act(h, call));
    const stored = await h.store.get(call.callId);
    expect(stored).toMatchObject({ state: "ended", endReason: reason });
    expect(await callLog(h, call.conversationId)).toEqual(["started", `ended:${reason}`]);
    // The slots are free again: a new call rings.
    expect((await start(h, "bob", "alice", "again")).state).toBe("ringing");
  });

  it.each([
    ["NO_ANSWER after the ring timeout", "no_answer", async (_h: CallHarness, _c: CallRecord) => {}, TEST_TIMEOUTS.ringTimeoutMs],
    ["ICE_FAILED when media does not connect in time", "ice_failed", async (h: CallHarness, c: CallRecord) => void (await h.calls.accept("bob", c.callId, "bob-1")), TEST_TIMEOUTS.connectTimeoutMs],
  ])("ends %s (a deadline advanced by tick)", async (_what, reason, act, after) => {
    const h = createCallHarness({ timeouts: { ...TEST_TIMEOUTS, keepaliveTimeoutMs: 60_000 } });
    const call = await start(h, "alice", "bob");
    await act(h, call);
    await h.advance(after - 1);
    expect((await h.store.get(call.callId))!.state).not.toBe("ended");
    expect(await h.advance(1)).toBe(1);
    expect(await h.store.get(call.callId)).toMatchObject({ state: "ended", endReason: reason });
    expect(await callLog(h, call.conversationId)).toEqual(["started", `ended:${reason}`]);
  });

  it("ends CONNECTION_LOST when an answering device stops its keepalives", async () => {
    const h = createCallHarness();
    const call = await start(h, "alice", "bob");
    await h.calls.accept("bob", call.callId, "bob-1");
    for (let i = 0; i < 5; i++) {
      h.now += TEST_TIMEOUTS.keepaliveIntervalMs;
      await h.calls.keepalive("alice", call.callId, "alice-1", true);
      await h.calls.keepalive("bob", call.callId, "bob-1", true);
      await h.advance(0);
    }
    expect((await h.store.get(call.callId))!.state).toBe("active");
    for (let i = 0; i < 3; i++) {
      h.now += TEST_TIMEOUTS.keepaliveIntervalMs;
      await h.calls.keepalive("alice", call.callId, "alice-1", true);
      await h.advance(0);
    }
    expect(await h.store.get(call.callId)).toMatchObject({ state: "ended", endReason: "connection_lost" });
  });

  it("ends BUSY at once when the callee is in another call, and still writes both messages", async () => {
    const h = createCallHarness();
    await start(h, "alice", "bob");
    const busy = await start(h, "carol", "bob");
    expect(busy).toMatchObject({ state: "ended", endReason: "busy" });
    expect(busy.parties[1]!.state).toBe("busy");
    expect(await callLog(h, directConversationId("bob", "carol"))).toEqual(["started", "ended:busy"]);
    const refused = await h.calls.startCall("bob", { target: { toUserId: "carol" }, clientCallId: "x", deviceId: "bob-1", video: false });
    expect(refused.ok ? "" : refused.reason).toBe("already_in_call");
  });

  it("turns glare (both calling each other) into one answered call", async () => {
    const h = createCallHarness();
    const first = await start(h, "alice", "bob");
    const second = value(await h.calls.startCall("bob", { target: { toUserId: "alice" }, clientCallId: "b1", deviceId: "bob-3", video: true }));
    expect(second.call.callId).toBe(first.callId);
    expect(second.call.state).toBe("connecting");
    expect(second.call.parties[1]).toMatchObject({ userId: "bob", state: "accepted", deviceId: "bob-3" });
    // Bob's retry of his start returns the same call.
    const retry = value(await h.calls.startCall("bob", { target: { toUserId: "alice" }, clientCallId: "b1", deviceId: "bob-3", video: true }));
    expect(retry).toMatchObject({ duplicate: true, call: { callId: first.callId } });
    expect(await callLog(h, first.conversationId)).toEqual(["started"]);
  });

  it("is idempotent per client_call_id", async () => {
    const h = createCallHarness();
    const a = value(await h.calls.startCall("alice", { target: { toUserId: "bob" }, clientCallId: "k", deviceId: "alice-1", video: false }));
    const b = value(await h.calls.startCall("alice", { target: { toUserId: "bob" }, clientCallId: "k", deviceId: "alice-1", video: false }));
    expect(b).toMatchObject({ duplicate: true, call: { callId: a.call.callId } });
    expect(await callLog(h, a.call.conversationId)).toEqual(["started"]);
  });

  it("refuses strangers, unknown calls and signals before the answer", async () => {
    const h = createCallHarness();
    const call = await start(h, "alice", "bob");
    const stranger = await h.calls.accept("mallory", call.callId, "m-1");
    expect(stranger.ok ? "" : stranger.reason).toBe("not_call_party");
    const unknown = await h.calls.ring("bob", "nope", "bob-1");
    expect(unknown.ok ? "" : unknown.reason).toBe("call_not_found");
    const early = await h.calls.signal("alice", call.callId, "alice-1", { kind: "renegotiate" });
    expect(early.ok ? "" : early.reason).toBe("call_state");
    const self = await h.calls.startCall("alice", { target: { toUserId: "alice" }, clientCallId: "s", deviceId: "a", video: false });
    expect(self.ok ? "" : self.reason).toBe("invalid_argument");
  });

  it("numbers signals per call, relays them to the answering device only, and tells GetCall what was missed", async () => {
    const h = createCallHarness();
    const call = await start(h, "alice", "bob");
    await h.calls.accept("bob", call.callId, "bob-2");
    const offer = { kind: "description" as const, type: "offer" as const, sdp: "v=0", iceRestart: false };
    expect(value(await h.calls.signal("alice", call.callId, "alice-1", offer))).toBe(1);
    expect(value(await h.calls.signal("bob", call.callId, "bob-2", { kind: "renegotiate" }))).toBe(2);
    expect(value(await h.calls.signal("alice", call.callId, "alice-1", { kind: "candidates", candidates: [{ candidate: "c", sdpMid: "0", sdpMLineIndex: 0, usernameFragment: "u" }] }))).toBe(3);
    const signals = h.publisher.events.filter((e) => e.event.type === "signal").map((e) => ({ to: e.userIds, ...(e.event as { signalSeq: number; prevSignalSeq: number; toDeviceId: string }) }));
    expect(signals.map((s) => [s.to, s.signalSeq, s.prevSignalSeq, s.toDeviceId])).toEqual([
      [["bob"], 1, 0, "bob-2"],
      [["alice"], 2, 0, "alice-1"],
      [["bob"], 3, 1, "bob-2"],
    ]);
    const wrongDevice = await h.calls.signal("bob", call.callId, "bob-1", offer);
    expect(wrongDevice.ok ? "" : wrongDevice.reason).toBe("answered_elsewhere");
    expect(value(await h.calls.getCall("bob", call.callId, "bob-2", 1))).toMatchObject({ lastSignalSeq: 3, signalsMissed: true });
    expect(value(await h.calls.getCall("bob", call.callId, "bob-2", 3))).toMatchObject({ lastSignalSeq: 3, signalsMissed: false });
    // No signal content is in the stored record.
    expect(JSON.stringify(await h.store.get(call.callId))).not.toContain("v=0");
  });

  it("publishes each snapshot to every party and purges ended calls after the retention", async () => {
    const h = createCallHarness();
    const call = await start(h, "alice", "bob");
    await h.calls.decline("bob", call.callId, "bob-1");
    expect(h.publisher.snapshots(call.callId).map((c) => c.state)).toEqual(["ringing", "ended"]);
    expect(h.publisher.events.every((e) => e.userIds.join() === "alice,bob")).toBe(true);
    await h.advance(TEST_TIMEOUTS.messageRetryMs);
    await h.advance(TEST_TIMEOUTS.retentionMs);
    expect(await h.store.get(call.callId)).toBeUndefined();
  });

  it("retries a stored message that failed, in order, and writes each once", async () => {
    const h = createCallHarness();
    const original = h.messaging.send.bind(h.messaging);
    let failures = 2;
    h.messaging.send = async (...args) => {
      if (failures-- > 0) throw new Error("store down");
      return original(...args);
    };
    const call = await start(h, "alice", "bob");
    await h.calls.decline("bob", call.callId, "bob-1");
    await h.settled();
    expect(await callLog(h, call.conversationId)).toEqual([]);
    for (let i = 0; i < 4; i++) await h.advance(TEST_TIMEOUTS.messageRetryMs);
    expect(await callLog(h, call.conversationId)).toEqual(["started", "ended:declined"]);
    expect((await h.store.get(call.callId))!.messagesPending).toEqual([]);
  });
});

describe("Calls: group calls on the media server", () => {
  async function group(h: CallHarness): Promise<string> {
    const g = await h.messaging.createGroup("alice", "team", ["bob", "carol"]);
    if (!g.ok) throw new Error(g.message);
    return g.value.id;
  }

  it("rings every member, opens a room, becomes ACTIVE when two are in, and ends when one is left", async () => {
    const h = createCallHarness();
    const conversationId = await group(h);
    const started = value(await h.calls.startCall("alice", { target: { conversationId }, clientCallId: "g", deviceId: "alice-1", video: true }));
    expect(started.call.topology).toBe("sfu");
    expect(started.room?.roomName).toBe(callRoomName(started.call.callId));
    expect(h.media.rooms.has(callRoomName(started.call.callId))).toBe(true);
    const bob = value(await h.calls.accept("bob", started.call.callId, "bob-1"));
    expect(bob.room?.token).toContain('"canPublish":true');
    await h.calls.mediaPresence(callRoomName(started.call.callId), "alice", true);
    const active = value(await h.calls.getCall("alice", started.call.callId, "alice-1", 0)).call;
    expect(active.state).toBe("connecting");
    await h.calls.mediaPresence(callRoomName(started.call.callId), "bob", true);
    expect((await h.store.get(started.call.callId))!.state).toBe("active");
    await h.calls.decline("carol", started.call.callId, "carol-1");
    expect((await h.store.get(started.call.callId))!.state).toBe("active");
    const ended = value(await h.calls.hangup("bob", started.call.callId, "bob-1", "hangup"));
    expect(ended).toMatchObject({ state: "ended", endReason: "hangup" });
    await h.settled();
    expect(h.media.deleted).toEqual([callRoomName(started.call.callId)]);
    expect(await callLog(h, conversationId)).toEqual(["started", "ended:hangup"]);
  });

  it("ends DECLINED when every callee declines and SERVER_ERROR when the media server refuses the room", async () => {
    const h = createCallHarness();
    const conversationId = await group(h);
    const call = value(await h.calls.startCall("alice", { target: { conversationId }, clientCallId: "g", deviceId: "alice-1", video: false })).call;
    await h.calls.decline("bob", call.callId, "bob-1");
    expect((await h.store.get(call.callId))!.state).toBe("ringing");
    await h.calls.decline("carol", call.callId, "carol-1");
    expect(await h.store.get(call.callId)).toMatchObject({ state: "ended", endReason: "declined" });
    h.media.failCreate = true;
    const refused = await h.calls.startCall("alice", { target: { conversationId }, clientCallId: "g2", deviceId: "alice-1", video: false });
    expect(refused.ok ? "" : refused.reason).toBe("media_unavailable");
    const failed = await h.store.findByClientCallId("alice", "g2");
    expect(failed).toMatchObject({ state: "ended", endReason: "server_error" });
  });
});

describe("Calls: live rooms", () => {
  it("admits a bounded number of viewers without publish rights and lets the host promote one", async () => {
    const h = createCallHarness();
    const room = value(await h.calls.createLiveRoom("host", "show"));
    const host = value(await h.calls.joinRoom("host", room.roomId, "host"));
    expect(JSON.parse(host.media.token)).toMatchObject({ canPublish: true });
    const v1 = value(await h.calls.joinRoom("v1", room.roomId, "viewer"));
    expect(JSON.parse(v1.media.token)).toMatchObject({ canPublish: false, canSubscribe: true });
    value(await h.calls.joinRoom("v2", room.roomId, "viewer"));
    const full = await h.calls.joinRoom("v3", room.roomId, "viewer");
    expect(full.ok ? "" : full.reason).toBe("room_full");
    const notYet = await h.calls.joinRoom("v1", room.roomId, "speaker");
    expect(notYet.ok ? "" : notYet.reason).toBe("role_not_allowed");
    const byViewer = await h.calls.setRole("v1", room.roomId, "v2", "speaker");
    expect(byViewer.ok ? "" : byViewer.reason).toBe("role_not_allowed");
    h.media.join(v1.media.token);
    expect(value(await h.calls.setRole("host", room.roomId, "v1", "speaker")).speakerIds).toEqual(["v1"]);
    expect(h.media.rooms.get(v1.media.roomName)!.participants.get("v1")).toEqual({ canPublish: true, canSubscribe: true });
    expect(JSON.parse(value(await h.calls.joinRoom("v1", room.roomId, "speaker")).media.token)).toMatchObject({ canPublish: true });
    value(await h.calls.setRole("host", room.roomId, "v1", "viewer"));
    expect(h.media.rooms.get(v1.media.roomName)!.participants.get("v1")).toEqual({ canPublish: false, canSubscribe: true });
    // A viewer that leaves frees its place.
    await h.calls.mediaPresence(v1.media.roomName, "v2", true);
    await h.calls.mediaPresence(v1.media.roomName, "v2", false);
    value(await h.calls.joinRoom("v3", room.roomId, "viewer"));
  });
});
