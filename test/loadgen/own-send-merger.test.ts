import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DeliveryChecker, passed, type Delivery } from "../../loadgen/delivery-checker.js";
import { OwnSendMerger } from "../../loadgen/own-send-merger.js";
import { SendLedger } from "../../loadgen/send-ledger.js";

const CONV = "g:room";
const message = (seq: number): Delivery => ({ conversationId: CONV, seq, prevSeq: seq - 1, messageId: `m${seq}` });

/**
 * What one device sees of a log of `n` messages of which `own` are its sends: `sending` for
 * each own message before anything after it can exist, pushes of the others in seq order and
 * answers of its own in seq order, interleaved as `picks` says (true: the next answer first).
 */
function arrivals(n: number, own: ReadonlySet<number>, picks: readonly boolean[]): { kind: "sending" | "push" | "answer"; seq: number }[] {
  const pushes = Array.from({ length: n }, (_, i) => i + 1).filter((s) => !own.has(s));
  const answers = [...own].sort((a, b) => a - b);
  const out: { kind: "sending" | "push" | "answer"; seq: number }[] = [];
  const sent = new Set<number>();
  const sendUpTo = (seq: number) => {
    for (const s of answers) if (s <= seq && !sent.has(s)) {
      sent.add(s);
      out.push({ kind: "sending", seq: s });
    }
  };
  let p = 0;
  let a = 0;
  let k = 0;
  while (p < pushes.length || a < answers.length) {
    const answerFirst = a < answers.length && (p >= pushes.length || (picks[k++ % Math.max(1, picks.length)] ?? false));
    if (answerFirst) {
      sendUpTo(answers[a]!);
      out.push({ kind: "answer", seq: answers[a++]! });
    } else {
      // A push of seq s exists only once every message before it was sent.
      sendUpTo(pushes[p]!);
      out.push({ kind: "push", seq: pushes[p++]! });
    }
  }
  return out;
}

function run(n: number, events: readonly { kind: "sending" | "push" | "answer"; seq: number }[], deliver = message) {
  const checker = new DeliveryChecker();
  checker.track("dev", [CONV]);
  const recorded: number[] = [];
  const merger = new OwnSendMerger(
    (d) => {
      recorded.push(d.seq);
      checker.record("dev", d);
    },
    (c) => checker.lastSeq("dev", c),
  );
  for (const e of events) {
    if (e.kind === "sending") merger.sending(CONV);
    else if (e.kind === "answer") merger.answered(CONV, deliver(e.seq));
    else merger.pushed(deliver(e.seq));
  }
  const waitingBeforeFlush = merger.waiting;
  merger.flush();
  const ledger = new SendLedger();
  for (let s = 1; s <= n; s++) ledger.acked(CONV, s, `m${s}`);
  return { report: checker.verify(ledger.expectations()), recorded, waiting: waitingBeforeFlush };
}

const logs = fc.integer({ min: 1, max: 14 }).chain((n) =>
  fc.record({
    n: fc.constant(n),
    own: fc.subarray(Array.from({ length: n }, (_, i) => i + 1)),
    picks: fc.array(fc.boolean(), { minLength: 1, maxLength: 20 }),
  }),
);

describe("OwnSendMerger", () => {
  it("hands a correct log to the checker in seq order as it arrives, whatever the order of answers and pushes (property)", () => {
    fc.assert(
      fc.property(logs, ({ n, own, picks }) => {
        const { report, recorded, waiting } = run(n, arrivals(n, new Set(own), picks));
        expect(recorded).toEqual(Array.from({ length: n }, (_, i) => i + 1));
        expect(passed(report)).toBe(true);
        // Nothing left waiting once everything arrived: a correct log is never held back.
        expect(waiting).toBe(0);
      }),
      { numRuns: 500 },
    );
  });

  it("passes a push on at once when it follows what was handed on", () => {
    const recorded: number[] = [];
    const merger = new OwnSendMerger((d) => recorded.push(d.seq));
    merger.sending(CONV);
    merger.pushed(message(1));
    expect(recorded).toEqual([1]);
    // Seq 3 follows seq 2, which may be the send in flight: held until the answer.
    merger.pushed(message(3));
    expect(recorded).toEqual([1]);
    merger.answered(CONV, message(2));
    expect(recorded).toEqual([1, 2, 3]);
  });

  it("starts a conversation's chain where the checker stands when the first send to it comes after pushes", () => {
    const recorded: number[] = [];
    const merger = new OwnSendMerger((d) => recorded.push(d.seq), () => recorded.length);
    merger.pushed(message(1));
    merger.sending(CONV);
    merger.answered(CONV, message(2));
    expect(recorded).toEqual([1, 2]);
    expect(merger.waiting).toBe(0);
  });

  it("leaves conversations the device never sent to untouched", () => {
    const recorded: Delivery[] = [];
    const merger = new OwnSendMerger((d) => recorded.push(d));
    const odd = { conversationId: "g:other", seq: 7, prevSeq: 2, messageId: "x" };
    merger.pushed(odd);
    expect(recorded).toEqual([odd]);
  });

  it("bounds what it holds: past the bound the oldest push goes on", () => {
    const recorded: number[] = [];
    const merger = new OwnSendMerger((d) => recorded.push(d.seq), () => 0, 3);
    merger.sending(CONV);
    for (const seq of [5, 7, 9]) merger.pushed(message(seq));
    expect(recorded).toEqual([5]);
    expect(merger.waiting).toBe(2);
  });

  // The mistakes of a server: each must reach the checker as a finding, never be repaired.
  it.each<[string, (events: { kind: "sending" | "push" | "answer"; seq: number }[]) => { kind: "sending" | "push" | "answer"; seq: number }[]]>([
    ["a push dropped", (e) => { const i = e.findIndex((x) => x.kind === "push"); return [...e.slice(0, i), ...e.slice(i + 1)]; }],
    ["a push delivered twice", (e) => { const i = e.findIndex((x) => x.kind === "push"); return [...e.slice(0, i + 1), e[i]!, ...e.slice(i + 1)]; }],
    ["two pushes swapped", (e) => {
      const idx = e.flatMap((x, i) => (x.kind === "push" ? [i] : []));
      const out = [...e];
      [out[idx[0]!], out[idx[1]!]] = [out[idx[1]!]!, out[idx[0]!]!];
      return out;
    }],
  ])("reports %s, with own sends in flight (property)", (_what, mutate) => {
    fc.assert(
      fc.property(logs.filter(({ n, own }) => n - own.length >= 2), ({ n, own, picks }) => {
        const { report } = run(n, mutate(arrivals(n, new Set(own), picks)));
        expect(passed(report)).toBe(false);
      }),
      { numRuns: 300 },
    );
  });
});
