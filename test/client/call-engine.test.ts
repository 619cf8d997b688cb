import { create } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CallEngine, type CallEffect } from "../../client/call-engine.js";
import { CallPartySchema, CallSchema, CallSignalSchema, CallState, PartyState, type Call, type CallSignal } from "../../gen/im/v1/call_pb.js";

function call(version: number, state: CallState, parties: [string, PartyState, string][], caller = "ann"): Call {
  return create(CallSchema, {
    callId: "c1",
    callerId: caller,
    state,
    version: BigInt(version),
    parties: parties.map(([userId, s, deviceId]) => create(CallPartySchema, { userId, state: s, deviceId })),
  });
}

function signal(seq: number, prev: number, to = "ben-1"): CallSignal {
  return create(CallSignalSchema, { callId: "c1", signalSeq: BigInt(seq), prevSignalSeq: BigInt(prev), toDeviceId: to, signal: { case: "renegotiate", value: {} } });
}

const emitted = (effects: CallEffect[]) => effects.flatMap((e) => (e.type === "emit" ? [e.event] : []));
const applied = (effects: CallEffect[]) => effects.flatMap((e) => (e.type === "apply_signal" ? [Number(e.signal.signalSeq)] : []));

const ringing = call(1, CallState.RINGING, [["ann", PartyState.ACCEPTED, "ann-1"], ["ben", PartyState.INVITED, ""]]);
const answered = (device: string) => call(3, CallState.CONNECTING, [["ann", PartyState.ACCEPTED, "ann-1"], ["ben", PartyState.ACCEPTED, device]]);

