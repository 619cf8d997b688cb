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


  describe("the reorder window", () => {
    /** An engine on a clock the test moves. */
    function timed(reorderWindowMs = 50, pendingMax?: number) {
      const clock = { now: 0, nowMs: () => clock.now };
      const engine = new SyncEngine<M>({ clock, reorderWindowMs, pendingMax });
      live(engine);
      return { engine, clock };
    }

    it("waits for a reordered push instead of fetching its gap", () => {
      const { engine, clock } = timed();
      const L = log("c", [1, 2, 3]);
      engine.receive(L[0]!);
      expect(engine.receive(L[2]!)).toEqual([]);
      expect(engine.nextDueMs()).toBe(50);
      clock.now = 49;
      expect(engine.tick()).toEqual([]);
      expect(delivered(engine.receive(L[1]!))).toEqual([2, 3]);
      expect(engine.nextDueMs()).toBeUndefined();
      clock.now = 100;
      expect(engine.tick()).toEqual([]);
      expect(engine.idle()).toBe(true);
    });

    it("fetches the gap once the window has passed, exactly the missing seqs", () => {
      const { engine, clock } = timed();
      const L = log("c", [1, 2, 3, 4, 5]);
      engine.receive(L[0]!);
      engine.receive(L[3]!); // 4 waits for 2..3
      clock.now = 20;
      engine.receive(L[4]!); // 5 chains onto the buffered 4: no new hole
      clock.now = 50;
      expect(ofType(engine.tick(), "fetch")).toEqual([{ type: "fetch", conversationId: "c", afterSeq: 1, upToSeq: 3 }]);
      expect(delivered(engine.fetchResult("c", [L[1]!, L[2]!], false))).toEqual([2, 3, 4, 5]);
      expect(engine.idle()).toBe(true);
    });

    it("never refetches what a buffered push holds: one fetch per hole, in order", () => {
      const { engine, clock } = timed(10);
      const L = log("c", [1, 2, 3, 4, 5, 6]);
      engine.receive(L[0]!);
      engine.receive(L[2]!); // 3: hole (1, 2]
      engine.receive(L[5]!); // 6: hole (3, 5]
      clock.now = 10;
      expect(ofType(engine.tick(), "fetch").map((f) => [f.afterSeq, f.upToSeq])).toEqual([[1, 2]]);
      const next = engine.fetchResult("c", [L[1]!], false);
      expect(delivered(next)).toEqual([2, 3]);
      expect(ofType(next, "fetch").map((f) => [f.afterSeq, f.upToSeq])).toEqual([[3, 5]]);
      expect(delivered(engine.fetchResult("c", [L[3]!, L[4]!], false))).toEqual([4, 5, 6]);
    });

    it("does not fetch again while a fetch is in flight, even for a push beyond its range", () => {
      const { engine, clock } = timed(10);
      const L = log("c", [1, 2, 3, 4, 5]);
      engine.receive(L[0]!);
      engine.receive(L[2]!);
      clock.now = 10;
      expect(ofType(engine.tick(), "fetch")).toHaveLength(1); // (1, 2]
      expect(ofType(engine.receive(L[4]!), "fetch")).toEqual([]); // 5: hole (3, 4], but a fetch is in flight
      clock.now = 30;
      expect(ofType(engine.tick(), "fetch")).toEqual([]);
      // The in-flight answer comes back after the push's window: the next hole goes at once.
      expect(ofType(engine.fetchResult("c", [L[1]!], false), "fetch").map((f) => [f.afterSeq, f.upToSeq])).toEqual([[3, 4]]);
    });

    it("starts the window of a push that arrives during a fetch at its arrival", () => {
      const { engine, clock } = timed(10);
      const L = log("c", [1, 2, 3, 4, 5]);
      engine.receive(L[0]!);
      engine.receive(L[2]!);
      clock.now = 10;
      engine.tick(); // fetch (1, 2]
      clock.now = 15;
      engine.receive(L[4]!); // 5, due at 25
      clock.now = 16;
      expect(ofType(engine.fetchResult("c", [L[1]!], false), "fetch")).toEqual([]);
      expect(engine.nextDueMs()).toBe(25);
      expect(delivered(engine.receive(L[3]!))).toEqual([4, 5]);
      expect(engine.nextDueMs()).toBeUndefined();
    });

    it("fetches a gap the server reported at once: nothing is on its way to fill it", () => {
      const clock = { nowMs: () => 0 };
      const engine = new SyncEngine<M>({ clock, reorderWindowMs: 1000 });
      engine.connected();
      const L = log("c", [1, 2, 3]);
      const effects = engine.syncResult({ sessions: [{ conversationId: "c", lastSeq: 3, readSeq: 0, messages: [L[0]!], hasMoreMessages: true }], removedConversationIds: [], hasMoreSessions: false });
      expect(ofType(effects, "fetch")).toEqual([{ type: "fetch", conversationId: "c", afterSeq: 1, upToSeq: 0 }]);
    });

    it("fetches at once a hole below the head a sync reported, even when a push revealed it", () => {
      const clock = { nowMs: () => 0 };
      const engine = new SyncEngine<M>({ clock, reorderWindowMs: 1000 });
      engine.connected();
      const L = log("c", [1, 2, 3, 4]);
      engine.receive(L[3]!); // pushed while syncing
      const effects = engine.syncResult({ sessions: [{ conversationId: "c", lastSeq: 4, readSeq: 0, messages: [L[0]!], hasMoreMessages: false }], removedConversationIds: [], hasMoreSessions: false });
      expect(ofType(effects, "fetch").map((f) => [f.afterSeq, f.upToSeq])).toEqual([[1, 3]]);
    });

    it("treats a skipped block of seqs (a store takeover) as no gap", () => {
      const { engine } = timed();
      const L = log("c", [1, 2, 1001, 1002, 5000]);
      const effects = L.flatMap((m) => engine.receive(m));
      expect(delivered(effects)).toEqual([1, 2, 1001, 1002, 5000]);
      expect(engine.nextDueMs()).toBeUndefined();
      expect(engine.idle()).toBe(true);
    });

    it("a gap the server cannot close stops fetching until the next sync", () => {
      const { engine, clock } = timed(0);
      const L = log("c", [1, 2, 3, 4]);
      engine.receive(L[0]!);
      engine.receive(L[2]!); // fetch (1, 2]
      expect(ofType(engine.fetchResult("c", [], false), "stuck")).toEqual([{ type: "stuck", conversationId: "c", lastSeq: 1 }]);
      clock.now = 100;
      expect(ofType(engine.receive(L[3]!), "fetch")).toEqual([]);
      expect(engine.tick()).toEqual([]);
      engine.connected();
      const effects = engine.syncResult(emptySync);
      expect(ofType(effects, "fetch").map((f) => [f.afterSeq, f.upToSeq])).toEqual([[1, 2]]);
    });
  });
});

