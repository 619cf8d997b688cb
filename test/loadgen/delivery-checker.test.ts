import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DeliveryChecker, mergeCheckReports, passed, type Delivery, type FindingKind } from "../../loadgen/delivery-checker.js";
import { SendLedger } from "../../loadgen/send-ledger.js";

const CONV = "g:room";

/** A correct log of `n` messages and the senders' ledger for it. */
function log(n: number, conversationId = CONV): { messages: Delivery[]; ledger: SendLedger } {
  const ledger = new SendLedger();
  const messages = Array.from({ length: n }, (_, i) => ({ conversationId, seq: i + 1, prevSeq: i, messageId: `m${i + 1}` }));
  for (const m of messages) ledger.acked(m.conversationId, m.seq, m.messageId);
  return { messages, ledger };
}

function check(delivered: readonly Delivery[], ledger: SendLedger, conversations = [CONV]) {
  const checker = new DeliveryChecker();
  checker.track("dev", conversations);
  for (const m of delivered) checker.record("dev", m);
  return checker.verify(ledger.expectations());
}

describe("DeliveryChecker", () => {
  it("passes a complete log delivered in order, once", () => {
    const { messages, ledger } = log(5);
    const report = check(messages, ledger);
    expect(passed(report)).toBe(true);
    expect(report).toMatchObject({ pairsChecked: 1, deliveries: 5, missingMessages: 0, findings: [] });
  });

  const swap = (m: Delivery[]) => [m[0]!, m[2]!, m[1]!, m[3]!, m[4]!];
  it.each<[string, (m: Delivery[]) => Delivery[], FindingKind]>([
    ["a message delivered twice", (m) => [...m.slice(0, 3), m[2]!, ...m.slice(3)], "duplicate"],
    ["two messages swapped", swap, "out-of-order"],
    ["a message skipped", (m) => [...m.slice(0, 2), ...m.slice(3)], "out-of-order"],
    ["the last messages never delivered", (m) => m.slice(0, 3), "missing"],
    ["a message from another conversation", (m) => [...m, { conversationId: "g:other", seq: 1, prevSeq: 0, messageId: "x" }], "unexpected-conversation"],
    ["the right seqs with other message ids", (m) => m.map((d, i) => (i === 3 ? { ...d, messageId: "forged" } : d)), "content-mismatch"],
  ])("fails on %s", (_what, mutate, kind) => {
    const { messages, ledger } = log(5);
    const report = check(mutate(messages), ledger);
    expect(passed(report)).toBe(false);
    expect(report.counts[kind]).toBeGreaterThan(0);
    expect(report.findings[0]).toMatchObject({ kind, deviceId: "dev" });
  });

  it("counts the messages missing at the end", () => {
    const { messages, ledger } = log(10);
    expect(check(messages.slice(0, 4), ledger).missingMessages).toBe(6);
  });

  it("gives the same verdict when asked twice", () => {
    const { messages, ledger } = log(5);
    const checker = new DeliveryChecker();
    checker.track("dev", [CONV]);
    for (const m of messages.slice(0, 2)) checker.record("dev", m);
    const first = checker.verify(ledger.expectations());
    expect(checker.verify(ledger.expectations())).toEqual(first);
    expect(first.counts.missing).toBe(1);
  });

  it("continues a device's chain across a reconnect: a re-delivered message is a duplicate", () => {
    const { messages, ledger } = log(4);
    const checker = new DeliveryChecker();
    checker.track("dev", [CONV]);
    for (const m of messages.slice(0, 2)) checker.record("dev", m);
    checker.track("dev", [CONV]); // the device reconnects: tracking again keeps its state
    for (const m of messages.slice(1)) checker.record("dev", m);
    const report = checker.verify(ledger.expectations());
    expect(report.counts.duplicate).toBe(1);
    expect(report.counts.missing).toBe(0);
  });

  it("does not compare content when the ledger cannot vouch for it (a send failed)", () => {
    const { messages, ledger } = log(3);
    ledger.failed(CONV);
    const report = check(messages.map((m) => ({ ...m, messageId: `other-${m.seq}` })), ledger);
    expect(passed(report)).toBe(true);
  });

  it("rejects deliveries to a device it does not track", () => {
    expect(() => new DeliveryChecker().record("ghost", log(1).messages[0]!)).toThrow(/not tracked/);
  });

  it("passes exactly when the delivered sequence is the log (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 12 }),
        fc.array(fc.oneof(fc.record({ op: fc.constant("drop" as const), at: fc.nat() }), fc.record({ op: fc.constant("dup" as const), at: fc.nat() }), fc.record({ op: fc.constant("swap" as const), at: fc.nat() })), { maxLength: 4 }),
        (n, ops) => {
          const { messages, ledger } = log(n);
          const delivered = [...messages];
          for (const { op, at } of ops) {
            if (delivered.length === 0) break;
            const i = at % delivered.length;
            if (op === "drop") delivered.splice(i, 1);
            else if (op === "dup") delivered.splice(i, 0, delivered[i]!);
            else if (i + 1 < delivered.length) [delivered[i], delivered[i + 1]] = [delivered[i + 1]!, delivered[i]!];
          }
          const same = delivered.length === messages.length && delivered.every((m, i) => m === messages[i]);
          expect(passed(check(delivered, ledger))).toBe(same);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("mergeCheckReports()", () => {
  it("sums the reports of several processes and bounds the findings", () => {
    const { messages, ledger } = log(3);
    const bad = check([messages[0]!, messages[0]!], ledger);
    const good = check(messages, ledger);
    const merged = mergeCheckReports([bad, good, bad], 2);
    expect(merged.pairsChecked).toBe(3);
    expect(merged.deliveries).toBe(7);
    expect(merged.counts.duplicate).toBe(2);
    expect(merged.counts.missing).toBe(2);
    expect(merged.findings).toHaveLength(2);
    expect(passed(mergeCheckReports([good, good]))).toBe(true);
  });
});

describe("exclude()", () => {
  it("leaves a device that never connected out of the end-of-run comparison, but not its deliveries", () => {
    const { messages, ledger } = log(3);
    const checker = new DeliveryChecker();
    checker.track("never", [CONV]);
    checker.track("late", [CONV]);
    checker.record("late", messages[1]!);
    checker.exclude("never");
    checker.exclude("late");
    const report = checker.verify(ledger.expectations());
    expect(report).toMatchObject({ pairsChecked: 0, devicesExcluded: 2, missingMessages: 0 });
    expect(report.counts["out-of-order"]).toBe(1);
  });
});
