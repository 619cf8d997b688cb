import { describe, expect, it } from "vitest";
import type { StoredMessage } from "../../server/core/model.js";
import { Checkers, logicalId } from "../../sim/checkers.js";

const clock = { nowMs: 0, events: 0 };
const alice = { index: 0, name: "u0/0" };
const bob = { index: 1, name: "u1/0" };

function msg(seq: number, clientMsgId = `0-${seq}`, conversationId = "g:g0"): StoredMessage {
  return { conversationId, seq, prevSeq: seq - 1, messageId: `m${conversationId}${seq}`, senderId: "u0", sentAtMs: 0, contentType: "text/plain", data: new Uint8Array(), clientMsgId };
}

function logOf(n: number): { checkers: Checkers; log: StoredMessage[] } {
  const checkers = new Checkers(clock);
  const log = Array.from({ length: n }, (_, i) => msg(i + 1));
  for (const m of log) checkers.appended(m);
  return { checkers, log };
}

describe("Checkers", () => {
  it("reports nothing for deliveries that follow the log, per device", () => {
    const { checkers, log } = logOf(3);
    for (const m of log) checkers.delivered(alice, m);
    checkers.delivered(bob, log[0]!);
    checkers.acknowledged(alice, log[2]!);
    checkers.checkEnd(alice, "g:g0", 3);
    expect(checkers.total()).toBe(0);
    expect(checkers.first).toBeUndefined();
  });

  it("order: a delivery ahead of its predecessor (a skip or a reorder)", () => {
    const { checkers, log } = logOf(3);
    checkers.delivered(alice, log[0]!);
    checkers.delivered(alice, log[2]!);
    expect(checkers.reports().order.violations).toBe(1);
    expect(checkers.first).toMatchObject({ checker: "order", conversationId: "g:g0", device: "u0/0" });
  });

  it("duplicate: the same message delivered twice to one device", () => {
    const { checkers, log } = logOf(2);
    checkers.delivered(alice, log[0]!);
    checkers.delivered(alice, log[1]!);
    checkers.delivered(alice, log[1]!);
    expect(checkers.first?.checker).toBe("duplicate");
    expect(checkers.total()).toBe(1);
  });

  it("duplicate: one send stored twice, under its clientMsgId or a renamed retry of it", () => {
    const checkers = new Checkers(clock);
    checkers.appended(msg(1, "0-7"));
    checkers.appended(msg(2, "0-7~2"));
    expect(checkers.reports().duplicate.violations).toBe(1);
    expect(logicalId("0-7~2")).toBe("0-7");
  });

  it("loss: an acknowledged or delivered message that is not in the log", () => {
    const { checkers } = logOf(1);
    const phantom = { ...msg(2), messageId: "phantom" };
    checkers.acknowledged(alice, phantom);
    checkers.delivered(bob, phantom);
    expect(checkers.reports().loss.violations).toBe(2);
    expect(checkers.first?.checker).toBe("loss");
  });

  it("loss: a device at the head that never delivered part of the log", () => {
    const { checkers, log } = logOf(3);
    checkers.delivered(alice, log[0]!);
    checkers.checkEnd(alice, "g:g0", 3);
    expect(checkers.reports().loss.examples[0]?.detail).toContain("seqs 2..3 were never delivered");
  });

  it("invariant: a store append that breaks the chain", () => {
    const checkers = new Checkers(clock);
    checkers.appended(msg(1));
    checkers.appended(msg(3));
    expect(checkers.first?.checker).toBe("invariant");
  });

  it("keeps counting past the examples it shows", () => {
    const { checkers, log } = logOf(1);
    for (let i = 0; i < 8; i++) checkers.delivered({ index: 2 + i, name: `d${i}` }, { ...log[0]!, seq: 5, prevSeq: 4, messageId: "x" });
    expect(checkers.reports().loss).toMatchObject({ violations: 8 });
    expect(checkers.reports().loss.examples).toHaveLength(5);
  });
});
