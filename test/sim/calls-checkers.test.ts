import { beforeAll, describe, expect, it } from "vitest";
import { createCall } from "../../server/core/call-machine.js";
import type { CallRecord } from "../../server/core/call-model.js";
import { checkCalls, type CallCheckerName, type CallsRunRecord, type StoreWrite } from "../../sim/calls/call-checkers.js";
import { callsConfig } from "../../sim/calls/calls-config.js";
import { runCallsSimulation } from "../../sim/calls/calls-simulation.js";

/** A clean record of a real run, copied for each mutation. */
let clean: CallsRunRecord;

beforeAll(async () => {
  const { result, record } = await runCallsSimulation({ size: "small", seed: 3, config: callsConfig("small") });
  expect(result.verdict.total).toBe(0);
  clean = record;
});

function mutated(change: (r: { -readonly [K in keyof CallsRunRecord]: CallsRunRecord[K] extends readonly (infer T)[] ? T[] : CallsRunRecord[K] }) => void): CallsRunRecord {
  const copy = structuredClone(clean) as never;
  change(copy);
  return copy;
}

function violations(record: CallsRunRecord): Record<CallCheckerName, number> {
  const { reports } = checkCalls(record);
  return Object.fromEntries(Object.entries(reports).map(([k, v]) => [k, v.violations])) as Record<CallCheckerName, number>;
}

/** The history of one call that was answered (a callee party with a device). */
function answeredCall(history: readonly StoreWrite[]): CallRecord {
  const last = new Map<string, CallRecord>();
  for (const w of history) last.set(w.call.callId, w.call);
  const call = [...last.values()].find((c) => c.answeredAtMs > 0 && c.endReason === "hangup");
  if (call === undefined) throw new Error("the run answered no call");
  return call;
}

const TIMEOUTS = { ringTimeoutMs: 45_000, messageRetryMs: 2_000 } as const;

function newCall(id: string, caller: string, callee: string, atMs: number, busy: string[] = []): CallRecord {
  const t = { ...clean.timeouts, ...TIMEOUTS };
  return createCall({ callId: id, conversationId: `d:${caller}:${callee}`, callerId: caller, callerDeviceId: `${caller}-d0`, clientCallId: id, topology: "p2p", video: false, calleeIds: [callee], busyUserIds: busy }, atMs, t);
}