describe("CallEngine", () => {
  it("tells a callee's device of an incoming call and acknowledges the ring", () => {
    const e = new CallEngine({ userId: "ben", deviceId: "ben-1" });
    expect(e.snapshot(ringing, 0)).toEqual([
      { type: "emit", event: "incoming", call: ringing },
      { type: "ring", callId: "c1" },
    ]);
  });

  it("says accepted on the answering device and answered elsewhere on the others", () => {
    const here = new CallEngine({ userId: "ben", deviceId: "ben-1" });
    const there = new CallEngine({ userId: "ben", deviceId: "ben-2" });
    for (const e of [here, there]) e.snapshot(ringing, 0);
    expect(emitted(here.snapshot(answered("ben-1"), 0))).toEqual(["accepted"]);
    expect(emitted(there.snapshot(answered("ben-1"), 0))).toEqual(["answered_elsewhere"]);
    expect(here.holds(answered("ben-1"))).toBe(true);
    expect(there.holds(answered("ben-1"))).toBe(false);
  });

  it("tells the caller ringing, accepted and ended, and drops snapshots older than the one it has", () => {
    const e = new CallEngine({ userId: "ann", deviceId: "ann-1" });
    e.snapshot(ringing, 0);
    expect(emitted(e.snapshot(call(2, CallState.RINGING, [["ann", PartyState.ACCEPTED, "ann-1"], ["ben", PartyState.RINGING, ""]]), 0))).toEqual(["ringing"]);
    expect(emitted(e.snapshot(answered("ben-2"), 0))).toEqual(["accepted"]);
    expect(e.snapshot(ringing, 0)).toEqual([]);
    const ended = call(4, CallState.ENDED, [["ann", PartyState.LEFT, "ann-1"], ["ben", PartyState.LEFT, "ben-2"]]);
    expect(emitted(e.snapshot(ended, 0))).toEqual(["ended"]);
    expect(e.liveCalls()).toEqual([]);
  });

  it("sends keepalives for held calls at the interval, with the media state, at once when it changes", () => {
    const e = new CallEngine({ userId: "ben", deviceId: "ben-1", keepaliveIntervalMs: 100 });
    e.snapshot(ringing, 0);
    expect(e.tick(500)).toEqual([]);
    e.snapshot(answered("ben-1"), 500);
    expect(e.tick(550)).toEqual([]);
    expect(e.tick(600)).toEqual([{ type: "keepalive", callId: "c1", mediaConnected: false }]);
    expect(e.mediaState("c1", true, 620)).toEqual([{ type: "keepalive", callId: "c1", mediaConnected: true }]);
    expect(e.tick(719)).toEqual([]);
    expect(e.tick(720)).toEqual([{ type: "keepalive", callId: "c1", mediaConnected: true }]);
  });

  it("checks a gap that does not close with GetCall and renegotiates when the server says signals were lost", () => {
    const e = new CallEngine({ userId: "ben", deviceId: "ben-1", gapWaitMs: 100 });
    e.snapshot(answered("ben-1"), 0);
    expect(applied(e.signal(signal(1, 0), 0))).toEqual([1]);
    expect(e.signal(signal(4, 3), 10)).toEqual([]);
    expect(e.tick(50)).toEqual([]);
    expect(e.tick(110)).toEqual([{ type: "get_call", callId: "c1", afterSignalSeq: 1n }]);
    expect(e.tick(150)).toEqual([]);
    const view = { call: answered("ben-1"), lastSignalSeq: 4n, signalsMissed: true };
    expect(e.callView(view, 160)).toEqual([{ type: "renegotiate", callId: "c1" }]);
    // After the repair the next signal chains onto the server's last one.
    expect(applied(e.signal(signal(6, 4), 170))).toEqual([6]);
  });

  it("after a reconnect checks every live call and restarts ICE on the held ones", () => {
    const e = new CallEngine({ userId: "ben", deviceId: "ben-1" });
    e.snapshot(answered("ben-1"), 0);
    expect(e.reconnected()).toEqual([
      { type: "get_call", callId: "c1", afterSignalSeq: 0n },
      { type: "ice_restart", callId: "c1" },
    ]);
  });

  it("hands out every signal once, in signal_seq order, whatever order and duplication they arrive in", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 30 }).chain((n) => fc.tuple(fc.constant(n), fc.shuffledSubarray([...Array(n).keys(), ...Array(n).keys()], { minLength: 2 * n, maxLength: 2 * n }))),
        ([n, order]) => {
          const e = new CallEngine({ userId: "ben", deviceId: "ben-1", bufferMax: 1000 });
          e.snapshot(answered("ben-1"), 0);
          // Signals 2, 4, 6, ... to this device; the odd ones went to the other side.
          const out = order.flatMap((i) => applied(e.signal(signal(2 * (i + 1), 2 * i), 0)));
          expect(out).toEqual([...Array(n).keys()].map((i) => 2 * (i + 1)));
        },
      ),
    );
  });

  it("ignores signals for another device of the same user", () => {
    const e = new CallEngine({ userId: "ben", deviceId: "ben-2" });
    e.snapshot(answered("ben-1"), 0);
    expect(e.signal(signal(1, 0, "ben-1"), 0)).toEqual([]);
  });

  it("checks a live call it has not heard of for staleCheckMs with GetCall (a lost ended push must not leave it ringing)", () => {
    const e = new CallEngine({ userId: "ben", deviceId: "ben-2", staleCheckMs: 1000 });
    e.snapshot(ringing, 0);
    expect(e.tick(999)).toEqual([]);
    expect(e.tick(1000)).toEqual([{ type: "get_call", callId: "c1", afterSignalSeq: 0n }]);
    // Asked once per period, not at every tick.
    expect(e.tick(1500)).toEqual([]);
    // Hearing of the call, even an old snapshot of it, restarts the period.
    e.snapshot(ringing, 1800);
    expect(e.tick(2500)).toEqual([]);
    expect(e.tick(2800)).toEqual([{ type: "get_call", callId: "c1", afterSignalSeq: 0n }]);
    const ended = call(4, CallState.ENDED, [["ann", PartyState.LEFT, "ann-1"], ["ben", PartyState.MISSED, ""]]);
    expect(emitted(e.callView({ call: ended, lastSignalSeq: 0n, signalsMissed: false }, 2900))).toEqual(["ended"]);
    expect(e.tick(10_000)).toEqual([]);
  });

  it("after leave: no keepalives, a hangup again at each keepalive slot until the call ended", () => {
    const e = new CallEngine({ userId: "ben", deviceId: "ben-1", keepaliveIntervalMs: 100, staleCheckMs: 1e9 });
    e.snapshot(answered("ben-1"), 0);
    e.leave("c1", true);
    expect(e.mediaState("c1", true, 10)).toEqual([]);
    expect(e.tick(99)).toEqual([]);
    expect(e.tick(100)).toEqual([{ type: "hangup", callId: "c1", mediaFailed: true }]);
    expect(e.tick(150)).toEqual([]);
    expect(e.tick(200)).toEqual([{ type: "hangup", callId: "c1", mediaFailed: true }]);
    e.snapshot(call(5, CallState.ENDED, [["ann", PartyState.LEFT, "ann-1"], ["ben", PartyState.LEFT, "ben-1"]]), 250);
    expect(e.tick(400)).toEqual([]);
  });
});
