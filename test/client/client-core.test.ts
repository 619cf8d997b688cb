import { describe, expect, it } from "vitest";
import { ClientCore, type ClientHost, type ClientState, type Settled } from "../../client/client-core.js";
import { clientSettings, type ClientCoreOptions } from "../../client/client-settings.js";
import type { ClientRequest, DisconnectKind, LinkCloseCause, PendingSend, RequestFailure, SendAck } from "../../client/client-protocol.js";
import type { ChainMessage, ClientCursor } from "../../client/sync-engine.js";

type M = ChainMessage & { readonly text: string };

const EMPTY_SYNC = { kind: "sync" as const, answer: { sessions: [], removedConversationIds: [], hasMoreSessions: false } };
const RETRYABLE: RequestFailure = { reason: "server", retryable: true, retryAfterMs: 0, unauthenticated: false, cause: undefined };
const REFUSED: RequestFailure = { reason: "server", retryable: false, retryAfterMs: 0, unauthenticated: false, cause: "not a member" };

function send(id: string): PendingSend {
  return { clientMsgId: id, conversationId: "c", toUserId: "", contentType: "text/plain", data: new Uint8Array([1]) };
}

function ack(id: string, seq: number): SendAck {
  return { conversationId: "c", seq, prevSeq: seq - 1, messageId: `m${seq}`, sentAtMs: 0, clientMsgId: id, duplicate: false };
}

/** A host that records what the core asks for, on a clock the test moves. */
class Harness implements ClientHost<M> {
  now = 0;
  readonly clock = { nowMs: () => this.now };
  readonly tokens: number[] = [];
  readonly opened: number[] = [];
  readonly closed: { link: number; cause: LinkCloseCause }[] = [];
  readonly writes: { link: number; requestId: number; request: ClientRequest }[] = [];
  readonly states: ClientState[] = [];
  readonly delivered: number[] = [];
  readonly reads: number[] = [];
  readonly sends: { id: string; outcome: Settled<SendAck> }[] = [];
  readonly markReads: { handle: number; outcome: Settled<number> }[] = [];
  readonly errors: unknown[] = [];
  /** Answer token requests at once. */
  autoToken = true;
  readonly core: ClientCore<M>;

  constructor(options: Partial<ClientCoreOptions<M>> = {}, restore: { cursors?: ClientCursor[]; outbox?: PendingSend[] } = {}) {
    const settings = clientSettings<M>({ clock: this.clock, random: () => 0.5, ownMessage: (a) => ({ conversationId: a.conversationId, seq: a.seq, prevSeq: a.prevSeq, text: "own" }), ...options });
    this.core = new ClientCore(settings, this, restore);
  }

  get link(): number {
    return this.opened[this.opened.length - 1] ?? 0;
  }

  /** Requests written on the current link, of a kind. */
  written(kind: ClientRequest["kind"], link = this.link) {
    return this.writes.filter((w) => w.link === link && w.request.kind === kind);
  }

  /** Moves the clock to `ms` and lets the core do what is due (in wake-up steps, as a host does). */
  advance(ms: number): void {
    const end = this.now + ms;
    for (let wake = this.core.nextWakeMs(); wake !== undefined && wake <= end; wake = this.core.nextWakeMs()) {
      this.now = Math.max(this.now, wake);
      this.core.tick();
    }
    this.now = end;
  }

  /** Starts and brings the client live (sync answered). */
  live(): void {
    this.core.start();
    this.core.answered(this.link, this.written("sync")[0]!.requestId, EMPTY_SYNC);
    expect(this.core.state).toBe("live");
  }

