import { afterEach, describe, expect, it } from "vitest";
import { createCall } from "../../../server/core/call-machine.js";
import type { CallRecord } from "../../../server/core/call-model.js";
import type { LiveRoomRecord } from "../../../server/core/live-room.js";
import type { CallStore } from "../../../server/store/call-store.js";
import { MemoryMessageStore } from "../../../server/store/memory-message-store.js";
import { CALL_MESSAGE_CONTENT_TYPE } from "../../../server/core/call-model.js";
import { createCallHarness, TEST_TIMEOUTS } from "../../support/call-harness.js";

/** Two handles on one store's data, as two workers hold them (the same object for memory). */
export interface CallStorePair {
  readonly a: CallStore;
  readonly b: CallStore;
  close(): Promise<void>;
}

let counter = 0;
function newCall(caller: string, callee: string, nowMs = 1000, clientCallId = `cc${++counter}`): CallRecord {
  return createCall(
    { callId: `call${++counter}`, conversationId: `d:${caller}:${callee}`, callerId: caller, callerDeviceId: "dev", clientCallId, topology: "p2p", video: false, calleeIds: [callee], busyUserIds: [] },
    nowMs,
    TEST_TIMEOUTS,
  );
}

function bump(call: CallRecord, patch: Partial<CallRecord> = {}): CallRecord {
  return { ...call, ...patch, version: call.version + 1 };
}

