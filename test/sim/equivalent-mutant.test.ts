import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SyncEngine, type ChainMessage, type SyncEffect } from "../../client/sync-engine.js";
import { applyMutant, MUTANTS } from "../../sim/mutants.js";

/**
 * A mutant no checker catches is either a hole in the checkers or a mutant whose program
 * behaves like the original. engine-forgets-paged-rest was taken for the second (the rest of a
 * paged range stays wanted through the buffered push that chose the range). This drives the
 * production SyncEngine and a mutated one with the same random pushes, sync and fetch answers
 * (paged, so with has_more), failures, reconnects and clock ticks, and compares their effects
 * and state after every step. It found that the mutant is not equivalent, and how the runs
 * first part: where the original fetches the rest of a range at once, the mutant waits for the
 * reorder window of a push that arrived while the page was in flight (a push of an earlier
 * message, reordered), then fetches the same range. A delay of at most one reorder window
 * (50 ms) per page, which network jitter alone exceeds: no checker of what users see can
 * tell it apart. The simulator's pagedRest checker (sim/paged-rest-checker.ts) judges the
 * engine's own contract instead and catches it. The same harness tells
 * engine-overflow-no-refetch from the original, so it is not blind.
 */

type M = ChainMessage & { readonly n: number };
type Engine = SyncEngine<M>;
type EngineClass = new (options: ConstructorParameters<typeof SyncEngine<M>>[0]) => Engine;

let dir = "";
/** Fetch answers with has_more the scripts gave (the mutated line runs on each): the property is not vacuous. */
let pagedAnswers = 0;
const mutated = new Map<string, EngineClass>();

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "sim-equivalent-"));
  copyFileSync("client/clock.ts", path.join(dir, "clock.ts"));
  for (const name of ["engine-forgets-paged-rest", "engine-overflow-no-refetch"]) {
    const mutant = MUTANTS.find((m) => m.name === name)!;
    const file = path.join(dir, `${name}.ts`);
    writeFileSync(file, applyMutant(mutant, readFileSync(mutant.file, "utf8")));
    mutated.set(name, ((await import(file)) as { SyncEngine: EngineClass }).SyncEngine);
  }
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** One conversation's log: seqs that skip now and then (a takeover), prevSeq chained. */
function logOf(steps: readonly number[]): M[] {
  let seq = 0;
  return steps.map((step, n) => {
    const prevSeq = seq;
    seq += step;
    return { conversationId: "c", seq, prevSeq, n };
  });
}

const script = fc.record({
  steps: fc.array(fc.oneof({ weight: 6, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.integer({ min: 2, max: 50 }) }), { minLength: 10, maxLength: 40, size: "max" }),
  actions: fc.array(fc.tuple(fc.integer({ min: 0, max: 9 }), fc.nat({ max: 1000 }), fc.integer({ min: 1, max: 6 })), { minLength: 20, maxLength: 300, size: "max" }),
  pendingMax: fc.integer({ min: 1, max: 6 }),
  reorderWindowMs: fc.constantFrom(0, 10, 50),
});

type Script = typeof script extends fc.Arbitrary<infer T> ? T : never;

/** How the engines' runs compare: the same throughout, or how they first differ. */
type Outcome = "same" | "mutant fetches later" | "other";

