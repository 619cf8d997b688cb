import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SyncEngine, type ChainMessage, type SyncAnswer, type SyncEffect } from "../../client/sync-engine.js";

type M = ChainMessage & { readonly text: string };

/** A conversation log with the given seqs (strictly increasing, gaps allowed). */
function log(conversationId: string, seqs: readonly number[]): M[] {
  return seqs.map((seq, i) => ({ conversationId, seq, prevSeq: i === 0 ? 0 : seqs[i - 1]!, text: `${conversationId}#${seq}` }));
}

function delivered(effects: readonly SyncEffect<M>[]): number[] {
  return effects.flatMap((e) => (e.type === "deliver" ? e.messages.map((m) => m.seq) : []));
}

function ofType<T extends SyncEffect<M>["type"]>(effects: readonly SyncEffect<M>[], type: T) {
  return effects.filter((e): e is Extract<SyncEffect<M>, { type: T }> => e.type === type);
}

const emptySync: SyncAnswer<M> = { sessions: [], removedConversationIds: [], hasMoreSessions: false };

function live(engine: SyncEngine<M>): void {
  engine.connected();
  engine.syncResult(emptySync);
}

describe("SyncEngine", () => {
  describe("receive()", () => {
    const L = log("c", [1, 2, 3, 5, 8]);
    it.each([
      ["in order", [0, 1, 2], [1, 2, 3], []],
      ["a duplicate is dropped", [0, 0, 1], [1, 2], []],
      ["a skipped seq in the log is not a gap (prev_seq links)", [0, 1, 2, 3, 4], [1, 2, 3, 5, 8], []],
      ["an early message waits and its gap is fetched", [0, 2], [1], [{ afterSeq: 1, upToSeq: 2 }]],
      ["a message before anything known fetches from 0", [3], [], [{ afterSeq: 0, upToSeq: 3 }]],
    ])("%s", (_name, order, expectedSeqs, expectedFetches) => {
      const engine = new SyncEngine<M>();
      live(engine);
      const effects = order.flatMap((i) => engine.receive(L[i]!));
      expect(delivered(effects)).toEqual(expectedSeqs);
      expect(ofType(effects, "fetch").map(({ afterSeq, upToSeq }) => ({ afterSeq, upToSeq }))).toEqual(expectedFetches);
    });

    it("delivers buffered messages once the gap is filled, in order", () => {
      const engine = new SyncEngine<M>();
      live(engine);
      engine.receive(L[0]!);
      engine.receive(L[3]!); // 5, waits for 2..3
      engine.receive(L[4]!); // 8, waits too; one fetch only
      const effects = engine.fetchResult("c", [L[1]!, L[2]!], false);
      expect(delivered(effects)).toEqual([2, 3, 5, 8]);
      expect(engine.idle()).toBe(true);
    });

    it("buffers everything while syncing and fetches nothing until the sync answer", () => {
      const engine = new SyncEngine<M>();
      engine.connected();
      expect(engine.receive(L[2]!)).toEqual([]);
      const effects = engine.syncResult({ sessions: [{ conversationId: "c", lastSeq: 3, readSeq: 0, messages: [L[0]!, L[1]!], hasMoreMessages: false }], removedConversationIds: [], hasMoreSessions: false });
      expect(delivered(effects)).toEqual([1, 2, 3]);
      expect(ofType(effects, "fetch")).toEqual([]);
    });

    it("bounds the buffer: on overflow it drops it and fetches up to the newest", () => {
      const engine = new SyncEngine<M>({ pendingMax: 2 });
      live(engine);
      const big = log("c", [1, 2, 3, 4, 5, 6]);
      engine.receive(big[0]!);
      engine.receive(big[3]!); // fetch (1, 3]
      engine.receive(big[4]!);
      engine.receive(big[5]!); // overflow: buffer dropped
      expect(engine.pendingCount()).toBe(0);
      const effects = engine.fetchResult("c", [big[1]!, big[2]!], false);
      expect(delivered(effects)).toEqual([2, 3]);
      expect(ofType(effects, "fetch")).toEqual([{ type: "fetch", conversationId: "c", afterSeq: 3, upToSeq: 0 }]);
      expect(delivered(engine.fetchResult("c", [big[3]!, big[4]!, big[5]!], false))).toEqual([4, 5, 6]);
    });
  });

  describe("syncResult()", () => {
    it("continues with an open-ended fetch when a session has more messages", () => {
      const engine = new SyncEngine<M>();
      engine.connected();
      const L = log("c", [1, 2, 3, 4]);
      const effects = engine.syncResult({ sessions: [{ conversationId: "c", lastSeq: 4, readSeq: 0, messages: [L[0]!, L[1]!], hasMoreMessages: true }], removedConversationIds: [], hasMoreSessions: false });
      expect(ofType(effects, "fetch")).toEqual([{ type: "fetch", conversationId: "c", afterSeq: 2, upToSeq: 0 }]);
      expect(engine.idle()).toBe(false);
      engine.fetchResult("c", [L[2]!, L[3]!], false);
      expect(engine.idle()).toBe(true);
    });

    it("syncs again with updated cursors when more sessions follow", () => {
      const engine = new SyncEngine<M>();
      engine.connected();
      const effects = engine.syncResult({ sessions: [{ conversationId: "a", lastSeq: 1, readSeq: 1, messages: log("a", [1]), hasMoreMessages: false }], removedConversationIds: [], hasMoreSessions: true });
      expect(ofType(effects, "sync")).toEqual([{ type: "sync", cursors: [{ conversationId: "a", lastSeq: 1, readSeq: 1 }] }]);
    });

    it("reports read positions that moved and conversations removed", () => {
      const engine = new SyncEngine<M>({ cursors: [{ conversationId: "gone", lastSeq: 3, readSeq: 0 }] });
      engine.connected();
      const effects = engine.syncResult({ sessions: [{ conversationId: "a", lastSeq: 0, readSeq: 0, messages: [], hasMoreMessages: false }, { conversationId: "b", lastSeq: 0, readSeq: 0, messages: [], hasMoreMessages: false }], removedConversationIds: ["gone"], hasMoreSessions: false });
      expect(ofType(effects, "removed")).toEqual([{ type: "removed", conversationId: "gone" }]);
      expect(engine.cursors().map((c) => c.conversationId).sort()).toEqual(["a", "b"]);
      expect(engine.readPosition("a", 0)).toEqual([]);
    });

    it("starts from restored cursors", () => {
      const engine = new SyncEngine<M>({ cursors: [{ conversationId: "c", lastSeq: 2, readSeq: 1 }] });
      expect(engine.connected()).toEqual([{ type: "sync", cursors: [{ conversationId: "c", lastSeq: 2, readSeq: 1 }] }]);
    });
  });

  describe("fetchResult()", () => {
    it("reports a gap the server cannot close instead of asking forever", () => {
      const engine = new SyncEngine<M>();
      live(engine);
      engine.receive({ conversationId: "c", seq: 9, prevSeq: 7, text: "" });
      const effects = engine.fetchResult("c", [], false);
      expect(ofType(effects, "stuck")).toEqual([{ type: "stuck", conversationId: "c", lastSeq: 0 }]);
      expect(ofType(effects, "fetch")).toEqual([]);
    });

    it("a paged answer does not ask beyond the head when pushes completed the range meanwhile", () => {
      const engine = new SyncEngine<M>();
      live(engine);
      const L = log("c", [1, 2, 3, 4, 5]);
      engine.receive(L[0]!);
      expect(ofType(engine.receive(L[4]!), "fetch")).toEqual([{ type: "fetch", conversationId: "c", afterSeq: 1, upToSeq: 4 }]);
      for (const m of L.slice(1, 4)) engine.receive(m);
      expect(engine.lastSeq("c")).toBe(5);
      const effects = engine.fetchResult("c", [L[1]!], true);
      expect(ofType(effects, "fetch")).toEqual([]);
      expect(engine.idle()).toBe(true);
    });

    it("a lost fetch is retried by the sync of the next connection", () => {
      const engine = new SyncEngine<M>();
      live(engine);
      const L = log("c", [1, 2]);
      engine.receive(L[1]!);
      engine.disconnected();
      const sync = engine.connected();
      expect(sync).toEqual([{ type: "sync", cursors: [{ conversationId: "c", lastSeq: 0, readSeq: 0 }] }]);
      const effects = engine.syncResult({ sessions: [{ conversationId: "c", lastSeq: 2, readSeq: 0, messages: L, hasMoreMessages: false }], removedConversationIds: [], hasMoreSessions: false });
      expect(delivered(effects)).toEqual([1, 2]);
      expect(engine.idle()).toBe(true);
    });
  });

  it("with the skipGapRepair fault delivers out of order (the switch the simulator's checkers catch)", () => {
    const engine = new SyncEngine<M>({ faults: { skipGapRepair: true } });
    live(engine);
    const L = log("c", [1, 2, 3]);
    expect(delivered([...engine.receive(L[0]!), ...engine.receive(L[2]!)])).toEqual([1, 3]);
  });
});

