import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { ConversationRecord, StoredMessage } from "../../../server/core/model.js";
import type { NotifyDecision } from "../../../server/core/offline-push.js";
import { homeOf, OfflinePushPipeline } from "../../../server/push/offline-push-pipeline.js";
import type { PushDispatcherStats } from "../../../server/push/push-dispatcher.js";

const GRACE = 5000;
const LEASE = 3000;
const REFRESH = 1000;
const logger = pino({ level: "silent" });

/** Processes with a pipeline each, linked in memory (a hop takes a macrotask); `cut` drops what a process sends. */
function deployment(names: string[], groups: Record<string, string[]> = {}, timing = { refreshMs: REFRESH, leaseMs: LEASE }) {
  let live = [...names];
  const cut = new Set<string>();
  const notified: string[] = [];
  const local = new Map(names.map((n) => [n, new Set<string>()]));
  const receivers = new Map<string, (bytes: Uint8Array) => void>();
  const stats: { -readonly [K in keyof PushDispatcherStats]: PushDispatcherStats[K] } = { queued: 0, inFlight: 0, sent: 0, retries: 0, failed: 0, rejected: 0, invalidTokens: 0, dropped: 0, duplicates: 0 };
  const pipelines = new Map(
    names.map((self) => [
      self,
      new OfflinePushPipeline({
        self,
        processes: () => live,
        link: {
          send: (to, bytes) => {
            if (cut.has(self) || !live.includes(to)) return;
            setTimeout(() => receivers.get(to)?.(bytes), 1);
          },
          onReceive: (receive) => void receivers.set(self, receive),
        },
        localUsers: () => local.get(self)!,
        listMembers: async (conversationId, after, limit) => (groups[conversationId] ?? []).filter((m) => m > after).sort().slice(0, limit),
        dispatcher: {
          notify: (d: NotifyDecision) => void notified.push(`${d.userId}:${d.message.messageId}`),
          stats: () => stats,
          close: async () => {},
        },
        clock: { nowMs: () => Date.now() },
        logger,
        decider: { graceMs: GRACE, pendingMax: 1000, pendingPerUserMax: 100 },
        previewChars: 10,
        groupMembersMax: 100,
        ...timing,
        flushMs: 20,
      }),
    ]),
  );
  return {
    notified,
    stats,
    pipeline: (name: string) => pipelines.get(name)!,
    connect(name: string, userId: string) {
      local.get(name)!.add(userId);
      pipelines.get(name)!.userOnline(userId);
    },
    disconnect(name: string, userId: string) {
      local.get(name)!.delete(userId);
      pipelines.get(name)!.userOffline(userId);
    },
    /** `name` dies: it stops sending, and (with `tell`) the others learn it left. */
    kill(name: string, tell: boolean) {
      cut.add(name);
      void pipelines.get(name)!.close();
      if (!tell) return;
      live = live.filter((n) => n !== name);
      for (const [other, p] of pipelines) if (other !== name) p.processesChanged([name]);
    },
    async close() {
      for (const p of pipelines.values()) await p.close();
    },
  };
}

const direct = (a: string, b: string): ConversationRecord => ({ id: `d:${[a, b].sort().join(":")}`, kind: "direct", title: "", ownerId: "", memberCount: 2 }) as unknown as ConversationRecord;
const group = (id: string): ConversationRecord => ({ id, kind: "group", title: "t", ownerId: "o", memberCount: 0 }) as unknown as ConversationRecord;
let seq = 0;
function stored(conversationId: string, senderId: string, text = "hello", contentType = "text/plain"): StoredMessage {
  seq++;
  return { conversationId, seq, prevSeq: seq - 1, messageId: `m${seq}`, senderId, sentAtMs: 0, contentType, data: new TextEncoder().encode(text), clientMsgId: `c${seq}` };
}

/** Users whose home is `home` among `processes`, `count` of them. */
function usersAt(processes: string[], home: string, count: number, prefix = "u"): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < count; i++) if (homeOf(processes, `${prefix}${i}`) === home) out.push(`${prefix}${i}`);
  return out;
}

