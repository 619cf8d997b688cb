import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { ClientMessage } from "../../client/client-message.js";
import {
  canLoadOlder,
  chainEndingAt,
  conversationOrder,
  initialState,
  NOTICES_MAX,
  reduce,
  seenSeq,
  THREAD_MESSAGES_MAX,
  unreadCount,
  type ChatAction,
  type ChatState,
  type SessionInfo,
} from "../../web/src/model/chat-state.js";

const ME = "alice";
const DIRECT = "d:alice:bob";
const text = new TextEncoder();

function msg(seq: number, prevSeq = seq - 1, options: { sender?: string; conv?: string; body?: string; at?: number; clientMsgId?: string } = {}): ClientMessage {
  return {
    conversationId: options.conv ?? DIRECT,
    seq,
    prevSeq,
    messageId: `m${seq}`,
    senderId: options.sender ?? "bob",
    sentAtMs: options.at ?? seq * 1000,
    contentType: "text/plain; charset=utf-8",
    data: text.encode(options.body ?? `text ${seq}`),
    clientMsgId: options.clientMsgId ?? `c${seq}`,
  };
}

function session(overrides: Partial<SessionInfo> = {}): SessionInfo {
  const lastSeq = overrides.lastSeq ?? 0;
  return {
    conversationId: DIRECT,
    kind: "direct",
    title: "",
    peerUserId: "bob",
    lastSeq,
    readSeq: 0,
    lastMessage: lastSeq > 0 ? msg(lastSeq) : undefined,
    cursorSeq: lastSeq,
    ...overrides,
  };
}

function run(...actions: ChatAction[]): ChatState {
  return actions.reduce(reduce, initialState(ME));
}

const conv = (s: ChatState, id = DIRECT) => s.conversations.get(id)!;
const seqs = (s: ChatState, id = DIRECT) => conv(s, id).messages.map((m) => m.seq);

describe("reduce(): live messages", () => {
  it("appends messages that chain onto the thread, ignores ones already shown", () => {
    const s = run({ type: "delivered", message: msg(1) }, { type: "delivered", message: msg(2) }, { type: "delivered", message: msg(2) }, { type: "delivered", message: msg(1) });
    expect(seqs(s)).toEqual([1, 2]);
    expect(conv(s).lastSeq).toBe(2);
    expect(conv(s).preview).toBe("text 2");
    expect(conv(s).olderUpTo).toBe(0);
  });

  it("starts a thread at a conversation's cursor and keeps seq gaps the log has (skipped seqs)", () => {
    const s = run({ type: "sessions", sessions: [session({ lastSeq: 40 })], ranked: true }, { type: "delivered", message: msg(45, 40) }, { type: "delivered", message: msg(46, 45) });
    expect(seqs(s)).toEqual([45, 46]);
    expect(conv(s).olderUpTo).toBe(40);
  });

  it("starts a new slice when a message does not chain onto the thread", () => {
    const s = run({ type: "delivered", message: msg(1) }, { type: "delivered", message: msg(5, 4) });
    expect(seqs(s)).toEqual([5]);
    expect(conv(s).olderUpTo).toBe(4);
  });

  it(`holds at most ${THREAD_MESSAGES_MAX} messages, dropping the oldest`, () => {
    let s = initialState(ME);
    for (let seq = 1; seq <= THREAD_MESSAGES_MAX + 10; seq++) s = reduce(s, { type: "delivered", message: msg(seq) });
    expect(conv(s).messages).toHaveLength(THREAD_MESSAGES_MAX);
    expect(conv(s).messages[0]!.seq).toBe(11);
    expect(conv(s).olderUpTo).toBe(10);
    expect(canLoadOlder(conv(s))).toBe(false);
  });

  it("creates the entry of a group first seen through a message", () => {
    const s = run({ type: "delivered", message: msg(1, 0, { conv: "g:team", sender: "carol" }) });
    const g = conv(s, "g:team");
    expect(g.kind).toBe("group");
    expect(g.peerUserId).toBe("");
    expect(g.previewSenderId).toBe("carol");
  });

  it("clears 'removed' when the conversation delivers again (added back)", () => {
    const s = run({ type: "delivered", message: msg(1) }, { type: "removed", conversationId: DIRECT }, { type: "delivered", message: msg(2) });
    expect(conv(s).removed).toBe(false);
  });
});