/**
 * Property: whatever the server pushes (lost, duplicated, reordered) and however fetches and
 * syncs interleave with pushes, the app sees a prefix of the log at every moment, and the
 * whole log once the network quiesces.
 */
describe("SyncEngine properties", () => {
  const scenario = fc.record({
    gaps: fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 40 }),
    pushes: fc.array(fc.nat(), { maxLength: 80 }),
    choices: fc.array(fc.nat(), { maxLength: 400 }),
    syncPage: fc.integer({ min: 1, max: 10 }),
    fetchPage: fc.integer({ min: 1, max: 10 }),
    pendingMax: fc.integer({ min: 1, max: 16 }),
    dropConnectionAt: fc.option(fc.nat({ max: 200 })),
  });

  it("delivers a prefix of the log at all times and all of it at the end", () => {
    fc.assert(
      fc.property(scenario, (s) => {
        let seq = 0;
        const L = log("c", s.gaps.map((g) => (seq += g)));
        const engine = new SyncEngine<M>({ pendingMax: s.pendingMax });
        const seen: number[] = [];
        const fetches: Extract<SyncEffect<M>, { type: "fetch" }>[] = [];
        let syncs: Extract<SyncEffect<M>, { type: "sync" }>[] = [];
        const after = (cursor: number, upTo: number, limit: number) => {
          const range = L.filter((m) => m.seq > cursor && (upTo === 0 || m.seq <= upTo));
          return { messages: range.slice(0, limit), hasMore: range.length > limit };
        };
        const apply = (effects: SyncEffect<M>[]) => {
          for (const e of effects) {
            if (e.type === "deliver") seen.push(...e.messages.map((m) => m.seq));
            if (e.type === "fetch") fetches.push(e);
            if (e.type === "sync") syncs.push(e);
          }
          expect(seen).toEqual(L.slice(0, seen.length).map((m) => m.seq));
        };
        const answerSync = () => {
          const e = syncs.shift()!;
          const cursor = e.cursors.find((c) => c.conversationId === "c")?.lastSeq ?? 0;
          const { messages, hasMore } = after(cursor, 0, s.syncPage);
          apply(engine.syncResult({ sessions: [{ conversationId: "c", lastSeq: L[L.length - 1]!.seq, readSeq: 0, messages, hasMoreMessages: hasMore }], removedConversationIds: [], hasMoreSessions: false }));
        };
        const answerFetch = () => {
          const f = fetches.shift()!;
          const r = after(f.afterSeq, f.upToSeq, s.fetchPage);
          apply(engine.fetchResult("c", r.messages, r.hasMore));
        };
        const answerAll = () => {
          for (let guard = 0; guard < 10_000 && (fetches.length > 0 || syncs.length > 0); guard++) {
            if (syncs.length > 0) answerSync();
            else answerFetch();
          }
        };
        apply(engine.connected());
        const pushes = s.pushes.map((i) => L[i % L.length]!);
        for (const [step, choice] of s.choices.entries()) {
          if (step === s.dropConnectionAt) {
            engine.disconnected();
            fetches.length = 0;
            syncs = [];
            apply(engine.connected());
          }
          const option = choice % 3;
          if (option === 0 && pushes.length > 0) apply(engine.receive(pushes.shift()!));
          else if (option === 1 && fetches.length > 0) answerFetch();
          else if (syncs.length > 0) answerSync();
        }
        // Quiesce: remaining pushes, then answer everything; a final reconnect sync closes any gap.
        for (const p of pushes) apply(engine.receive(p));
        answerAll();
        engine.disconnected();
        apply(engine.connected());
        answerAll();
        expect(seen).toEqual(L.map((m) => m.seq));
        expect(engine.idle()).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});
