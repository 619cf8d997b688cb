import { describe, expect, it } from "vitest";
import type { StoredMessage } from "../../server/core/model.js";
import { Checkers, logicalId, type CheckerOptions } from "../../sim/checkers.js";
import type { Link } from "../../sim/network.js";
import { roundTripMaxMs, shownBoundMs } from "../../sim/shown-checker.js";

const clock = { nowMs: 0, events: 0 };
const alice = { index: 0, name: "u0/0", userId: "u0" };
const bob = { index: 1, name: "u1/0", userId: "u1" };
/** Shown bound: a 10 ms reorder window and 10 ms round trips (nothing but 4 ms of latency each way). */
const SHOWN = { latencyMs: 3, jitterMs: 0, storeLatencyMs: 0, storeJitterMs: 0, reorderWindowMs: 10, fetchDefault: 10, syncSessionsDefault: 10 };
const OPTIONS: CheckerOptions = { pushOrder: true, pushMissing: true, fetchPage: 10, isMember: (userId, id) => id === "g:g0" || id.includes(userId), shown: SHOWN, sessionsOf: () => 1, requestsInFlightMax: 4 };

function msg(seq: number, clientMsgId = `0-${seq}`, conversationId = "g:g0"): StoredMessage {
  return { conversationId, seq, prevSeq: seq - 1, messageId: `m${conversationId}${seq}`, senderId: "u0", sentAtMs: 0, contentType: "text/plain", data: new Uint8Array(), clientMsgId };
}

function logOf(n: number): { checkers: Checkers; log: StoredMessage[] } {
  const checkers = new Checkers(clock, OPTIONS);
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
    const checkers = new Checkers(clock, OPTIONS);
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
    expect(checkers.reports().loss.examples[0]?.detail).toContain("cursor at seq 3 but 2 messages from seq 2 were never delivered");
  });

  it("readOrder: a read position shown to the app that moves back, per device and conversation", () => {
    const { checkers } = logOf(5);
    checkers.readMoved(alice, "g:g0", 2);
    checkers.readMoved(alice, "g:g0", 4);
    checkers.readMoved(bob, "g:g0", 1);
    checkers.readMoved(alice, "d:u0:u1", 1);
    expect(checkers.total()).toBe(0);
    checkers.readMoved(alice, "g:g0", 3);
    expect(checkers.reports().readOrder.violations).toBe(1);
    expect(checkers.first).toMatchObject({ checker: "readOrder", conversationId: "g:g0", device: "u0/0", detail: "read position moved back from seq 4 to seq 3" });
  });

  it("invariant: a store append that breaks the chain", () => {
    const checkers = new Checkers(clock, OPTIONS);
    checkers.appended(msg(1));
    checkers.appended(msg(3));
    expect(checkers.first?.checker).toBe("invariant");
  });

  it("keeps counting past the examples it shows", () => {
    const { checkers, log } = logOf(1);
    for (let i = 0; i < 8; i++) checkers.delivered({ index: 2 + i, name: `d${i}`, userId: "u9" }, { ...log[0]!, seq: 5, prevSeq: 4, messageId: "x" });
    expect(checkers.reports().loss).toMatchObject({ violations: 8 });
    expect(checkers.reports().loss.examples).toHaveLength(5);
  });
});

/** A message with a given seq and prevSeq (logs of a store that skips seqs). */
function sparse(seq: number, prevSeq: number, conversationId = "g:g0"): StoredMessage {
  return { ...msg(seq, `0-${seq}`, conversationId), prevSeq };
}

/** What the push checker reads of a link. */
function linkOf(device: { index: number; name: string; userId: string }, connectionId: string, attachedAtMs: number): Link {
  return { client: { ...device, slow: false, adversary: false }, name: connectionId, up: true, endedAtMs: Infinity, attachedAtMs, conn: { connectionId, ending: false }, pushed: undefined } as unknown as Link;
}