describe("calls checkers: a clean run passes, each mutation is reported by its checker", () => {
  it("passes the unmutated record of a real run", () => {
    expect(checkCalls(clean).total).toBe(0);
  });

  it("answerer: two devices of one user told they answered", () => {
    const r = mutated((x) => {
      const call = answeredCall(x.history);
      const callee = call.parties[1]!;
      const other = callee.deviceId.endsWith("d0") ? callee.deviceId.replace(/d0$/, "d1") : callee.deviceId.replace(/d1$/, "d0");
      x.answers.push({ callId: call.callId, userId: callee.userId, device: `${other}#1`, deviceId: other, atMs: 1 });
      x.answers.push({ callId: call.callId, userId: callee.userId, device: `${callee.deviceId}#1`, deviceId: callee.deviceId, atMs: 1 });
    });
    expect(violations(r).answerer).toBeGreaterThan(0);
  });

  it("answerer: the store changes a party's answering device", () => {
    const r = mutated((x) => {
      const id = answeredCall(x.history).callId;
      const writes = x.history.filter((w) => w.call.callId === id);
      const last = writes[writes.length - 1]!;
      (last.call.parties[1] as { deviceId: string }).deviceId = "someone-else";
    });
    expect(violations(r).answerer).toBeGreaterThan(0);
  });

  it("after-ended: the store changes an ended call", () => {
    const r = mutated((x) => {
      const id = answeredCall(x.history).callId;
      const ended = x.history.filter((w) => w.call.callId === id && w.call.state === "ended").pop()!;
      x.history.push({ atMs: ended.atMs + 1, kind: "update", call: { ...ended.call, state: "active", endReason: "", version: ended.call.version + 1 } });
    });
    expect(violations(r)["after-ended"]).toBeGreaterThan(0);
  });

  it("after-ended: a device told something after it was told ended", () => {
    const r = mutated((x) => {
      const ended = x.deviceEvents.find((e) => e.kind === "ended")!;
      x.deviceEvents.push({ ...ended, kind: "updated", atMs: ended.atMs + 1 });
    });
    expect(violations(r)["after-ended"]).toBeGreaterThan(0);
  });

  it("ended-once: a call that never ended", () => {
    const r = mutated((x) => {
      const id = answeredCall(x.history).callId;
      x.history = x.history.filter((w) => w.call.callId !== id || w.call.state !== "ended");
    });
    expect(violations(r)["ended-once"]).toBeGreaterThan(0);
  });

  it("ended-once: a call that ended twice", () => {
    const r = mutated((x) => {
      const id = answeredCall(x.history).callId;
      const writes = x.history.filter((w) => w.call.callId === id);
      const active = writes.find((w) => w.call.state === "active")!;
      const ended = writes.find((w) => w.call.state === "ended")!;
      x.history.push({ ...active, atMs: ended.atMs + 1 }, { ...ended, atMs: ended.atMs + 2 });
    });
    expect(violations(r)["ended-once"]).toBeGreaterThan(0);
  });

  it.each([
    ["a reason outside the allowed set", (c: { endReason: string }) => (c.endReason = "server_error")],
    ["no_answer before the ring timeout", (c: { endReason: string; answeredAtMs: number }) => ((c.endReason = "no_answer"), (c.answeredAtMs = 0))],
    ["busy for a call that rang", (c: { endReason: string }) => (c.endReason = "busy")],
  ])("ended-once: %s", (_what, change) => {
    const r = mutated((x) => {
      const id = answeredCall(x.history).callId;
      for (const w of x.history) if (w.call.callId === id && w.call.state === "ended") change(w.call as never);
    });
    expect(violations(r)["ended-once"]).toBeGreaterThan(0);
  });

  it("ended-once: a call without its ended message", () => {
    const r = mutated((x) => {
      const id = answeredCall(x.history).callId;
      x.messages = x.messages.filter((m) => m.callId !== id || m.event !== "ended");
    });
    expect(violations(r)["ended-once"]).toBeGreaterThan(0);
  });

  it("busy: a user in two live calls at once", () => {
    const r = mutated((x) => {
      const call = answeredCall(x.history);
      const during = x.history.find((w) => w.call.callId === call.callId && w.call.state === "active")!;
      const callee = call.parties[1]!.userId;
      const intruder = call.callerId === "u0" || callee === "u0" ? "u1" : "u0";
      x.history.push({ atMs: during.atMs, kind: "create", call: newCall("intruder", intruder, callee, call.createdAtMs + 1) });
      x.history.sort((a, b) => a.atMs - b.atMs);
    });
    expect(violations(r).busy).toBeGreaterThan(0);
  });

  it("busy: a call ended BUSY whose callee was in no other call", () => {
    const r = mutated((x) => {
      const busy = newCall("lonely", "u0", "u1", 0, ["u1"]);
      x.history.unshift({ atMs: 0, kind: "create", call: busy });
      x.messages.push({ conversationId: busy.conversationId, callId: "lonely", event: "started" }, { conversationId: busy.conversationId, callId: "lonely", event: "ended", reason: "busy" });
    });
    expect(violations(r)).toMatchObject({ busy: 1, "ended-once": 0 });
  });

  it("glare: two users calling each other at once got two live calls", () => {
    const r = mutated((x) => {
      const a = newCall("ga", "u0", "u1", 10);
      const b = newCall("gb", "u1", "u0", 10);
      x.glare.push({ pair: 999, userId: "u0", toUserId: "u1", sentAtMs: 0, doneAtMs: 30, callId: "ga" }, { pair: 999, userId: "u1", toUserId: "u0", sentAtMs: 0, doneAtMs: 30, callId: "gb" });
      // Both calls as the store would hold them (without the busy violation that would come with it).
      x.history.push({ atMs: 0, kind: "create", call: { ...a, state: "ended", endReason: "hangup", answeredAtMs: 10, endedAtMs: 100_000 } });
      x.history.push({ atMs: 0, kind: "create", call: { ...b, state: "ended", endReason: "hangup", answeredAtMs: 10, endedAtMs: 100_000 } });
    });
    expect(violations(r).glare).toBe(1);
  });

  it("glare: one start refused as in a call while the other's call rang for it", () => {
    const r = mutated((x) => {
      const ringing = newCall("gr", "u1", "u0", 10);
      x.history.push({ atMs: 5, kind: "create", call: ringing });
      x.history.sort((a, b) => a.atMs - b.atMs);
      x.glare.push({ pair: 998, userId: "u0", toUserId: "u1", sentAtMs: 0, doneAtMs: 20, failure: "already_in_call", heldCallId: "gr" }, { pair: 998, userId: "u1", toUserId: "u0", sentAtMs: 0, doneAtMs: 20, callId: "gr" });
    });
    expect(violations(r).glare).toBe(1);
  });

  it("convergence: a device still showing a call the store ended", () => {
    const r = mutated((x) => {
      const view = x.views.find((v) => v.calls.some((c) => c.state === "ENDED"))!;
      const c = view.calls.find((k) => k.state === "ENDED")! as { state: string };
      c.state = "ACTIVE";
    });
    expect(violations(r).convergence).toBe(1);
  });

  it("invariant: an unexpected error", () => {
    const r = mutated((x) => x.errors.push({ atMs: 5, detail: "w0.1: tick failed: boom" }));
    expect(violations(r).invariant).toBe(1);
  });
});