/** Seq steps of a log: mostly 1-3, sometimes a whole skipped block (a Cassandra seq-lease takeover). */
const seqSteps = fc.array(fc.oneof({ weight: 5, arbitrary: fc.integer({ min: 1, max: 3 }) }, { weight: 1, arbitrary: fc.constant(1000) }), { minLength: 1, maxLength: 40 });

function logOf(steps: readonly number[]): M[] {
  let seq = 0;
  return log("c", steps.map((g) => (seq += g)));
}

/**
 * Property: whatever the server pushes (lost, duplicated, reordered), on whatever seqs, and
 * however fetches, syncs, reorder windows and a dropped connection interleave with pushes,
 * the app sees a prefix of the log at every moment, and the whole log once the network
 * quiesces. No fetch asks for a message a buffered push holds, and no two fetches of the
 * conversation are in flight at once.
 */
describe("SyncEngine properties", () => {
  const scenario = fc.record({
    steps: seqSteps,
    pushes: fc.array(fc.record({ index: fc.nat(), copies: fc.constantFrom(0, 1, 1, 1, 2) }), { maxLength: 80 }),
    choices: fc.array(fc.nat(), { maxLength: 400 }),
    syncPage: fc.integer({ min: 1, max: 10 }),
    fetchPage: fc.integer({ min: 1, max: 10 }),
    pendingMax: fc.integer({ min: 1, max: 16 }),
    reorderWindowMs: fc.constantFrom(0, 1, 20, 50),
    dropConnectionAt: fc.option(fc.nat({ max: 200 })),
  });

  it("delivers a prefix of the log at all times and all of it at the end", () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const L = logOf(s.steps);
        const clock = { now: 0, nowMs: () => clock.now };
        const engine = new SyncEngine<M>({ pendingMax: s.pendingMax, clock, reorderWindowMs: s.reorderWindowMs });
        const seen: number[] = [];
        const fetches: Extract<SyncEffect<M>, { type: "fetch" }>[] = [];
        let syncs: Extract<SyncEffect<M>, { type: "sync" }>[] = [];
        /** Pushed and not yet delivered: what the engine may hold in its buffer. */
        const buffered = new Set<number>();
        let overflowSeen = false;
        const after = (cursor: number, upTo: number, limit: number) => {
          const range = L.filter((m) => m.seq > cursor && (upTo === 0 || m.seq <= upTo));
          return { messages: range.slice(0, limit), hasMore: range.length > limit };
        };
        const apply = (effects: SyncEffect<M>[]) => {
          for (const e of effects) {
            if (e.type === "deliver") seen.push(...e.messages.map((m) => m.seq));
            if (e.type === "fetch") {
              expect(fetches.filter((f) => f.conversationId === e.conversationId)).toEqual([]);
              const last = seen[seen.length - 1] ?? 0;
              if (!overflowSeen) for (const b of buffered) if (b > last) expect(b > e.afterSeq && (e.upToSeq === 0 || b <= e.upToSeq)).toBe(false);
              fetches.push(e);
            }
            if (e.type === "sync") syncs.push(e);
          }
          expect(seen).toEqual(L.slice(0, seen.length).map((m) => m.seq));
          const last = seen[seen.length - 1] ?? 0;
          for (const b of buffered) if (b <= last) buffered.delete(b);
          if (engine.pendingCount() < buffered.size) overflowSeen = true;
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
        const push = (m: M) => {
          buffered.add(m.seq);
          apply(engine.receive(m));
        };
        const answerAll = () => {
          for (let guard = 0; guard < 10_000; guard++) {
            if (syncs.length > 0) answerSync();
            else if (fetches.length > 0) answerFetch();
            else if (engine.nextDueMs() !== undefined) {
              clock.now = Math.max(clock.now, engine.nextDueMs()!);
              apply(engine.tick());
            } else break;
          }
        };
        apply(engine.connected());
        const pushes = s.pushes.flatMap((p) => Array.from({ length: p.copies }, () => L[p.index % L.length]!));
        for (const [step, choice] of s.choices.entries()) {
          if (step === s.dropConnectionAt) {
            engine.disconnected();
            fetches.length = 0;
            syncs = [];
            apply(engine.connected());
          }
          const option = choice % 4;
          if (option === 0 && pushes.length > 0) push(pushes.shift()!);
          else if (option === 1 && fetches.length > 0) answerFetch();
          else if (option === 2 && syncs.length > 0) answerSync();
          else {
            clock.now += choice % 30;
            apply(engine.tick());
          }
        }
        // Quiesce: remaining pushes, then answer everything; a final reconnect sync closes any gap.
        for (const p of pushes) push(p);
        answerAll();
        engine.disconnected();
        apply(engine.connected());
        answerAll();
        expect(seen).toEqual(L.map((m) => m.seq));
        expect(engine.idle()).toBe(true);
        expect(engine.nextDueMs()).toBeUndefined();
      }),
      { numRuns: 300 },
    );
  });

  /**
   * Reordered-only input: every message is pushed (some twice), each reaching the client less
   * than the window after it was sent. Then the window absorbs every reordering: no fetch.
   */
  function reorderedOnly(windowMs: number) {
    return fc.record({
      steps: seqSteps,
      spacingMs: fc.integer({ min: 0, max: 2 * windowMs }),
      delays: fc.array(fc.record({ delayMs: fc.integer({ min: 0, max: windowMs - 1 }), copyDelayMs: fc.option(fc.integer({ min: 0, max: windowMs - 1 })) }), { minLength: 40, maxLength: 40 }),
    });
  }

  /** Runs the pushes in arrival order on the engine's clock; returns the effects' fetches and what was delivered. */
  function arrive(engine: SyncEngine<M>, clock: { now: number }, L: readonly M[], spacingMs: number, delays: readonly { delayMs: number; copyDelayMs: number | null }[]) {
    const arrivals: { atMs: number; order: number; message: M }[] = [];
    L.forEach((message, i) => {
      const d = delays[i % delays.length]!;
      arrivals.push({ atMs: i * spacingMs + d.delayMs, order: arrivals.length, message });
      if (d.copyDelayMs !== null) arrivals.push({ atMs: i * spacingMs + d.copyDelayMs, order: arrivals.length, message });
    });
    arrivals.sort((a, b) => a.atMs - b.atMs || a.order - b.order);
    const effects: SyncEffect<M>[] = [];
    for (const a of arrivals) {
      clock.now = a.atMs;
      effects.push(...engine.tick(), ...engine.receive(a.message));
    }
    clock.now += 10 * 60_000;
    effects.push(...engine.tick());
    return effects;
  }

  it.each([20, 50])("fetches nothing when every reordering is within the window (%i ms)", (windowMs) => {
    fc.assert(
      fc.property(reorderedOnly(windowMs), (s) => {
        const L = logOf(s.steps);
        const clock = { now: 0, nowMs: () => clock.now };
        const engine = new SyncEngine<M>({ clock, reorderWindowMs: windowMs });
        live(engine);
        const effects = arrive(engine, clock, L, s.spacingMs, s.delays);
        expect(ofType(effects, "fetch")).toEqual([]);
        expect(delivered(effects)).toEqual(L.map((m) => m.seq));
        expect(engine.idle()).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it("without a window the same kind of input fetches (the property above is not vacuous)", () => {
    const L = log("c", [1, 2, 3, 4]);
    const clock = { now: 0, nowMs: () => clock.now };
    const engine = new SyncEngine<M>({ clock, reorderWindowMs: 0 });
    live(engine);
    const effects = arrive(engine, clock, L, 1, [{ delayMs: 5, copyDelayMs: null }, { delayMs: 0, copyDelayMs: null }]);
    expect(ofType(effects, "fetch").length).toBeGreaterThan(0);
  });

  it("keeps each engine's conversations and buffer its own (engines start sharing one empty map)", () => {
    const a = new SyncEngine<M>();
    const b = new SyncEngine<M>();
    live(a);
    live(b);
    const L = log("c", [1, 2, 3]);
    expect(ofType(a.receive(L[2]!), "fetch")).toEqual([{ type: "fetch", conversationId: "c", afterSeq: 0, upToSeq: 2 }]);
    expect(a.pendingCount()).toBe(1);
    expect(a.cursors()).toEqual([{ conversationId: "c", lastSeq: 0, readSeq: 0 }]);
    expect(b.pendingCount()).toBe(0);
    expect(b.cursors()).toEqual([]);
    expect(b.idle()).toBe(true);
    b.receive(log("d", [1])[0]!);
    expect(b.cursors()).toEqual([{ conversationId: "d", lastSeq: 1, readSeq: 0 }]);
    expect(b.idle()).toBe(true);
    expect(new SyncEngine<M>().cursors()).toEqual([]);
    expect(delivered(a.fetchResult("c", L.slice(0, 2), false))).toEqual([1, 2, 3]);
    expect(a.pendingCount()).toBe(0);
  });
});