describe("Checkers on a log whose seqs skip (a takeover)", () => {
  it("order, duplicate and checkEnd follow the log's positions, not seq arithmetic", () => {
    const checkers = new Checkers(clock, OPTIONS);
    const log = [sparse(1, 0), sparse(2, 1), sparse(101, 2), sparse(201, 101)];
    for (const m of log) checkers.appended(m);
    for (const m of log.slice(0, 3)) checkers.delivered(alice, m);
    expect(checkers.total()).toBe(0);
    checkers.delivered(alice, log[2]!);
    expect(checkers.reports().duplicate.violations).toBe(1);
    checkers.delivered(bob, log[0]!);
    checkers.delivered(bob, log[2]!);
    expect(checkers.reports().order.examples[0]?.detail).toContain("delivered seq 101 after seq 1: 1 messages (from seq 2)");
    checkers.checkEnd(alice, "g:g0", 201);
    expect(checkers.reports().loss.examples[0]?.detail).toContain("1 messages from seq 201 were never delivered");
    expect(checkers.head("g:g0")).toBe(201);
    expect(checkers.indexOf("g:g0", 101)).toBe(2);
    expect(checkers.indexOf("g:g0", 50)).toBe(-1);
  });

  it("invariant: an append that goes back or breaks the chain; a skip forward is fine", () => {
    const checkers = new Checkers(clock, OPTIONS);
    checkers.appended(sparse(1, 0));
    checkers.appended(sparse(101, 1));
    expect(checkers.total()).toBe(0);
    checkers.appended(sparse(150, 100));
    expect(checkers.first?.checker).toBe("invariant");
  });
});

describe("push checkers", () => {
  function setup(options: Partial<CheckerOptions> = {}) {
    const now = { nowMs: 0, events: 0 };
    const checkers = new Checkers(now, { ...OPTIONS, ...options });
    const append = (seq: number, atMs: number, origin = "") => {
      now.nowMs = atMs;
      const m = msg(seq);
      checkers.appended(m);
      checkers.published(m, origin);
      return m;
    };
    return { checkers, append, now };
  }

  it("pushOrder: a push of a conversation at or below the last one pushed on the connection", () => {
    const { checkers, append } = setup({ pushMissing: false });
    const [m1, m2] = [append(1, 10), append(2, 20)];
    const link = linkOf(alice, "c1", 5);
    checkers.pushed(link, m2);
    checkers.pushed(link, m1);
    expect(checkers.first).toMatchObject({ checker: "pushOrder", detail: "connection c1 was pushed seq 1 after seq 2" });
  });

  it("pushMissing: seqs stored after registration that never reached the connection, except its own sends and what came before it", () => {
    const { checkers, append } = setup();
    const log = [append(1, 1), append(2, 10), append(3, 11, "c1"), append(4, 12), append(5, 13)];
    const link = linkOf(alice, "c1", 5);
    checkers.pushed(link, log[1]!);
    expect(checkers.total()).toBe(0);
    checkers.pushed(link, log[4]!);
    expect(checkers.total()).toBe(0);
    checkers.linkEnded(link);
    expect(checkers.reports().pushMissing.examples[0]?.detail).toBe("connection c1 was never pushed 1 messages before the connection ended (seq 4), stored after it was registered at 5 ms");
  });

  it("a hole filled later is a reordering, not a missing push", () => {
    const { checkers, append } = setup();
    const log = [append(1, 10), append(2, 20), append(3, 30)];
    const link = linkOf(alice, "c1", 5);
    checkers.pushed(link, log[0]!);
    checkers.pushed(link, log[2]!);
    checkers.pushed(link, log[1]!);
    checkers.linkEnded(link);
    expect(checkers.reports().pushMissing.violations).toBe(0);
    expect(checkers.first).toMatchObject({ checker: "pushOrder", detail: "connection c1 was pushed seq 2 after seq 3" });
  });

  it("pushMissing at the end: the newest message of a conversation never pushed", () => {
    const { checkers, append } = setup();
    append(1, 10);
    append(2, 20);
    const link = linkOf(alice, "c1", 5);
    checkers.pushed(link, msg(1));
    checkers.checkEndPushes(link, ["g:g0"]);
    expect(checkers.first?.detail).toContain("never pushed 1 messages at the end of the run (seq 2)");
  });

  it("both stay quiet when the run's faults reorder or lose pushes", () => {
    const { checkers, append } = setup({ pushOrder: false, pushMissing: false });
    const log = [append(1, 10), append(2, 20), append(3, 30)];
    const link = linkOf(alice, "c1", 5);
    checkers.pushed(link, log[2]!);
    checkers.pushed(link, log[0]!);
    checkers.checkEndPushes(link, ["g:g0"]);
    expect(checkers.total()).toBe(0);
    expect(checkers.reports().pushOrder.on).toBe(false);
  });
});