  fetchToken(attempt: number): void {
    this.tokens.push(attempt);
    if (this.autoToken) this.core.tokenReady(attempt, `t${attempt}`);
  }
  openLink(link: number): void {
    this.opened.push(link);
    this.core.linkReady(link);
  }
  closeLink(link: number, cause: LinkCloseCause): void {
    this.closed.push({ link, cause });
  }
  write(link: number, requestId: number, request: ClientRequest): void {
    this.writes.push({ link, requestId, request });
  }
  stateChanged(state: ClientState): void {
    this.states.push(state);
  }
  deliver(_c: string, messages: readonly M[]): void {
    this.delivered.push(...messages.map((m) => m.seq));
  }
  readMoved(_c: string, readSeq: number): void {
    this.reads.push(readSeq);
  }
  removed(): void {}
  stuck(): void {}
  sendSettled(s: PendingSend, outcome: Settled<SendAck>): void {
    this.sends.push({ id: s.clientMsgId, outcome });
  }
  markReadSettled(handle: number, outcome: Settled<number>): void {
    this.markReads.push({ handle, outcome });
  }
  error(cause: unknown): void {
    this.errors.push(cause);
  }
}

describe("ClientCore", () => {
  describe("connection lifecycle", () => {
    it("fetches a token, opens a link, syncs first, then sends the outbox; live once synced", () => {
      const h = new Harness({}, { outbox: [send("a")] });
      h.core.start();
      expect(h.tokens).toEqual([0]);
      expect(h.writes.map((w) => w.request.kind)).toEqual(["sync", "send"]);
      expect(h.core.state).toBe("syncing");
      h.core.answered(h.link, h.written("sync")[0]!.requestId, EMPTY_SYNC);
      expect(h.states).toEqual(["connecting", "syncing", "live"]);
    });

    it("sends the restored cursors in its first sync", () => {
      const h = new Harness({}, { cursors: [{ conversationId: "c", lastSeq: 7, readSeq: 3 }] });
      h.core.start();
      expect(h.written("sync")[0]!.request).toEqual({ kind: "sync", cursors: [{ conversationId: "c", lastSeq: 7, readSeq: 3 }], resync: false });
    });

    it.each<[string, DisconnectKind, number, number]>([
      ["slow consumer: at once", "slow-consumer", 0, 0],
      ["expired token: at once, with a fresh token", "token-expired", 0, 0],
      ["shutdown: not before the server's delay", "server-shutdown", 5000, 5000],
      ["heartbeat timeout: backoff", "heartbeat-timeout", 0, 125],
      ["protocol error: backoff", "protocol-error", 0, 125],
    ])("reconnects by disconnect reason (%s)", (_name, kind, reconnectAfterMs, expectedDelayMs) => {
      const h = new Harness();
      h.live();
      h.core.serverDisconnect(h.link, kind, reconnectAfterMs);
      expect(h.closed).toEqual([{ link: 1, cause: "server-disconnect" }]);
      expect(h.core.state).toBe("offline");
      expect(h.core.nextWakeMs()).toBe(expectedDelayMs);
      h.advance(expectedDelayMs);
      expect(h.tokens).toEqual([0, 1]);
      expect(h.opened).toEqual([1, 2]);
    });

    it("backs off exponentially with full jitter while attempts fail, and resets once live", () => {
      const h = new Harness({ random: () => 0.999, backoff: { baseMs: 100, maxMs: 1000 } });
      h.core.start();
      const delays: number[] = [];
      for (let i = 0; i < 5; i++) {
        const before = h.now;
        h.core.linkLost(h.link);
        h.advance(h.core.nextWakeMs()! - before);
        delays.push(h.now - before);
      }
      expect(delays).toEqual([100, 200, 400, 800, 999]); // ceilings 100 doubling, capped at 1000
      h.core.answered(h.link, h.written("sync")[0]!.requestId, EMPTY_SYNC);
      h.core.linkLost(h.link);
      expect(h.core.nextWakeMs()! - h.now).toBe(100);
    });

    it("ignores a link it closed: late answers and pushes do nothing", () => {
      const h = new Harness();
      h.live();
      const old = h.link;
      h.core.linkLost(old);
      h.core.push(old, { conversationId: "c", seq: 1, prevSeq: 0, text: "" });
      expect(h.delivered).toEqual([]);
    });
  });

  describe("heartbeats", () => {
    it("pings after the interval without writes, and abandons a silent link after the timeout", () => {
      const h = new Harness({ heartbeatIntervalMs: 1000, heartbeatTimeoutMs: 3000 });
      h.live();
      h.advance(999);
      expect(h.written("ping")).toHaveLength(0);
      h.advance(1);
      expect(h.written("ping")).toHaveLength(1);
      h.advance(1500);
      h.core.heard(h.link);
      h.advance(2999);
      expect(h.closed).toEqual([]);
      h.advance(1);
      expect(h.closed).toEqual([{ link: 1, cause: "heartbeat-timeout" }]);
      expect(h.core.state).toBe("offline");
    });

    it("sends no ping while requests keep the link busy", () => {
      const h = new Harness({ heartbeatIntervalMs: 1000 });
      h.live();
      for (let i = 0; i < 5; i++) {
        h.advance(900);
        h.core.markRead(i, "c", 1);
      }
      expect(h.written("ping")).toHaveLength(0);
    });

    it("interval 0: no application pings and no silence timeout (liveness is the transport's HTTP/2 PING)", () => {
      const h = new Harness({ heartbeatIntervalMs: 0 });
      h.live();
      expect(h.core.nextWakeMs()).toBe(60_000); // only the resync
      h.advance(3_600_000);
      expect(h.written("ping")).toHaveLength(0);
      expect(h.closed).toEqual([]);
      expect(h.written("sync").length).toBeGreaterThan(1);
    });

    it("browser mode: no pings, but a push stream silent past the timeout is abandoned", () => {
      const h = new Harness({ mode: "browser", heartbeatTimeoutMs: 2000 });
      h.live();
      h.advance(1999);
      expect(h.written("ping")).toHaveLength(0);
      h.advance(1);
      expect(h.closed).toEqual([{ link: 1, cause: "heartbeat-timeout" }]);
    });
  });

  describe("the outbox", () => {
    it("resends a send whose link died with the same clientMsgId on the next link", () => {
      const h = new Harness();
      h.live();
      expect(h.core.send(send("a"))).toBe("queued");
      h.core.linkLost(h.link);
      h.advance(1000);
      const resent = h.written("send");
      expect(resent.map((w) => w.request)).toEqual([{ kind: "send", send: send("a"), attempt: 2 }]);
      h.core.answered(h.link, resent[0]!.requestId, { kind: "send", ack: ack("a", 1) });
      expect(h.sends).toEqual([{ id: "a", outcome: { ok: true, value: ack("a", 1) } }]);
      expect(h.delivered).toEqual([1]);
    });

    it("retries a retryable failure on the same live link after max(retry_after_ms, backoff)", () => {
      const h = new Harness();
      h.live();
      h.core.send(send("a"));
      h.core.failed(h.link, h.written("send")[0]!.requestId, { ...RETRYABLE, retryAfterMs: 700 });
      h.advance(699);
      expect(h.written("send")).toHaveLength(1);
      h.advance(1);
      expect(h.written("send")).toHaveLength(2);
      h.core.failed(h.link, h.written("send")[1]!.requestId, RETRYABLE);
      h.advance(250); // backoff of the second failure: 0.5 * 501
      expect(h.written("send")).toHaveLength(3);
      expect(h.opened).toEqual([1]);
    });

    it("keeps a conversation's sends in order through retries: none overtakes an earlier parked one", () => {
      const h = new Harness();
      h.live();
      h.core.send(send("a"));
      h.core.send(send("b"));
      const [a, b] = h.written("send");
      h.core.failed(h.link, a!.requestId, { ...RETRYABLE, retryAfterMs: 700 });
      h.core.failed(h.link, b!.requestId, RETRYABLE);
      // A new send of the conversation waits behind the parked ones too.
      h.core.send(send("c"));
      expect(h.written("send")).toHaveLength(2);
      h.advance(699);
      expect(h.written("send")).toHaveLength(2);
      h.advance(1);
      const order = h.written("send").slice(2).map((w) => (w.request as { send: PendingSend }).send.clientMsgId);
      expect(order).toEqual(["a", "b", "c"]);
      // Another conversation is not held up by this one.
      h.core.send({ ...send("d"), conversationId: "other" });
      expect(h.written("send").map((w) => (w.request as { send: PendingSend }).send.clientMsgId).at(-1)).toBe("d");
    });

    it("settles a refused send as failed and drops it", () => {
      const h = new Harness();
      h.live();
      h.core.send(send("a"));
      h.core.failed(h.link, h.written("send")[0]!.requestId, REFUSED);
      expect(h.sends).toEqual([{ id: "a", outcome: { ok: false, failure: REFUSED } }]);
      expect(h.core.outboxSize).toBe(0);
    });

    it("is bounded, and refuses a clientMsgId already waiting", () => {
      const h = new Harness({ outboxMax: 2 });
      expect([h.core.send(send("a")), h.core.send(send("a")), h.core.send(send("b")), h.core.send(send("c"))]).toEqual(["queued", "duplicate", "queued", "full"]);
    });
  });

  describe("requests", () => {
    it("keeps at most requestsInFlightMax in flight; the rest wait their turn in order", () => {
      const h = new Harness({ requestsInFlightMax: 2 });
      h.live();
      for (const id of ["a", "b", "c"]) h.core.send(send(id));
      expect(h.written("send").map((w) => (w.request as { send: PendingSend }).send.clientMsgId)).toEqual(["a", "b"]);
      h.core.answered(h.link, h.written("send")[0]!.requestId, { kind: "send", ack: ack("a", 1) });
      expect(h.written("send").map((w) => (w.request as { send: PendingSend }).send.clientMsgId)).toEqual(["a", "b", "c"]);
    });

    it("matches answers across the in-flight table emptying and filling again; a repeated answer is ignored", () => {
      const h = new Harness({ requestsInFlightMax: 1 });
      h.live();
      h.core.send(send("a"));
      const first = h.written("send")[0]!.requestId;
      h.core.answered(h.link, first, { kind: "send", ack: ack("a", 1) });
      h.core.send(send("b"));
      h.core.send(send("c"));
      expect(h.written("send").map((w) => (w.request as { send: PendingSend }).send.clientMsgId)).toEqual(["a", "b"]);
      h.core.answered(h.link, first, { kind: "send", ack: ack("a", 1) });
      expect(h.written("send")).toHaveLength(2);
      h.core.answered(h.link, h.written("send")[1]!.requestId, { kind: "send", ack: ack("b", 2) });
      h.core.answered(h.link, h.written("send")[2]!.requestId, { kind: "send", ack: ack("c", 3) });
      expect(h.sends.map((s) => [s.id, s.outcome.ok])).toEqual([["a", true], ["b", true], ["c", true]]);
      expect(h.core.outboxSize).toBe(0);
    });

    it("fails markRead calls in flight when the link dies; syncs are redone on the next link", () => {
      const h = new Harness();
      h.live();
      h.core.markRead(7, "c", 1);
      h.core.linkLost(h.link);
      expect(h.markReads).toEqual([{ handle: 7, outcome: { ok: false, failure: expect.objectContaining({ reason: "connection-lost", retryable: true }) } }]);
      h.core.markRead(8, "c", 1);
      expect(h.markReads[1]!.outcome).toEqual({ ok: false, failure: expect.objectContaining({ reason: "not-connected" }) });
      h.advance(1000);
      expect(h.written("sync")).toHaveLength(1);
    });

    it("moves its own read position with the answer to markRead", () => {
      const h = new Harness();
      h.live();
      h.core.markRead(1, "c", 4);
      h.core.answered(h.link, h.written("markRead")[0]!.requestId, { kind: "markRead", readSeq: 4 });
      expect(h.reads).toEqual([4]);
      expect(h.core.cursor("c").readSeq).toBe(4);
    });

    it("closes the link on an answer of the wrong kind", () => {
      const h = new Harness();
      h.core.start();
      h.core.answered(h.link, h.written("sync")[0]!.requestId, { kind: "markRead", readSeq: 1 });
      expect(h.closed).toEqual([{ link: 1, cause: "protocol-error" }]);
    });

    it("drops the link when a sync or fetch fails, so the next one syncs again", () => {
      const h = new Harness();
      h.core.start();
      h.core.failed(h.link, h.written("sync")[0]!.requestId, RETRYABLE);
      expect(h.closed).toEqual([{ link: 1, cause: "request-failed" }]);
      expect(h.errors).toHaveLength(1);
    });
  });

  describe("tokens", () => {
    it("reconnects at once with a fresh token when a request is refused as unauthenticated; the send stays", () => {
      const h = new Harness();
      h.live();
      h.core.send(send("a"));
      h.core.failed(h.link, h.written("send")[0]!.requestId, { ...REFUSED, unauthenticated: true });
      expect(h.closed).toEqual([{ link: 1, cause: "unauthenticated" }]);
      expect(h.core.nextWakeMs()).toBe(0);
      h.advance(0);
      expect(h.tokens).toEqual([0, 1]);
      expect(h.written("send")).toHaveLength(1);
      expect(h.sends).toEqual([]);
    });

    it("backs off when the token provider fails", () => {
      const h = new Harness();
      h.autoToken = false;
      h.core.start();
      h.core.tokenFailed(0, new Error("auth service down"));
      expect(h.errors).toHaveLength(1);
      expect(h.core.state).toBe("offline");
      expect(h.core.nextWakeMs()).toBe(125);
    });
  });

  describe("resync and gaps", () => {
    it("syncs a live, idle client every resyncIntervalMs", () => {
      const h = new Harness({ resyncIntervalMs: 5000 });
      h.live();
      h.advance(4999);
      expect(h.written("sync")).toHaveLength(1);
      h.advance(1);
      expect(h.written("sync")[1]!.request).toMatchObject({ kind: "sync", resync: true });
      expect(h.core.state).toBe("live");
    });

    it("wakes at the end of the reorder window and fetches the gap a push revealed", () => {
      const h = new Harness({ reorderWindowMs: 30, heartbeatIntervalMs: 0, resyncIntervalMs: 0 });
      h.live();
      h.core.push(h.link, { conversationId: "c", seq: 1, prevSeq: 0, text: "" });
      h.core.push(h.link, { conversationId: "c", seq: 3, prevSeq: 2, text: "" });
      expect(h.core.nextWakeMs()).toBe(30);
      h.advance(30);
      expect(h.written("fetch").map((w) => w.request)).toEqual([{ kind: "fetch", conversationId: "c", afterSeq: 1, upToSeq: 2 }]);
      h.core.answered(h.link, h.written("fetch")[0]!.requestId, { kind: "fetch", messages: [{ conversationId: "c", seq: 2, prevSeq: 1, text: "" }], hasMore: false });
      expect(h.delivered).toEqual([1, 2, 3]);
      expect(h.core.idle()).toBe(true);
    });
  });

  it("close() settles waiting sends as closed, closes the link and wakes for nothing", () => {
    const h = new Harness();
    h.live();
    h.core.send(send("a"));
    h.core.close();
    expect(h.sends).toEqual([{ id: "a", outcome: { ok: false, failure: expect.objectContaining({ reason: "closed" }) } }]);
    expect(h.closed).toEqual([{ link: 1, cause: "closed" }]);
    expect(h.core.nextWakeMs()).toBeUndefined();
    expect(h.core.send(send("b"))).toBe("closed");
  });
});
