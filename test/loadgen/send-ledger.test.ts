import { describe, expect, it } from "vitest";
import { addDigest, SendLedger } from "../../loadgen/send-ledger.js";

describe("SendLedger", () => {
  it("expects the highest acknowledged seq, with the digest of every message when all were acknowledged", () => {
    const ledger = new SendLedger();
    ledger.acked("g:a", 1, "m1");
    ledger.acked("g:a", 2, "m2");
    expect(ledger.expectations().get("g:a")).toEqual({ lastSeq: 2, digest: addDigest(addDigest(0, "m1"), "m2") });
  });

  it("counts a duplicate result once", () => {
    const ledger = new SendLedger();
    ledger.acked("g:a", 1, "m1");
    ledger.acked("g:a", 1, "m1", true);
    expect(ledger.totals().acked).toBe(1);
    expect(ledger.expectations().get("g:a")?.digest).toBeDefined();
  });

  it.each([
    ["a send failed", (l: SendLedger) => l.failed("g:a")],
    ["a seq was acknowledged elsewhere and not merged", (l: SendLedger) => l.acked("g:a", 3, "m3")],
  ])("gives no digest when %s", (_what, act) => {
    const ledger = new SendLedger();
    ledger.acked("g:a", 1, "m1");
    act(ledger);
    expect(ledger.expectations().get("g:a")?.digest).toBeUndefined();
  });

  it("merges ledgers of several processes into the same expectations as one ledger", () => {
    const one = new SendLedger();
    const a = new SendLedger();
    const b = new SendLedger();
    for (let seq = 1; seq <= 6; seq++) {
      one.acked("g:x", seq, `m${seq}`);
      (seq % 2 === 0 ? a : b).acked("g:x", seq, `m${seq}`);
    }
    const merged = new SendLedger();
    merged.merge(JSON.parse(JSON.stringify(a.toJSON())));
    merged.merge(JSON.parse(JSON.stringify(b.toJSON())));
    expect(merged.expectations()).toEqual(one.expectations());
  });
});