describe("answer checkers", () => {
  const log = [msg(1), msg(2), msg(3), msg(4)];
  function withLog(): Checkers {
    const checkers = new Checkers(clock, OPTIONS);
    for (const m of log) checkers.appended(m);
    return checkers;
  }
  const sync = (lastSeq: number) => ({ kind: "sync" as const, cursors: [{ conversationId: "g:g0", lastSeq, readSeq: 0 }], resync: false });
  const session = (messages: StoredMessage[], hasMoreMessages = false) => ({ kind: "sync" as const, answer: { sessions: [{ conversationId: "g:g0", lastSeq: 4, readSeq: 0, messages, hasMoreMessages }], removedConversationIds: [], hasMoreSessions: false } });

  it("a sync must bring the messages right after the cursor, up to the head", () => {
    const checkers = withLog();
    checkers.answered(alice, sync(2), session(log.slice(2)));
    checkers.answered(alice, sync(2), session(log.slice(2, 3), true));
    expect(checkers.total()).toBe(0);
    checkers.answered(alice, sync(2), session(log.slice(1)));
    expect(checkers.first?.detail).toBe("a sync (cursor 2) answered seq 2 (prev 1) where the log has seq 3");
    checkers.answered(alice, sync(2), session(log.slice(2, 3)));
    expect(checkers.reports().answers.examples[1]?.detail).toBe("a sync (cursor 2) answered up to seq 3 of head 4 and no more to come");
  });

  it("a sync must not answer sessions of conversations the user is not in (access)", () => {
    const checkers = withLog();
    checkers.answered(alice, sync(0), { kind: "sync", answer: { sessions: [{ conversationId: "d:u1:u2", lastSeq: 0, readSeq: 0, messages: [], hasMoreMessages: false }], removedConversationIds: [], hasMoreSessions: false } });
    expect(checkers.first?.checker).toBe("access");
  });

  it("a fetch must bring exactly its range", () => {
    const checkers = withLog();
    const fetch = { kind: "fetch" as const, conversationId: "g:g0", afterSeq: 1, upToSeq: 3 };
    checkers.answered(alice, fetch, { kind: "fetch", messages: log.slice(1, 3), hasMore: false });
    expect(checkers.total()).toBe(0);
    checkers.answered(alice, fetch, { kind: "fetch", messages: log.slice(1, 2), hasMore: false });
    expect(checkers.first?.detail).toBe("a fetch (1, 3] answered 1 of its 2 messages and no more to come");
    checkers.answered(alice, fetch, { kind: "fetch", messages: log.slice(1, 4), hasMore: false });
    expect(checkers.reports().answers.examples[1]?.detail).toBe("a fetch (1, 3] answered seq 4, beyond the range");
  });

  it("a markRead never moves back; a refusal other than UNAVAILABLE is a finding", () => {
    const checkers = withLog();
    checkers.answered(alice, { kind: "markRead", conversationId: "g:g0", readSeq: 3 }, { kind: "markRead", readSeq: 2 });
    checkers.refused(alice, { kind: "fetch", conversationId: "g:g0", afterSeq: 0, upToSeq: 0 }, 14, "store down");
    checkers.refused(alice, { kind: "fetch", conversationId: "g:g0", afterSeq: 0, upToSeq: 9 }, 11, "seq 9 is beyond the conversation's last seq 4");
    expect(checkers.reports().answers.violations).toBe(2);
    expect(checkers.reports().answers.examples[1]?.detail).toBe("the server refused a fetch of the client: OutOfRange: seq 9 is beyond the conversation's last seq 4");
  });

  it("fetches: a gap repaired in more fetches than its pages need", () => {
    const checkers = withLog();
    checkers.gapRepaired(alice, "g:g0", 25, 4, 0);
    checkers.gapRepaired(alice, "g:g0", 25, 5, 1);
    expect(checkers.total()).toBe(0);
    checkers.gapRepaired(alice, "g:g0", 3, 3, 0);
    expect(checkers.first).toMatchObject({ checker: "fetches", detail: "a gap of 3 messages took 3 fetches (bound 2: pages of 10, 0 connections lost meanwhile)" });
  });

  it("stuck: a gap the client gave up on", () => {
    const checkers = withLog();
    checkers.stuck(alice, "g:g0", 2);
    expect(checkers.first).toMatchObject({ checker: "stuck", conversationId: "g:g0", device: "u0/0" });
  });
});

