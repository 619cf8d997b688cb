import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { OwnerReplySchema } from "../../../gen/im/cluster/v1/cluster_pb.js";
import { SendRequestSchema } from "../../../gen/im/v1/gateway_pb.js";
import { ErrorDetailSchema } from "../../../gen/im/v1/message_pb.js";
import { errorReply, OwnerCalls, OwnerSet, type OwnerTransport } from "../../../server/route/owners.js";

const conversations = Array.from({ length: 6000 }, (_, i) => `g:conversation-${i}`);

describe("OwnerSet", () => {
  it("spreads conversations evenly over the live processes", () => {
    const owners = new OwnerSet("w0", ["w0", "w1", "w2"]);
    const counts = new Map<string, number>();
    for (const c of conversations) counts.set(owners.ownerOf(c), (counts.get(owners.ownerOf(c)) ?? 0) + 1);
    expect([...counts.keys()].sort()).toEqual(["w0", "w1", "w2"]);
    for (const n of counts.values()) expect(Math.abs(n - 2000)).toBeLessThan(200);
  });

  it("moves only the departed process's conversations when one leaves, and only the newcomer's share when one joins", () => {
    const before = new OwnerSet("w0", ["w0", "w1", "w2"]);
    const owned = new Map(conversations.map((c) => [c, before.ownerOf(c)]));
    const after = new OwnerSet("w0", ["w0", "w2"]);
    for (const c of conversations) if (owned.get(c) !== "w1") expect(after.ownerOf(c)).toBe(owned.get(c));
    const joined = new OwnerSet("w0", ["w0", "w1", "w2", "w3"]);
    let moved = 0;
    for (const c of conversations) {
      const now = joined.ownerOf(c);
      if (now !== owned.get(c)) {
        expect(now).toBe("w3");
        moved++;
      }
    }
    expect(Math.abs(moved - 1500)).toBeLessThan(200);
  });

  it("agrees across processes and always counts itself in", () => {
    const a = new OwnerSet("w0", ["w1", "w2"]);
    const b = new OwnerSet("w2", ["w0", "w1", "w2"]);
    expect(a.members).toEqual(["w0", "w1", "w2"]);
    for (const c of conversations.slice(0, 100)) expect(a.ownerOf(c)).toBe(b.ownerOf(c));
    expect(b.update(["w0", "w1", "w2"])).toBe(false);
    expect(b.update(["w0"])).toBe(true);
    expect(b.members).toEqual(["w0", "w2"]);
  });
});

/** Two processes' OwnerCalls joined back to back (bytes handed over on a later turn). */
function pair(): { a: OwnerCalls; b: OwnerCalls; cut(): void } {
  const handlers = new Map<string, (kind: "call" | "reply", bytes: Uint8Array) => void>();
  let cut = false;
  const transport = (self: string): OwnerTransport => ({
    available: () => !cut,
    send: (to, kind, bytes) => void setImmediate(() => !cut && handlers.get(to)?.(kind, bytes.slice())),
    onReceive: (receive) => void handlers.set(self, receive),
  });
  return { a: new OwnerCalls("a", transport("a"), { timeoutMs: 1000 }), b: new OwnerCalls("b", transport("b"), { timeoutMs: 1000 }), cut: () => (cut = true) };
}

const sendRequest = { case: "send" as const, value: create(SendRequestSchema, { clientMsgId: "c1" }) };

describe("OwnerCalls", () => {
  it("carries a call to its owner and the owner's reply back, with the caller's user and connection", async () => {
    const { a, b } = pair();
    b.serve(async (call) => {
      expect([call.userId, call.originConnectionId, call.request.case]).toEqual(["ann", "conn-1", "send"]);
      return create(OwnerReplySchema, { callId: call.callId, result: { case: "send", value: { conversationId: "g:x", seq: 5n } } });
    });
    const reply = await a.call("b", "ann", "conn-1", sendRequest);
    expect(reply.result.case === "send" && reply.result.value.seq).toBe(5n);
    expect(a.stats()).toMatchObject({ forwarded: 1, pending: 0 });
    expect(b.stats()).toMatchObject({ served: 1 });
  });

  it("returns the owner's failure with its code and detail", async () => {
    const { a, b } = pair();
    b.serve(async (call) => errorReply(call.callId, new ConnectError("not yours", Code.PermissionDenied)));
    const reply = await a.call("b", "ann", "", sendRequest);
    expect(reply.result.case === "error" && [reply.result.value.code, reply.result.value.message]).toEqual([Code.PermissionDenied, "not yours"]);
  });

  it("fails a call with a retryable UNAVAILABLE once its deadline passes without an answer", async () => {
    const { a, cut } = pair();
    cut();
    a.tick(0);
    const waiting = a.call("b", "ann", "", sendRequest);
    a.tick(999);
    a.tick(1000);
    const error = await waiting.then(() => undefined, (e: unknown) => e as ConnectError);
    expect(error?.code).toBe(Code.Unavailable);
    expect(error?.findDetails(ErrorDetailSchema)[0]?.retryable).toBe(true);
    expect(a.stats()).toMatchObject({ pending: 0, timedOut: 1 });
  });

  it("counts an owner that timed out as unreachable for a while, and a cut transport as unreachable", async () => {
    const handlers = new Map<string, (kind: "call" | "reply", bytes: Uint8Array) => void>();
    let up = true;
    let deliver = false;
    const transport = (self: string): OwnerTransport => ({
      available: () => up,
      send: (to, kind, bytes) => void setImmediate(() => deliver && handlers.get(to)?.(kind, bytes.slice())),
      onReceive: (receive) => void handlers.set(self, receive),
    });
    const a = new OwnerCalls("a", transport("a"), { timeoutMs: 100, suspectMs: 1000 });
    const b = new OwnerCalls("b", transport("b"));
    b.serve(async (call) => create(OwnerReplySchema, { callId: call.callId, result: { case: "send", value: {} } }));
    a.tick(0);
    expect(a.reachable("b")).toBe(true);
    const lost = a.call("b", "ann", "", sendRequest);
    a.tick(100);
    await expect(lost).rejects.toMatchObject({ code: Code.Unavailable });
    expect(a.reachable("b")).toBe(false);
    a.tick(1100);
    expect(a.reachable("b")).toBe(true);
    deliver = true;
    expect((await a.call("b", "ann", "", sendRequest)).result.case).toBe("send");
    up = false;
    expect(a.reachable("b")).toBe(false);
  });

  it("fails at once the calls waiting for an owner that left", async () => {
    const { a, cut } = pair();
    cut();
    const toB = a.call("b", "ann", "", sendRequest);
    const toC = a.call("c", "ann", "", sendRequest);
    a.abandon("b", "gone");
    await expect(toB).rejects.toMatchObject({ code: Code.Unavailable });
    expect(a.stats().pending).toBe(1);
    a.abandon("c", "gone");
    await expect(toC).rejects.toThrow("gone");
  });
});