describe("OfflinePushPipeline", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    seq = 0;
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("notifies the offline participant of a direct message once, after the grace, and never the sender", async () => {
    const d = deployment(["w0"]);
    d.pipeline("w0").messageAppended(direct("alice", "bob"), stored("d:alice:bob", "alice"));
    await vi.advanceTimersByTimeAsync(GRACE - 300);
    expect(d.notified).toEqual([]);
    await vi.advanceTimersByTimeAsync(600);
    expect(d.notified).toEqual(["bob:m1"]);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(d.notified).toEqual(["bob:m1"]);
    await d.close();
  });

  it("notifies nobody who has a live connection at any process, wherever their home is", async () => {
    const procs = ["w0", "w1", "w2"];
    // Members homed at each process, connected at another one.
    const members = procs.flatMap((home) => usersAt(procs, home, 2, `${home}-`));
    const d = deployment(procs, { "g:team": ["sender", ...members, "away"] });
    members.forEach((userId, i) => d.connect(procs[(i + 1) % 3]!, userId));
    await vi.advanceTimersByTimeAsync(100);
    d.pipeline("w1").messageAppended(group("g:team"), stored("g:team", "sender"));
    await vi.advanceTimersByTimeAsync(GRACE + 500);
    expect(d.notified).toEqual(["away:m1"]);
    await d.close();
  });

  it("cancels the notification of a member who connects within the grace", async () => {
    const d = deployment(["w0", "w1"], { "g:team": ["alice", "bob", "carol"] });
    d.pipeline("w0").messageAppended(group("g:team"), stored("g:team", "alice"));
    await vi.advanceTimersByTimeAsync(GRACE / 2);
    d.connect("w1", "bob");
    d.connect("w0", "carol");
    await vi.advanceTimersByTimeAsync(GRACE);
    expect(d.notified).toEqual([]);
    // Gone again: the next message notifies them.
    d.disconnect("w1", "bob");
    d.disconnect("w0", "carol");
    await vi.advanceTimersByTimeAsync(100);
    d.pipeline("w0").messageAppended(group("g:team"), stored("g:team", "alice"));
    await vi.advanceTimersByTimeAsync(GRACE + 500);
    expect(d.notified.sort()).toEqual(["bob:m2", "carol:m2"]);
    await d.close();
  });

  it("keeps the group's members current with the member changes made at this process", async () => {
    const d = deployment(["w0"], { "g:team": ["alice", "bob"] });
    const p = d.pipeline("w0");
    p.messageAppended(group("g:team"), stored("g:team", "alice"));
    await vi.advanceTimersByTimeAsync(10);
    p.membersChanged(group("g:team"), ["carol"], ["bob"]);
    p.messageAppended(group("g:team"), stored("g:team", "alice"));
    await vi.advanceTimersByTimeAsync(GRACE + 500);
    expect(d.notified.sort()).toEqual(["bob:m1", "carol:m2"]);
    await d.close();
  });

  it("notifies nobody offline for a group over the size bound", async () => {
    const d = deployment(["w0"], { "g:big": Array.from({ length: 101 }, (_, i) => `u${String(i).padStart(3, "0")}`) });
    d.pipeline("w0").messageAppended(group("g:big"), stored("g:big", "u000"));
    await vi.advanceTimersByTimeAsync(GRACE + 500);
    expect(d.notified).toEqual([]);
    await d.close();
  });

  it("treats the users of a process that left as offline at once", async () => {
    const procs = ["w0", "w1"];
    const [bob] = usersAt(procs, "w0", 1, "bob");
    const d = deployment(procs);
    d.connect("w1", bob!);
    await vi.advanceTimersByTimeAsync(100);
    d.kill("w1", true);
    d.pipeline("w0").messageAppended(direct("alice", bob!), stored(direct("alice", bob!).id, "alice"));
    await vi.advanceTimersByTimeAsync(GRACE + 500);
    expect(d.notified).toEqual([`${bob}:m1`]);
    await d.close();
  });

  it("lets the presence of a process that went silent lapse after the lease", async () => {
    const procs = ["w0", "w1"];
    const [bob] = usersAt(procs, "w0", 1, "bob");
    const d = deployment(procs);
    d.connect("w1", bob!);
    await vi.advanceTimersByTimeAsync(100);
    d.kill("w1", false);
    const id = direct("alice", bob!).id;
    d.pipeline("w0").messageAppended(direct("alice", bob!), stored(id, "alice"));
    await vi.advanceTimersByTimeAsync(GRACE + 500);
    expect(d.notified).toEqual([]);
    await vi.advanceTimersByTimeAsync(LEASE + REFRESH);
    d.pipeline("w0").messageAppended(direct("alice", bob!), stored(id, "alice"));
    await vi.advanceTimersByTimeAsync(GRACE + 500);
    expect(d.notified).toEqual([`${bob}:m2`]);
    await d.close();
  });

  it("moves a user's home when the processes change, with its presence", async () => {
    // bob is homed at w2 while it lives; then w2 leaves and bob's home moves, and the process
    // that holds bob's connection tells the new home at once.
    const procs = ["w0", "w1", "w2"];
    const bob = usersAt(procs, "w2", 1, "bob")[0]!;
    // Snapshots far apart: only the one sent on the change can tell the new home in time.
    const d = deployment(procs, {}, { refreshMs: 60_000, leaseMs: 180_000 });
    d.connect("w1", bob);
    // Past the first snapshots.
    await vi.advanceTimersByTimeAsync(1000);
    d.kill("w2", true);
    await vi.advanceTimersByTimeAsync(10);
    d.pipeline("w0").messageAppended(direct("alice", bob), stored(direct("alice", bob).id, "alice"));
    await vi.advanceTimersByTimeAsync(GRACE + 500);
    expect(d.notified).toEqual([]);
    await d.close();
  });

  it("counts the members considered and the decisions handed to the dispatcher", async () => {
    const d = deployment(["w0"], { "g:team": ["alice", "bob", "carol"] });
    d.connect("w0", "carol");
    await vi.advanceTimersByTimeAsync(100);
    d.pipeline("w0").messageAppended(group("g:team"), stored("g:team", "alice"));
    await vi.advanceTimersByTimeAsync(GRACE + 500);
    expect(d.pipeline("w0").counters()).toMatchObject({ candidates: 2, decided: 1, dropped: 0 });
    // What the dispatcher could not queue counts as dropped too.
    d.stats.dropped = 3;
    expect(d.pipeline("w0").counters().dropped).toBe(3);
    await d.close();
  });
});