describe("shown checker", () => {
  function setup() {
    const now = { nowMs: 0, events: 0 };
    const checkers = new Checkers(now, OPTIONS);
    const log = Array.from({ length: 4 }, (_, i) => msg(i + 1));
    for (const m of log) checkers.appended(m);
    return { checkers, log, now };
  }

  it("derives its bound from the reorder window, the pages of the gap and the longest round trip", () => {
    expect(roundTripMaxMs(SHOWN)).toBe(8);
    expect(shownBoundMs(SHOWN, 0, 1)).toBe(10 + 4 * 8);
    expect(shownBoundMs(SHOWN, 25, 1)).toBe(10 + 7 * 8);
    expect(shownBoundMs(SHOWN, 0, 21)).toBe(10 + 6 * 8);
    // chaos: 1 + 5 + 10 x 10 ms each way, 3 store calls of at most 2 + 10 x 3 ms.
    expect(roundTripMaxMs({ ...SHOWN, latencyMs: 5, jitterMs: 10, storeLatencyMs: 2, storeJitterMs: 3 })).toBe(2 * 106 + 3 * 32);
  });

  it("a push shown at once, or within the bound after its gap was fetched, is no finding", () => {
    const { checkers, log, now } = setup();
    const link = linkOf(alice, "c1", 0);
    checkers.delivered(alice, log[0]!);
    checkers.pushHandled(alice, log[0]!);
    now.nowMs = 100;
    checkers.pushHandled(alice, log[2]!);
    now.nowMs = 150;
    checkers.delivered(alice, log[1]!);
    checkers.delivered(alice, log[2]!);
    checkers.linkEnded(link);
    expect(checkers.total()).toBe(0);
    expect(checkers.longestShownMs).toBe(50);
  });

  it("a push kept from the app past the bound while its link was up", () => {
    const { checkers, log, now } = setup();
    checkers.delivered(alice, log[0]!);
    now.nowMs = 100;
    checkers.pushHandled(alice, log[2]!);
    now.nowMs = 100 + 51;
    checkers.delivered(alice, log[1]!);
    checkers.delivered(alice, log[2]!);
    expect(checkers.first).toMatchObject({ checker: "shown", conversationId: "g:g0", device: "u0/0" });
    expect(checkers.first?.detail).toBe("seq 3 shown 51 ms after its push reached the live link at 100 ms; the bound was 50 ms");
  });

  it("a push still not shown when the link ends, or the run does, after the bound passed", () => {
    const { checkers, log, now } = setup();
    checkers.pushHandled(alice, log[1]!);
    checkers.pushHandled(bob, log[1]!);
    now.nowMs = 1_000;
    checkers.linkEnded(linkOf(alice, "c1", 0));
    checkers.checkEndShown(bob, linkOf(bob, "c2", 0));
    expect(checkers.reports().shown.violations).toBe(2);
    expect(checkers.first?.detail).toBe("seq 2 not shown 1000 ms after (while its link was up) its push reached the live link at 0 ms; the bound was 50 ms");
  });

  it("owes nothing past the link's drop: a half-open link carries no answer", () => {
    const { checkers, log, now } = setup();
    checkers.pushHandled(alice, log[1]!);
    const link = linkOf(alice, "c1", 0);
    link.endedAtMs = 40;
    now.nowMs = 45_000;
    checkers.linkEnded(link);
    // The next link starts afresh: the message is owed again only if it is pushed again.
    checkers.delivered(alice, log[0]!);
    checkers.delivered(alice, log[1]!);
    expect(checkers.total()).toBe(0);
  });
});

