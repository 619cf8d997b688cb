import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CALL_MESSAGE_CONTENT_TYPE, holdsSlot, type CallRecord } from "../../../server/core/call-model.js";
import { directConversationId } from "../../../server/core/conversation-id.js";
import type { CallStore } from "../../../server/store/call-store.js";
import { MemoryCallStore } from "../../../server/store/memory-call-store.js";
import { createCallHarness, TEST_TIMEOUTS, type CallHarness } from "../../support/call-harness.js";

const USERS = ["ann", "ben", "cat"] as const;
const DEVICES = ["d1", "d2"] as const;

type Op =
  | { op: "start"; from: number; to: number; device: number }
  | { op: "ring" | "accept" | "decline" | "hangup" | "keepalive"; user: number; call: number; device: number; flag: boolean }
  | { op: "advance"; ms: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ op: fc.constant("start" as const), from: fc.nat(2), to: fc.nat(2), device: fc.nat(1) }) },
  { weight: 6, arbitrary: fc.record({
    op: fc.constantFrom("ring" as const, "accept" as const, "decline" as const, "hangup" as const, "keepalive" as const),
    user: fc.nat(2),
    call: fc.nat(7),
    device: fc.nat(1),
    flag: fc.boolean(),
  }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 700 }) }) },
);

/** Every call known to the store, by id. */
async function allCalls(store: CallStore, ids: Iterable<string>): Promise<CallRecord[]> {
  const out: CallRecord[] = [];
  for (const id of ids) {
    const c = await store.get(id);
    if (c !== undefined) out.push(c);
  }
  return out;
}

function assertBusyPerUser(calls: CallRecord[]): void {
  for (const user of USERS) {
    const holding = calls.filter((c) => c.state !== "ended" && c.parties.some((p) => p.userId === user && holdsSlot(p.state)));
    expect(holding.length, `${user} is in ${holding.map((c) => c.callId).join(", ")}`).toBeLessThanOrEqual(1);
  }
}

async function run(h: CallHarness, ops: Op[]): Promise<{ ids: Set<string>; answers: Map<string, Set<string>> }> {
  const ids = new Set<string>();
  const order: string[] = [];
  const answers = new Map<string, Set<string>>();
  let n = 0;
  for (const op of ops) {
    if (op.op === "advance") {
      await h.advance(op.ms);
    } else if (op.op === "start") {
      if (op.from === op.to) continue;
      const from = USERS[op.from]!;
      const r = await h.calls.startCall(from, { target: { toUserId: USERS[op.to]! }, clientCallId: `k${n++}`, deviceId: `${from}-${DEVICES[op.device]}`, video: false });
      if (r.ok && !ids.has(r.value.call.callId)) {
        ids.add(r.value.call.callId);
        order.push(r.value.call.callId);
      }
      if (r.ok && r.value.call.callerId !== from) {
        // Glare: this start answered the other call on this device.
        const k = `${r.value.call.callId}/${from}`;
        answers.set(k, new Set([...(answers.get(k) ?? []), `${from}-${DEVICES[op.device]}`]));
      }
    } else {
      // Mostly the newest calls, which are the live ones.
      const callId = order[order.length - 1 - (op.call % Math.max(1, order.length))];
      if (callId === undefined) continue;
      const user = USERS[op.user]!;
      const device = `${user}-${DEVICES[op.device]}`;
      const c = h.calls;
      const r =
        op.op === "ring" ? await c.ring(user, callId, device)
        : op.op === "accept" ? await c.accept(user, callId, device)
        : op.op === "decline" ? await c.decline(user, callId, device)
        : op.op === "hangup" ? await c.hangup(user, callId, device, op.flag ? "media_failed" : "hangup")
        : await c.keepalive(user, callId, device, op.flag);
      if (op.op === "accept" && r.ok) {
        const k = `${callId}/${user}`;
        answers.set(k, new Set([...(answers.get(k) ?? []), device]));
      }
    }
    await h.settled();
    assertBusyPerUser(await allCalls(h.store, ids));
  }
  return { ids, answers };
}