describe("reduce(): history pages", () => {
  const boot: ChatAction = { type: "sessions", sessions: [session({ lastSeq: 10 })], ranked: true };
  const page = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => msg(from + i));

  it("prepends a page that ends where the thread's older part begins", () => {
    const s = run(boot, { type: "historyLoading", conversationId: DIRECT, loading: true }, { type: "history", conversationId: DIRECT, upTo: 10, messages: page(6, 10) });
    expect(seqs(s)).toEqual([6, 7, 8, 9, 10]);
    expect(conv(s).olderUpTo).toBe(5);
    expect(conv(s).loadingOlder).toBe(false);
    const t = reduce(s, { type: "history", conversationId: DIRECT, upTo: 5, messages: page(1, 5) });
    expect(seqs(t)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(canLoadOlder(conv(t))).toBe(false);
  });

  it("ignores a page for a position the thread no longer has", () => {
    const s = run(boot, { type: "history", conversationId: DIRECT, upTo: 10, messages: page(6, 10) });
    expect(reduce(s, { type: "history", conversationId: DIRECT, upTo: 10, messages: page(6, 10) })).toBe(s);
  });

  it.each([
    ["does not end at upTo", [msg(8), msg(9)]],
    ["does not chain", [msg(7), msg(9, 8), msg(10)]],
  ])("drops a page that %s", (_what, messages) => {
    const s = run(boot, { type: "historyLoading", conversationId: DIRECT, loading: true }, { type: "history", conversationId: DIRECT, upTo: 10, messages });
    expect(seqs(s)).toEqual([]);
    expect(conv(s).olderUpTo).toBe(10);
    expect(conv(s).loadingOlder).toBe(false);
  });

  it("rebuilds the exact log from pages and live messages in any interleaving", () => {
    // A log whose seqs skip (as after a change of sequence owner), a cursor somewhere in it,
    // live messages after the cursor (some delivered twice) and pages before it.
    const logArb = fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 120 }).map((steps) => {
      const log: ClientMessage[] = [];
      let seq = 0;
      for (const step of steps) {
        const prev = seq;
        seq += step;
        log.push(msg(seq, prev));
      }
      return log;
    });
    fc.assert(
      fc.property(logArb, fc.nat(), fc.array(fc.boolean(), { maxLength: 400 }), fc.integer({ min: 1, max: 20 }), (log, cut, choices, pageSize) => {
        const head = cut % (log.length + 1);
        const cursor = head === 0 ? 0 : log[head - 1]!.seq;
        let s = run({ type: "sessions", sessions: [session({ lastSeq: cursor, cursorSeq: cursor, lastMessage: head === 0 ? undefined : log[head - 1] })], ranked: true });
        let live = head;
        const fetchPage = () => {
          const c = conv(s);
          if (!canLoadOlder(c)) return;
          const upTo = c.olderUpTo;
          const messages = log.filter((m) => m.seq > Math.max(0, upTo - pageSize) && m.seq <= upTo);
          s = reduce(s, { type: "history", conversationId: DIRECT, upTo, messages });
        };
        for (const useLive of choices) {
          if (useLive && live < log.length) {
            s = reduce(s, { type: "delivered", message: log[live]! });
            if (live % 7 === 0) s = reduce(s, { type: "delivered", message: log[live]! });
            live++;
          } else fetchPage();
        }
        while (live < log.length) s = reduce(s, { type: "delivered", message: log[live++]! });
        for (let i = 0; i < log.length * 3 && canLoadOlder(conv(s)); i++) fetchPage();
        expect(seqs(s)).toEqual(log.map((m) => m.seq));
        expect(conv(s).olderUpTo).toBe(0);
      }),
      { numRuns: 200 },
    );
  });
});