describe("pagedRest checker", () => {
  /** A log of 10 messages; alice has shown seqs 1-2 (OPTIONS: 4 requests in flight at most). */
  function setup() {
    const checkers = new Checkers({ nowMs: 0, events: 0 }, OPTIONS);
    const log = Array.from({ length: 10 }, (_, i) => msg(i + 1));
    for (const m of log) checkers.appended(m);
    checkers.delivered(alice, log[0]!);
    checkers.delivered(alice, log[1]!);
    return { checkers, log };
  }
  const live = { current: true, inFlight: 0 };
  /** alice's client handles the answer to a fetch of (2, upTo]: seqs 3-4 of the log, has_more; `during` runs meanwhile. */
  function page(checkers: Checkers, log: StoredMessage[], upToSeq: number, during: () => void, link = live): void {
    const request = { kind: "fetch" as const, conversationId: "g:g0", afterSeq: 2, upToSeq };
    const answer = { kind: "fetch" as const, messages: [log[2]!, log[3]!], hasMore: true };
    checkers.answering(alice, request, answer);
    checkers.delivered(alice, log[2]!);
    checkers.delivered(alice, log[3]!);
    during();
    checkers.answerHandled(alice, answer, link);
  }
  const rest = { kind: "fetch" as const, conversationId: "g:g0", afterSeq: 4, upToSeq: 8 };

  it("the rest fetched while the answer is handled is no finding, and counts as owed", () => {
    const { checkers, log } = setup();
    page(checkers, log, 8, () => checkers.wrote(alice, rest));
    expect(checkers.total()).toBe(0);
    expect(checkers.pagedRestOwed).toBe(1);
  });

  it.each([
    ["holding nothing of the conversation", [] as number[], 8, "up to seq 8 left seq 5 on not shown (shown up to seq 4, holding no message of it)"],
    ["holding a pushed message inside the range (a reordered push that came while the page was in flight)", [6], 8, "holding seq 6)"],
    ["holding the push whose prevSeq is the range's end", [9], 8, "holding seq 9)"],
    ["after an open-ended fetch, whatever it holds", [9, 10], 0, "up to the newest left seq 5 on not shown"],
  ])("a fetch of the rest that does not leave at once, %s", (_name, held, upToSeq, detail) => {
    const { checkers, log } = setup();
    for (const i of held) checkers.took(alice, log[i - 1]!);
    page(checkers, log, upToSeq, () => checkers.wrote(alice, { ...rest, conversationId: "g:other" }));
    expect(checkers.first).toMatchObject({ checker: "pagedRest", conversationId: "g:g0", device: "u0/0" });
    expect(checkers.first?.detail).toContain(detail);
    expect(checkers.reports().pagedRest.violations).toBe(1);
  });

  it.each([
    ["the range was shown meanwhile (buffered pushes completed it)", 4, () => {}, live],
    ["the client reported the gap stuck", 8, (c: Checkers) => c.stuck(alice, "g:g0", 4), live],
    ["the link's request table is full", 8, () => {}, { current: true, inFlight: 4 }],
    ["the link is gone", 8, () => {}, { current: false, inFlight: 0 }],
  ])("owes nothing when %s", (_name, upToSeq, during, link) => {
    const { checkers, log } = setup();
    page(checkers, log, upToSeq, () => during(checkers), link);
    expect(checkers.reports().pagedRest.violations).toBe(0);
    expect(checkers.pagedRestOwed).toBe(0);
  });

  it("owes nothing when every message held lies past a hole that reaches beyond the range (it waits for that push's window)", () => {
    const { checkers, log } = setup();
    checkers.took(alice, log[9]!);
    page(checkers, log, 8, () => {});
    expect(checkers.total()).toBe(0);
  });

  it("forgets what a client held when the device runs a new one, and what it has shown since", () => {
    const { checkers, log } = setup();
    checkers.took(alice, log[5]!);
    checkers.took(alice, log[9]!);
    checkers.clientReplaced(alice);
    checkers.took(alice, log[9]!);
    page(checkers, log, 8, () => {});
    expect(checkers.total()).toBe(0);
  });

  it("judges only answers that say has_more", () => {
    const { checkers, log } = setup();
    const request = { kind: "fetch" as const, conversationId: "g:g0", afterSeq: 2, upToSeq: 8 };
    const answer = { kind: "fetch" as const, messages: [log[2]!], hasMore: false };
    checkers.answering(alice, request, answer);
    checkers.delivered(alice, log[2]!);
    checkers.answerHandled(alice, answer, live);
    expect(checkers.total()).toBe(0);
  });
});