/** Runs both engines through the script, in lockstep, until their effects or state first differ. */
function compareRuns(Original: EngineClass, Mutated: EngineClass, s: Script): Outcome {
  const L = logOf(s.steps);
  const clock = { now: 0, nowMs: () => clock.now };
  const options = { pendingMax: s.pendingMax, clock, reorderWindowMs: s.reorderWindowMs };
  const engines = [new Original(options), new Mutated(options)] as const;
  /** The head the server has reached: messages are appended as the script goes. */
  let head = 1;
  let fetches: Extract<SyncEffect<M>, { type: "fetch" }>[] = [];
  let syncPending = false;
  const range = (after: number, upTo: number, limit: number) => {
    const all = L.slice(0, head).filter((m) => m.seq > after && (upTo === 0 || m.seq <= upTo));
    return { messages: all.slice(0, limit), hasMore: all.length > limit };
  };
  let outcome: Outcome = "same";
  const step = (f: (e: Engine) => SyncEffect<M>[] | void): boolean => {
    const [a, b] = engines.map((e) => f(e) ?? []);
    if (JSON.stringify(a) !== JSON.stringify(b)) {
      // The original fetches where the mutant, otherwise alike, waits at most one reorder window.
      const due = engines[1].nextDueMs();
      const fetchless = JSON.stringify(a!.filter((e) => e.type !== "fetch"));
      const later = fetchless === JSON.stringify(b) && due !== undefined && due <= clock.now + s.reorderWindowMs;
      outcome = later ? "mutant fetches later" : "other";
      return false;
    }
    for (const e of a!) {
      if (e.type === "fetch") fetches.push(e);
      if (e.type === "sync") syncPending = true;
    }
    const state = (e: Engine) => JSON.stringify([e.cursors(), e.pendingCount(), e.idle(), e.nextDueMs()]);
    if (state(engines[0]) === state(engines[1])) return true;
    outcome = "other";
    return false;
  };
  if (!step((e) => e.connected())) return outcome;
  for (let i = 0; i < s.actions.length; i++) {
    const [kind, pick, limit] = s.actions[i]!;
    let same = true;
    if (kind <= 3) {
      // A push of the newest message, after appending a few whose pushes were lost (a gap),
      // of the newest again, or of an older one.
      if (kind === 0) head = Math.min(L.length, head + (pick % 2 === 0 ? 1 : limit));
      const m = L[kind <= 1 ? head - 1 : pick % head]!;
      same = step((e) => e.receive(m));
    } else if (kind <= 5 && fetches.length > 0) {
      const f = fetches.shift()!;
      const answer = range(f.afterSeq, f.upToSeq, limit);
      if (answer.hasMore) pagedAnswers++;
      same = step((e) => e.fetchResult(f.conversationId, answer.messages, answer.hasMore));
    } else if (kind === 6 && syncPending) {
      syncPending = false;
      const cursor = engines[0].cursor("c").lastSeq;
      const answer = range(cursor, 0, limit);
      const sessions = [{ conversationId: "c", lastSeq: L[head - 1]!.seq, readSeq: 0, messages: answer.messages, hasMoreMessages: answer.hasMore }];
      same = step((e) => e.syncResult({ sessions, removedConversationIds: [], hasMoreSessions: false }));
    } else if (kind === 7 && fetches.length > 0) {
      const f = fetches.shift()!;
      same = step((e) => e.fetchFailed(f.conversationId));
    } else if (kind === 8) {
      fetches = [];
      syncPending = false;
      same = step((e) => e.disconnected()) && step((e) => e.connected());
    } else {
      clock.now += pick % 80;
      same = step((e) => e.tick());
    }
    if (!same) return outcome;
  }
  return outcome;
}

describe("mutants no checker of what users see catches", () => {
  it("engine-forgets-paged-rest first differs from the production SyncEngine by fetching the rest of a range up to one reorder window later", () => {
    pagedAnswers = 0;
    const outcomes = new Set<Outcome>();
    fc.assert(
      fc.property(script, (s) => {
        const outcome = compareRuns(SyncEngine as EngineClass, mutated.get("engine-forgets-paged-rest")!, s);
        outcomes.add(outcome);
        return outcome !== "other";
      }),
      { numRuns: 2000 },
    );
    expect(pagedAnswers).toBeGreaterThan(500);
    expect([...outcomes].sort()).toEqual(["mutant fetches later", "same"]);
  });

  it("the same harness tells engine-overflow-no-refetch from the production engine by more than a delay", () => {
    const found = fc.check(fc.property(script, (s) => compareRuns(SyncEngine as EngineClass, mutated.get("engine-overflow-no-refetch")!, s) !== "other"), { numRuns: 2000 });
    expect(found.failed).toBe(true);
  });
});