describe("chainEndingAt(): a history page from the device's store", () => {
  const seqs = (ms: readonly ClientMessage[]) => ms.map((m) => m.seq);

  it.each([
    { name: "the whole chained run up to upTo", stored: [msg(1, 0), msg(2), msg(3)], upTo: 3, want: [1, 2, 3] },
    { name: "stops at a hole (prevSeq not the message before)", stored: [msg(1, 0), msg(2), msg(5, 4), msg(6)], upTo: 6, want: [5, 6] },
    { name: "ignores messages after upTo", stored: [msg(1, 0), msg(2), msg(3)], upTo: 2, want: [1, 2] },
    { name: "nothing when upTo itself is not stored", stored: [msg(1, 0), msg(2)], upTo: 3, want: [] },
    { name: "nothing from an empty page", stored: [], upTo: 4, want: [] },
  ])("$name", ({ stored, upTo, want }) => {
    expect(seqs(chainEndingAt(stored, upTo))).toEqual(want);
  });
});

describe("reduce(): sessions, order and unread counts", () => {
  it("takes the server's session list with previews, in its order when activity ties", () => {
    const s = run({
      type: "sessions",
      ranked: true,
      sessions: [
        session({ conversationId: "g:b", kind: "group", title: "Team", peerUserId: "", lastSeq: 0 }),
        session({ conversationId: "g:a", kind: "group", title: "Other", peerUserId: "", lastSeq: 0 }),
        session({ lastSeq: 3, readSeq: 1 }),
      ],
    });
    expect(conversationOrder(s).map((c) => c.id)).toEqual([DIRECT, "g:b", "g:a"]);
    expect(conv(s).preview).toBe("text 3");
    expect(conv(s, "g:b").title).toBe("Team");
    expect(unreadCount(conv(s), ME)).toBe(2);
  });

  it("moves a conversation to the top when a message arrives", () => {
    const s = run(
      { type: "sessions", ranked: true, sessions: [session({ lastSeq: 2 }), session({ conversationId: "d:alice:carol", peerUserId: "carol", lastSeq: 1 })] },
      { type: "delivered", message: msg(2, 1, { conv: "d:alice:carol", sender: "carol", at: 99_000 }) },
    );
    expect(conversationOrder(s).map((c) => c.id)).toEqual(["d:alice:carol", DIRECT]);
  });

  it("counts exactly, without the user's own messages, once the thread holds what is unread", () => {
    const s = run(
      { type: "delivered", message: msg(1) },
      { type: "delivered", message: msg(2, 1, { sender: ME }) },
      { type: "delivered", message: msg(3) },
      { type: "read", conversationId: DIRECT, readSeq: 1 },
    );
    expect(unreadCount(conv(s), ME)).toBe(1);
    expect(unreadCount(conv(reduce(s, { type: "read", conversationId: DIRECT, readSeq: 3 })), ME)).toBe(0);
  });

  it("estimates from seqs before the unread messages are loaded", () => {
    const s = run({ type: "sessions", ranked: true, sessions: [session({ lastSeq: 9, readSeq: 4 })] });
    expect(unreadCount(conv(s), ME)).toBe(5);
  });

  it("counts a conversation whose newest message is the user's own as read", () => {
    const s = run({ type: "sessions", ranked: true, sessions: [session({ lastSeq: 2, readSeq: 0, lastMessage: msg(2, 1, { sender: ME }) })] });
    expect(unreadCount(conv(s), ME)).toBe(0);
    expect(unreadCount(conv(reduce(s, { type: "delivered", message: msg(3, 2) })), ME)).toBe(1);
  });

  it("never moves a read position back", () => {
    const s = run({ type: "delivered", message: msg(1) }, { type: "read", conversationId: DIRECT, readSeq: 1 });
    expect(reduce(s, { type: "read", conversationId: DIRECT, readSeq: 0 })).toBe(s);
  });

  it("tells which seq to mark read once the newest is seen", () => {
    const s = run({ type: "delivered", message: msg(1) }, { type: "delivered", message: msg(2) });
    expect(seenSeq(conv(s))).toBe(2);
    expect(seenSeq(conv(reduce(s, { type: "read", conversationId: DIRECT, readSeq: 2 })))).toBe(0);
  });
});