/** The CallStore contract, run against every adapter. */
export function describeCallStoreContract(name: string, open: () => Promise<CallStorePair>): void {
  describe(`${name} (CallStore contract)`, () => {
    let pair: CallStorePair | undefined;
    afterEach(async () => {
      await pair?.close();
      pair = undefined;
    });
    const stores = async () => (pair = await open());

    it("creates a call with its key and slots, and reads it back", async () => {
      const { a, b } = await stores();
      const call = newCall("ann", "ben");
      expect(await a.create(call, ["ann", "ben"])).toEqual({ kind: "created" });
      expect(await b.get(call.callId)).toEqual(call);
      expect(await b.findByClientCallId("ann", call.clientCallId)).toEqual(call);
      expect(await b.callOf("ann")).toBe(call.callId);
      expect(await b.callOf("ben")).toBe(call.callId);
      expect(await b.get("missing")).toBeUndefined();
      expect(await b.findByClientCallId("ben", call.clientCallId)).toBeUndefined();
    });

    it("keeps Infinity deadlines (nothing due) as they are", async () => {
      const { a } = await stores();
      const call = { ...newCall("ann", "ben"), deadlineMs: Infinity };
      await a.create(call, []);
      expect((await a.get(call.callId))!.deadlineMs).toBe(Infinity);
      expect(await a.claimDue(8e15, 10, "w", 1000)).toEqual([]);
    });

    it("reports a repeated client_call_id as a duplicate and writes nothing", async () => {
      const { a, b } = await stores();
      const call = newCall("ann", "ben");
      await a.create(call, ["ann", "ben"]);
      const again = { ...newCall("ann", "cat"), clientCallId: call.clientCallId };
      expect(await b.create(again, ["ann", "cat"])).toEqual({ kind: "duplicate", call });
      expect(await a.get(again.callId)).toBeUndefined();
      expect(await a.callOf("cat")).toBeUndefined();
    });

    it("claims every slot or none, and says who is busy in which call", async () => {
      const { a, b } = await stores();
      const first = newCall("ann", "ben");
      await a.create(first, ["ann", "ben"]);
      const second = newCall("cat", "ben");
      const outcome = await b.create(second, ["cat", "ben"]);
      expect(outcome.kind).toBe("busy");
      expect(outcome.kind === "busy" ? [...outcome.busy] : []).toEqual([["ben", first.callId]]);
      expect(await a.callOf("cat")).toBeUndefined();
      expect(await a.get(second.callId)).toBeUndefined();
    });

    it("of two concurrent creates for one user, exactly one claims the slot", async () => {
      const { a, b } = await stores();
      const x = newCall("ann", "ben");
      const y = newCall("cat", "ben");
      const [rx, ry] = await Promise.all([a.create(x, ["ann", "ben"]), b.create(y, ["cat", "ben"])]);
      expect([rx.kind, ry.kind].sort()).toEqual(["busy", "created"]);
    });

    it("updates by compare-and-set on the version and frees released slots that point to the call", async () => {
      const { a, b } = await stores();
      const call = newCall("ann", "ben");
      await a.create(call, ["ann", "ben"]);
      const next = bump(call, { state: "ended" });
      expect(await b.update(next, call.version + 5, ["ann"])).toBe(false);
      expect(await a.update(next, call.version, ["ann", "ben"])).toBe(true);
      expect(await b.update(bump(call), call.version, [])).toBe(false);
      expect(await b.get(call.callId)).toEqual(next);
      expect(await b.callOf("ann")).toBeUndefined();
      // A slot held by another call is left alone.
      const other = newCall("ann", "cat");
      await a.create(other, ["ann", "cat"]);
      expect(await b.update(bump(next), next.version, ["ann"])).toBe(true);
      expect(await b.callOf("ann")).toBe(other.callId);
      expect(await b.update(bump(call, { callId: "missing" }), 1, [])).toBe(false);
    });

    it("aliases a client_call_id to an existing call once", async () => {
      const { a, b } = await stores();
      const call = newCall("ann", "ben");
      await a.create(call, ["ann", "ben"]);
      expect(await b.alias("ben", "glare", call.callId)).toBe(call.callId);
      expect(await a.alias("ben", "glare", "other")).toBe(call.callId);
      expect((await a.findByClientCallId("ben", "glare"))?.callId).toBe(call.callId);
    });

    it("claims due calls earliest first, up to the limit, each once until its lease ends or it is updated", async () => {
      const { a, b } = await stores();
      const late = { ...newCall("u1", "u2"), deadlineMs: 3000 };
      const early = { ...newCall("u3", "u4"), deadlineMs: 2000 };
      const future = { ...newCall("u5", "u6"), deadlineMs: 9000 };
      for (const c of [late, early, future]) await a.create(c, []);
      expect((await a.claimDue(5000, 1, "w1", 1000)).map((c) => c.callId)).toEqual([early.callId]);
      expect((await b.claimDue(5000, 10, "w2", 1000)).map((c) => c.callId)).toEqual([late.callId]);
      expect(await b.claimDue(5500, 10, "w2", 1000)).toEqual([]);
      // The lease of w1 ran out: another worker takes the call over.
      expect((await b.claimDue(6000, 10, "w2", 1000)).map((c) => c.callId)).toEqual([early.callId, late.callId]);
      // An update ends the claim and re-indexes the deadline.
      const moved = bump(early, { deadlineMs: 6500 });
      expect(await a.update(moved, early.version, [])).toBe(true);
      expect((await a.claimDue(6600, 10, "w1", 1000)).map((c) => c.callId)).toEqual([moved.callId]);
    });

    it("hands each due deadline to exactly one of two workers racing for it", async () => {
      const { a, b } = await stores();
      const calls = Array.from({ length: 20 }, (_, i) => ({ ...newCall(`r${i}`, `s${i}`), deadlineMs: 1000 + i }));
      for (const c of calls) await a.create(c, []);
      const rounds = await Promise.all([a.claimDue(5000, 7, "w1", 60_000), b.claimDue(5000, 7, "w2", 60_000), a.claimDue(5000, 7, "w3", 60_000), b.claimDue(5000, 7, "w4", 60_000)]);
      const claimed = rounds.flat().map((c) => c.callId);
      expect(claimed.length).toBe(20);
      expect(new Set(claimed).size).toBe(20);
    });

    it("purges a call with its keys and slots at the expected version", async () => {
      const { a, b } = await stores();
      const call = newCall("ann", "ben");
      await a.create(call, ["ann", "ben"]);
      await a.alias("ben", "g", call.callId);
      expect(await b.delete(call.callId, call.version + 1)).toBe(false);
      expect(await b.delete(call.callId, call.version)).toBe(true);
      expect(await a.get(call.callId)).toBeUndefined();
      expect(await a.findByClientCallId("ann", call.clientCallId)).toBeUndefined();
      expect(await a.findByClientCallId("ben", "g")).toBeUndefined();
      expect(await a.callOf("ben")).toBeUndefined();
      expect(await a.claimDue(1e15, 10, "w", 10)).toEqual([]);
      // The key is free for a new call.
      expect((await a.create({ ...newCall("ann", "ben"), clientCallId: call.clientCallId }, ["ann", "ben"])).kind).toBe("created");
    });

    it("writes live rooms by compare-and-set", async () => {
      const { a, b } = await stores();
      const room: LiveRoomRecord = { roomId: `room${++counter}`, hostId: "h", title: "t", speakerIds: [], viewers: [], viewersMax: 3, createdAtMs: 1, version: 1 };
      expect(await a.putRoom(room, 0)).toBe(true);
      expect(await b.putRoom(room, 0)).toBe(false);
      const next = { ...room, speakerIds: ["v"], version: 2 };
      expect(await b.putRoom(next, 1)).toBe(true);
      expect(await a.putRoom({ ...room, version: 2 }, 1)).toBe(false);
      expect(await a.getRoom(room.roomId)).toEqual(next);
      await b.deleteRoom(room.roomId);
      expect(await a.getRoom(room.roomId)).toBeUndefined();
    });

    it("with two workers ticking past a ring deadline, fires exactly one timeout and writes two messages", async () => {
      const { a, b } = await stores();
      const messages = new MemoryMessageStore();
      const timeouts = { ...TEST_TIMEOUTS, keepaliveTimeoutMs: 60_000 };
      const w1 = createCallHarness({ store: a, messages, workerId: "w1", seed: 1, timeouts });
      const w2 = createCallHarness({ store: b, messages, workerId: "w2", seed: 2, timeouts });
      const started = await w1.calls.startCall("ann", { target: { toUserId: "ben" }, clientCallId: `race${++counter}`, deviceId: "ann-1", video: false });
      if (!started.ok) throw new Error(started.message);
      const callId = started.value.call.callId;
      await w1.settled();
      for (const h of [w1, w2]) h.now += TEST_TIMEOUTS.ringTimeoutMs;
      const [n1, n2] = await Promise.all([w1.calls.tick(w1.now), w2.calls.tick(w2.now)]);
      expect(n1 + n2).toBe(1);
      await Promise.all([w1.settled(), w2.settled()]);
      const ended = [...w1.publisher.snapshots(callId), ...w2.publisher.snapshots(callId)].filter((c) => c.state === "ended");
      expect(ended.map((c) => c.endReason)).toEqual(["no_answer"]);
      const log = (await messages.readRange(started.value.call.conversationId, 0, undefined, 10)).filter((m) => m.contentType === CALL_MESSAGE_CONTENT_TYPE);
      expect(log.length).toBe(2);
    });
  });
}
