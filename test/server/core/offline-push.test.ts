import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { OfflinePushDecider, type AppendedMessage, type NotifyDecision } from "../../../server/core/offline-push.js";

const GRACE = 5000;

function message(id: string, senderId = "alice", conversationId = "g:team"): AppendedMessage {
  return { messageId: id, conversationId, seq: Number(id.replace(/\D/g, "")) || 1, senderId, preview: `text of ${id}` };
}

const decider = (pendingMax = 1000, pendingPerUserMax = 100) => new OfflinePushDecider({ graceMs: GRACE, pendingMax, pendingPerUserMax });
const pairs = (ds: readonly NotifyDecision[]) => ds.map((d) => `${d.userId}:${d.message.messageId}:${d.why}`);

describe("OfflinePushDecider", () => {
  it("notifies a member without a live connection once the grace has run out, not before", () => {
    const d = decider();
    d.connected("alice", 0);
    expect(d.messageAppended(message("m1"), ["alice", "bob"], 1000)).toEqual([]);
    expect(d.nextDeadlineMs()).toBe(1000 + GRACE);
    expect(d.tick(1000 + GRACE - 1)).toEqual([]);
    expect(pairs(d.tick(1000 + GRACE))).toEqual(["bob:m1:grace"]);
    expect(d.tick(1_000_000)).toEqual([]);
    expect(d.pendingCount).toBe(0);
    expect(d.nextDeadlineMs()).toBeUndefined();
  });

  it("carries the message in the decision", () => {
    const d = decider();
    d.messageAppended(message("m7", "carol", "d:bob:carol"), ["bob", "carol"], 0);
    expect(d.tick(GRACE)).toEqual([{ userId: "bob", message: message("m7", "carol", "d:bob:carol"), why: "grace" }]);
  });

  it("never notifies the sender, nor a member online when the message was appended", () => {
    const d = decider();
    d.connected("bob", 0);
    d.messageAppended(message("m1", "alice"), ["alice", "bob"], 10);
    d.disconnected("bob", 20);
    expect(d.tick(10 * GRACE)).toEqual([]);
  });

  it("does not notify a member who connects within the grace", () => {
    const d = decider();
    d.messageAppended(message("m1"), ["bob", "carol"], 0);
    d.messageAppended(message("m2"), ["bob", "carol"], 100);
    d.connected("bob", GRACE - 1);
    expect(pairs(d.tick(GRACE + 100))).toEqual(["carol:m1:grace", "carol:m2:grace"]);
  });

  it("notifies again for messages appended after the member went offline again", () => {
    const d = decider();
    d.messageAppended(message("m1"), ["bob"], 0);
    d.connected("bob", 100);
    d.disconnected("bob", 200);
    d.messageAppended(message("m2"), ["bob"], 300);
    expect(pairs(d.tick(300 + GRACE))).toEqual(["bob:m2:grace"]);
  });

  it("decides a message once per member, also when it is reported twice", () => {
    const d = decider();
    d.messageAppended(message("m1"), ["bob"], 0);
    d.messageAppended(message("m1"), ["bob", "bob"], 10);
    expect(pairs(d.tick(GRACE + 10))).toEqual(["bob:m1:grace"]);
  });

  it("does not decide a message again when it is reported after its decision", () => {
    const d = decider();
    d.messageAppended(message("m1"), ["bob"], 0);
    expect(pairs(d.tick(GRACE))).toEqual(["bob:m1:grace"]);
    d.messageAppended(message("m1"), ["bob"], GRACE + 1);
    expect(d.tick(3 * GRACE)).toEqual([]);
  });

  it("remembers only the last pendingMax decisions", () => {
    const d = decider(2);
    for (const [i, id] of ["m1", "m2", "m3"].entries()) {
      d.messageAppended(message(id), ["bob"], i * GRACE);
      d.tick(i * GRACE + GRACE);
    }
    d.messageAppended(message("m3"), ["bob"], 10 * GRACE);
    d.messageAppended(message("m1"), ["bob"], 10 * GRACE);
    expect(pairs(d.tick(11 * GRACE))).toEqual(["bob:m1:grace"]);
  });

  it("decides a user's oldest notification early when that user has too many waiting", () => {
    const d = decider(1000, 2);
    d.messageAppended(message("m1"), ["bob", "carol"], 0);
    d.messageAppended(message("m2"), ["bob"], 1);
    expect(pairs(d.messageAppended(message("m3"), ["bob"], 2))).toEqual(["bob:m1:overflow"]);
    expect(d.pendingCount).toBe(3);
    expect(pairs(d.tick(GRACE + 2))).toEqual(["carol:m1:grace", "bob:m2:grace", "bob:m3:grace"]);
  });

  it("decides the oldest notification early when too many wait in all", () => {
    const d = decider(2, 100);
    d.messageAppended(message("m1"), ["bob", "carol"], 0);
    expect(pairs(d.messageAppended(message("m2"), ["dave"], 1))).toEqual(["bob:m1:overflow"]);
    expect(d.pendingCount).toBe(2);
  });

  it("keeps its queue bounded when members keep cancelling by connecting", () => {
    const d = decider(10, 100);
    for (let i = 0; i < 1000; i++) {
      d.messageAppended(message(`m${i}`), [`u${i}`], i);
      d.connected(`u${i}`, i);
    }
    expect(d.pendingCount).toBe(0);
    expect(d.queuedCount).toBeLessThanOrEqual(2 * 10 + 1);
  });

  it("treats time that goes back as the latest time seen", () => {
    const d = decider();
    d.messageAppended(message("m1"), ["bob"], 1000);
    d.messageAppended(message("m2"), ["carol"], 500);
    expect(pairs(d.tick(1000 + GRACE))).toEqual(["bob:m1:grace", "carol:m2:grace"]);
  });

  it("refuses bounds that cannot work", () => {
    expect(() => new OfflinePushDecider({ graceMs: 10, pendingMax: 0, pendingPerUserMax: 1 })).toThrow();
  });

  type Event =
    | { kind: "append"; id: number; sender: number; members: number[] }
    | { kind: "connect" | "disconnect"; user: number }
    | { kind: "tick" };

  it("matches a model: exactly the members offline from append to deadline are notified, once (property)", () => {
    const users = 3;
    const event: fc.Arbitrary<Event> = fc.oneof(
      fc.record({ kind: fc.constant("append" as const), id: fc.nat(4), sender: fc.nat(users - 1), members: fc.uniqueArray(fc.nat(users - 1), { maxLength: users }) }),
      fc.record({ kind: fc.constantFrom("connect" as const, "disconnect" as const), user: fc.nat(users - 1) }),
      fc.record({ kind: fc.constant("tick" as const) }),
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(event, fc.nat(3000)), { maxLength: 60 }), (script) => {
        const d = decider(1_000_000, 1_000_000);
        const online = new Set<number>();
        // Model: pending (user, message) -> deadline; cancelled when the user connects.
        const expected = new Map<string, number>();
        const decided: string[] = [];
        const seen = new Set<string>();
        let now = 0;
        for (const [e, step] of script) {
          now += step;
          if (e.kind === "append") {
            decided.push(...pairs(d.messageAppended(message(`m${e.id}`, `u${e.sender}`), e.members.map((m) => `u${m}`), now)));
            for (const m of e.members) {
              const key = `u${m}:m${e.id}:grace`;
              if (m !== e.sender && !online.has(m) && !expected.has(key) && !seen.has(key)) expected.set(key, now + GRACE);
            }
          } else if (e.kind === "connect") {
            d.connected(`u${e.user}`, now);
            online.add(e.user);
            for (const key of [...expected.keys()]) if (key.startsWith(`u${e.user}:`)) expected.delete(key);
          } else if (e.kind === "disconnect") {
            d.disconnected(`u${e.user}`, now);
            online.delete(e.user);
          } else {
            const due = pairs(d.tick(now));
            const modelDue = [...expected].filter(([, at]) => at <= now).map(([k]) => k);
            expect(new Set(due)).toEqual(new Set(modelDue));
            for (const k of due) {
              expected.delete(k);
              seen.add(k);
            }
            decided.push(...due);
          }
        }
        decided.push(...pairs(d.tick(now + GRACE)));
        for (const k of expected.keys()) seen.add(k);
        expect(new Set(decided)).toEqual(seen);
        expect(decided.length).toBe(new Set(decided).size);
      }),
    );
  });
});