describe("call state machine properties (Calls on the memory store, virtual time)", () => {
  it("exactly one answering device per party, nothing after ENDED, every call ends exactly once, busy per user", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { maxLength: 60 }), async (ops) => {
        // Ended calls are kept past the run, so the checks below read every one.
        const h = createCallHarness({ timeouts: { ...TEST_TIMEOUTS, retentionMs: 1e12 } });
        const { ids, answers } = await run(h, ops);
        for (const devices of answers.values()) expect(devices.size).toBe(1);
        // Past every deadline: ring, connecting, keepalive, message retries.
        for (let i = 0; i < 4; i++) await h.advance(TEST_TIMEOUTS.ringTimeoutMs);
        const calls = await allCalls(h.store, ids);
        expect(calls.length).toBe(ids.size);
        for (const call of calls) {
          expect(call.state).toBe("ended");
          const snapshots = h.publisher.snapshots(call.callId);
          const firstEnd = snapshots.findIndex((s) => s.state === "ended");
          // Ended once, and nothing published after it.
          expect(firstEnd).toBe(snapshots.length - 1);
          const ended = snapshots[firstEnd]!;
          expect({ reason: call.endReason, at: call.endedAtMs, parties: call.parties }).toEqual({ reason: ended.endReason, at: ended.endedAtMs, parties: ended.parties });
          for (let i = 1; i < snapshots.length; i++) expect(snapshots[i]!.version).toBeGreaterThan(snapshots[i - 1]!.version);
          for (const p of call.parties.slice(1)) {
            const won = answers.get(`${call.callId}/${p.userId}`);
            if (won !== undefined) expect(p.deviceId).toBe([...won][0]);
          }
        }
        // Exactly two stored messages per call: started, then ended.
        const perCall = new Map<string, string[]>();
        for (const a of USERS) for (const b of USERS) {
          if (a >= b) continue;
          for (const m of await h.messages.readRange(directConversationId(a, b), 0, undefined, 1000)) {
            if (m.contentType !== CALL_MESSAGE_CONTENT_TYPE) continue;
            const body = JSON.parse(new TextDecoder().decode(m.data)) as { call_id: string; event: string };
            perCall.set(body.call_id, [...(perCall.get(body.call_id) ?? []), body.event]);
          }
        }
        expect(new Set(perCall.keys())).toEqual(ids);
        for (const events of perCall.values()) expect(events).toEqual(["started", "ended"]);
      }),
      { numRuns: 300 },
    );
  });

  it("glare: two users calling each other at once end up in one answered call, whatever the interleaving", async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), async (s) => {
        const inner = new MemoryCallStore();
        // Every store operation yields to the scheduler, which interleaves the two starts.
        const store = new Proxy(inner, {
          get(target, key) {
            const v = Reflect.get(target, key) as unknown;
            if (typeof v !== "function") return v;
            return s.scheduleFunction(async (...args: unknown[]) => (v as (...a: unknown[]) => Promise<unknown>).apply(target, args));
          },
        }) as CallStore;
        const h = createCallHarness({ store });
        const a = h.calls.startCall("ann", { target: { toUserId: "ben" }, clientCallId: "a", deviceId: "ann-d1", video: false });
        const b = h.calls.startCall("ben", { target: { toUserId: "ann" }, clientCallId: "b", deviceId: "ben-d1", video: false });
        await s.waitFor(Promise.all([a, b]));
        const [ra, rb] = [await a, await b];
        expect(ra.ok && rb.ok).toBe(true);
        if (!ra.ok || !rb.ok) return;
        expect(ra.value.call.callId).toBe(rb.value.call.callId);
        const call = await s.waitFor(inner.get(ra.value.call.callId));
        expect(call?.state).toBe("connecting");
        expect(call?.parties.map((p) => p.state)).toEqual(["accepted", "accepted"]);
        expect(await inner.callOf("ann")).toBe(call?.callId);
        expect(await inner.callOf("ben")).toBe(call?.callId);
      }),
      { numRuns: 100 },
    );
  });
});