describe("notification previews", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  async function previewOf(text: string, contentType = "text/plain"): Promise<string> {
    let preview = "?";
    const p = new OfflinePushPipeline({
      self: "w0",
      processes: () => ["w0"],
      link: { send: () => {}, onReceive: () => {} },
      localUsers: () => [],
      listMembers: async () => [],
      dispatcher: { notify: (d) => void (preview = d.message.preview), stats: () => ({}) as PushDispatcherStats, close: async () => {} },
      clock: { nowMs: () => Date.now() },
      logger,
      decider: { graceMs: 10, pendingMax: 10, pendingPerUserMax: 10 },
      previewChars: 5,
      groupMembersMax: 10,
    });
    p.messageAppended(direct("a", "b"), stored("d:a:b", "a", text, contentType));
    await vi.advanceTimersByTimeAsync(300);
    await p.close();
    return preview;
  }

  it("shows the first characters of a text message, cut with an ellipsis", async () => {
    expect(await previewOf("hi")).toBe("hi");
    expect(await previewOf("hello")).toBe("hello");
    expect(await previewOf("hello world")).toBe("hello…");
    expect(await previewOf("😀😀😀😀😀😀")).toBe("😀😀😀😀😀…");
    expect(await previewOf("ab😀😀😀😀😀😀😀")).toBe("ab😀😀😀…");
  });

  it("shows nothing of a message that is not text", async () => {
    expect(await previewOf("{}", "application/json")).toBe("");
  });
});