describe("reduce(): sends", () => {
  const created: ChatAction = { type: "created", session: session(), atMs: 5 };

  it("goes pending, sent, then leaves the outgoing list when its log delivers it", () => {
    let s = run(created, { type: "sendQueued", conversationId: DIRECT, clientMsgId: "k1", text: "hi", atMs: 10 });
    expect(conv(s).outgoing.map((o) => o.status)).toEqual(["pending"]);
    s = reduce(s, { type: "sendAcked", conversationId: DIRECT, clientMsgId: "k1", seq: 1 });
    expect(conv(s).outgoing.map((o) => [o.status, o.seq])).toEqual([["sent", 1]]);
    s = reduce(s, { type: "delivered", message: msg(1, 0, { sender: ME, clientMsgId: "k1", body: "hi" }) });
    expect(conv(s).outgoing).toEqual([]);
    expect(seqs(s)).toEqual([1]);
  });

  it("keeps a failed send with its reason until it is retried or discarded", () => {
    let s = run(created, { type: "sendQueued", conversationId: DIRECT, clientMsgId: "k1", text: "hi", atMs: 10 });
    s = reduce(s, { type: "sendFailed", conversationId: DIRECT, clientMsgId: "k1", error: "Message too large" });
    expect(conv(s).outgoing[0]).toMatchObject({ status: "failed", error: "Message too large" });
    s = reduce(s, { type: "sendRetried", conversationId: DIRECT, clientMsgId: "k1" });
    expect(conv(s).outgoing[0]).toMatchObject({ status: "pending", error: "" });
    s = reduce(s, { type: "sendDiscarded", conversationId: DIRECT, clientMsgId: "k1" });
    expect(conv(s).outgoing).toEqual([]);
  });

  it("does not take another user's message with the same client_msg_id for its own", () => {
    let s = run(created, { type: "sendQueued", conversationId: DIRECT, clientMsgId: "k1", text: "hi", atMs: 10 });
    s = reduce(s, { type: "delivered", message: msg(1, 0, { sender: "bob", clientMsgId: "k1" }) });
    expect(conv(s).outgoing).toHaveLength(1);
  });
});

describe("reduce(): notices and connection", () => {
  it(`keeps the newest ${NOTICES_MAX} notices`, () => {
    let s = initialState(ME);
    for (let i = 0; i < NOTICES_MAX + 3; i++) s = reduce(s, { type: "notice", text: `n${i}` });
    expect(s.notices.map((n) => n.text)).toEqual(Array.from({ length: NOTICES_MAX }, (_, i) => `n${i + 3}`));
    const first = s.notices[0]!.id;
    expect(reduce(s, { type: "dismiss", id: first }).notices).toHaveLength(NOTICES_MAX - 1);
  });

  it("keeps why it is offline until live, and remembers having been live", () => {
    let s = run({ type: "connection", state: "offline", detail: "Cannot reach the server" });
    expect(s.connectionDetail).toBe("Cannot reach the server");
    s = reduce(s, { type: "connection", state: "connecting" });
    expect(s.connectionDetail).toBe("Cannot reach the server");
    s = reduce(s, { type: "connection", state: "live" });
    expect(s.connectionDetail).toBe("");
    expect(s.everLive).toBe(true);
  });
});
