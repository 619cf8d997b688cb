/**
 * The client SDK's logic as a pure state machine: connection lifecycle, reconnect by
 * disconnect reason with jittered backoff, heartbeats and half-open detection, the outbox with
 * resend and retry, request/answer matching with a bound on requests in flight, and the sync
 * engine. It reads time from an injected Clock, randomness from an injected function, and acts
 * only through its ClientHost: the host opens and closes links, writes requests, fetches
 * tokens and tells the app. Timeouts are data: the host calls tick() at nextWakeMs().
 *
 * The SDK's ImClient is a host over Connect transports and real timers; the simulator's
 * ClientDriver is a host over its in-process network and virtual time. Both run this code.
 */

import { backoffDelayMs } from "./backoff.js";
import { localFailure, type Answer, type ClientRequest, type DisconnectKind, type LinkCloseCause, type PendingSend, type RequestFailure, type SendAck } from "./client-protocol.js";
import type { ClientSettings } from "./client-settings.js";
import { Heartbeat } from "./heartbeat.js";
import { Outbox, WAITING, type OutboxEntry } from "./outbox.js";
import type { ChainMessage, ClientCursor, SyncEffect, SyncLogic } from "./sync-engine.js";

/** Connection states, in the order a healthy client goes through them. */
export type ClientState = "idle" | "connecting" | "syncing" | "live" | "offline" | "closed";

/** The outcome of a send or markRead. */
export type Settled<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly failure: RequestFailure };

/**
 * What the core asks of its environment. Calls happen synchronously inside the core's methods
 * and may call back into the core (the core is consistent at every call).
 */
export interface ClientHost<M extends ChainMessage> {
  /** Get a bearer token for connection attempt `attempt` (0, 1, ...); answer with tokenReady or tokenFailed. */
  fetchToken(attempt: number): void;
  /** Open link `link` for attempt `attempt`; report linkReady once it carries requests, linkLost when it dies. */
  openLink(link: number, attempt: number, token: string): void;
  /** The core is done with `link` (it hears nothing more from it): abort it. */
  closeLink(link: number, cause: LinkCloseCause): void;
  /** Write `request` on `link`; answer with answered/failed and the same requestId (pings need no answer). */
  write(link: number, requestId: number, request: ClientRequest): void;
  stateChanged(state: ClientState): void;
  /** Messages of one conversation, in log order, each once, with no gap before them. */
  deliver(conversationId: string, messages: readonly M[]): void;
  readMoved(conversationId: string, readSeq: number): void;
  removed(conversationId: string): void;
  /** A gap the server could not close; the next sync retries it. */
  stuck(conversationId: string, lastSeq: number): void;
  /** A send left the outbox: acknowledged, or refused for good, or the client was closed. */
  sendSettled(send: PendingSend, outcome: Settled<SendAck>): void;
  markReadSettled(handle: number, outcome: Settled<number>): void;
  /** Something failed that the core works around (a token, a sync, a fetch); for logs. */
  error(cause: unknown): void;
}

/** markRead calls waiting for a free request slot; beyond it they fail at once. */
const MARK_READS_QUEUED_MAX = 1000;

/** Where a restarted client stood: from the app's storage (ClientStore). */
export interface ClientRestore {
  readonly cursors?: readonly ClientCursor[];
  /** Sends never acknowledged, in order: resent with their clientMsgId. */
  readonly outbox?: readonly PendingSend[];
}

/** What a request in flight was for. */
type Purpose =
  | { readonly kind: "send"; readonly entry: OutboxEntry }
  | { readonly kind: "sync" }
  | { readonly kind: "fetch"; readonly conversationId: string }
  | { readonly kind: "markRead"; readonly handle: number; readonly conversationId: string };

const SYNC: Purpose = { kind: "sync" };

interface Queued {
  readonly request: ClientRequest;
  readonly purpose: Purpose;
}

/** See the file comment. */
export class ClientCore<M extends ChainMessage> {
  readonly #s: ClientSettings<M>;
  readonly #host: ClientHost<M>;
  readonly #engine: SyncLogic<M>;
  readonly #outbox: Outbox;
  readonly #heartbeat: Heartbeat;
  #state: ClientState = "idle";
  #closed = false;
  /** Connection attempts over the client's life (the host picks a transport by it). */
  #attempts = 0;
  /** Attempts since the client was last live: the backoff exponent. */
  #failures = 0;
  #reconnectAtMs = Infinity;
  /** The attempt whose token is awaited, plus one (0: none). */
  #tokenFor = 0;
  /** The current link (0: none) and whether it carries requests yet. */
  #link = 0;
  #ready = false;
  #nextLink = 0;
  #nextRequestId = 0;
  #inFlight: Map<number, Purpose> | undefined;
  #queue: Queued[] | undefined;
  #markReadsQueued = 0;
  #resyncAtMs = Infinity;
  #nextSyncIsResync = false;
  /** The user joined or left a conversation: sync as soon as nothing else is in flight. */
  #membershipSyncDue = false;
  /** The server's disconnect frame on the current link, read when planning the reconnect. */
  #disconnect: { readonly kind: DisconnectKind; readonly reconnectAfterMs: number } | undefined;

  constructor(settings: ClientSettings<M>, host: ClientHost<M>, restore: ClientRestore = {}) {
    this.#s = settings;
    this.#host = host;
    this.#engine = settings.createEngine({ cursors: restore.cursors, clock: settings.clock, pendingMax: settings.pendingMax, reorderWindowMs: settings.reorderWindowMs });
    this.#outbox = new Outbox(settings.outboxMax);
    for (const send of restore.outbox ?? []) this.#outbox.add(send);
    this.#heartbeat = new Heartbeat(settings.heartbeatIntervalMs, settings.heartbeatTimeoutMs);
  }

  get state(): ClientState {
    return this.#state;
  }

  /** Connects, and keeps connecting, until close(). */
  start(): void {
    if (this.#state === "idle" && !this.#closed) this.#connect();
  }

  /** Closes for good: the link is closed, every waiting send and markRead fails with reason "closed". */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const link = this.#link;
    this.#link = 0;
    this.#ready = false;
    this.#tokenFor = 0;
    this.#reconnectAtMs = Infinity;
    this.#engine.disconnected();
    this.#failRequests(localFailure("closed"));
    const closed = { ok: false as const, failure: localFailure("closed") };
    for (const entry of [...this.#outbox.entries()]) {
      this.#outbox.delete(entry);
      this.#host.sendSettled(entry.send, closed);
    }
    this.#setState("closed");
    if (link !== 0) this.#host.closeLink(link, "closed");
  }

  /** Queues a send; it goes out at once when a link is up, else on the next one. */
  send(send: PendingSend): "queued" | "full" | "duplicate" | "closed" {
    if (this.#closed) return "closed";
    if (this.#outbox.get(send.clientMsgId) !== undefined) return "duplicate";
    const entry = this.#outbox.add(send);
    if (entry === undefined) return "full";
    if (this.#ready && !this.#outbox.parkBehind(entry)) this.#transmit(entry);
    return "queued";
  }

  /** Marks a conversation read; settled through host.markReadSettled(handle). Needs a live link. */
  markRead(handle: number, conversationId: string, readSeq: number): void {
    if (this.#closed) return this.#host.markReadSettled(handle, { ok: false, failure: localFailure("closed") });
    if (!this.#ready) return this.#host.markReadSettled(handle, { ok: false, failure: localFailure("not-connected") });
    if (this.#markReadsQueued >= MARK_READS_QUEUED_MAX) return this.#host.markReadSettled(handle, { ok: false, failure: localFailure("too-many") });
    this.#issue({ kind: "markRead", conversationId, readSeq }, { kind: "markRead", handle, conversationId });
  }

  /** The token for `attempt` is here. */
  tokenReady(attempt: number, token: string): void {
    if (this.#closed || this.#tokenFor !== attempt + 1) return;
    this.#tokenFor = 0;
    const link = ++this.#nextLink;
    this.#link = link;
    this.#ready = false;
    this.#nextRequestId = 0;
    this.#heartbeat.reset(this.#s.clock.nowMs());
    this.#host.openLink(link, attempt, token);
  }

  /** No token for `attempt`: back off and try again. */
  tokenFailed(attempt: number, cause: unknown): void {
    if (this.#closed || this.#tokenFor !== attempt + 1) return;
    this.#tokenFor = 0;
    this.#host.error(cause);
    this.#planReconnect();
  }

  /** The link carries requests now (stream: at once; browser: after the push stream's first heartbeat). */
  linkReady(link: number): void {
    if (link !== this.#link || this.#ready) return;
    this.#ready = true;
    this.#heartbeat.heard(this.#s.clock.nowMs());
    this.#setState("syncing");
    this.#apply(this.#engine.connected());
    if (this.#outbox.size > 0) for (const entry of [...this.#outbox.entries()]) if (entry.status === WAITING && this.#ready) this.#transmit(entry);
  }

  /** A pushed message arrived on `link`. */
  push(link: number, message: M): void {
    if (link !== this.#link) return;
    this.#heartbeat.heard(this.#s.clock.nowMs());
    this.#apply(this.#engine.receive(message));
  }

  /** A read position was pushed on `link`. */
  readPushed(link: number, conversationId: string, readSeq: number): void {
    if (link !== this.#link) return;
    this.#heartbeat.heard(this.#s.clock.nowMs());
    this.#apply(this.#engine.readPosition(conversationId, readSeq));
  }

  /**
   * The user joined or left a conversation (a group was created with it, it was added or
   * removed, or it left on another device). A sync follows as soon as the engine is idle: it
   * brings a joined conversation's session and messages, and reports a left one as removed.
   */
  membershipChanged(link: number): void {
    if (link !== this.#link) return;
    this.#heartbeat.heard(this.#s.clock.nowMs());
    this.#membershipSyncDue = true;
    this.#apply([]);
  }

  /** Something else arrived on `link` (a heartbeat, a pong): it is alive. */
  heard(link: number): void {
    if (link === this.#link) this.#heartbeat.heard(this.#s.clock.nowMs());
  }

  /** The answer to request `requestId` of `link`. */
  answered(link: number, requestId: number, answer: Answer<M>): void {
    if (link !== this.#link) return;
    this.#heartbeat.heard(this.#s.clock.nowMs());
    const purpose = this.#takeInFlight(requestId);
    if (purpose === undefined) return;
    if (purpose.kind !== answer.kind) {
      this.#drop("protocol-error");
      return;
    }
    switch (answer.kind) {
      case "send": {
        const entry = (purpose as Purpose & { kind: "send" }).entry;
        if (this.#outbox.get(entry.send.clientMsgId) === entry) {
          this.#outbox.delete(entry);
          this.#host.sendSettled(entry.send, { ok: true, value: answer.ack });
          if (!this.#closed) this.#apply(this.#engine.receive(this.#s.ownMessage(answer.ack, entry.send)));
        }
        break;
      }
      case "sync":
        this.#apply(this.#engine.syncResult(answer.answer));
        break;
      case "fetch":
        this.#apply(this.#engine.fetchResult((purpose as Purpose & { kind: "fetch" }).conversationId, answer.messages, answer.hasMore));
        break;
      case "markRead": {
        const p = purpose as Purpose & { kind: "markRead" };
        this.#host.markReadSettled(p.handle, { ok: true, value: answer.readSeq });
        // The server tells this user's other connections, not this one: the answer moves ours.
        if (!this.#closed) this.#apply(this.#engine.readPosition(p.conversationId, answer.readSeq));
        break;
      }
      default:
        break;
    }
    this.#drain();
  }

  /** Request `requestId` of `link` failed. */
  failed(link: number, requestId: number, failure: RequestFailure): void {
    if (link !== this.#link) return;
    this.#heartbeat.heard(this.#s.clock.nowMs());
    const purpose = this.#takeInFlight(requestId);
    if (purpose === undefined) return;
    if (failure.unauthenticated) {
      if (purpose.kind === "markRead") this.#host.markReadSettled(purpose.handle, { ok: false, failure });
      this.#host.error(failure.cause);
      this.#disconnect = { kind: "token-expired", reconnectAfterMs: 0 };
      this.#drop("unauthenticated");
      return;
    }
    switch (purpose.kind) {
      case "send": {
        const entry = purpose.entry;
        if (this.#outbox.get(entry.send.clientMsgId) !== entry) break;
        if (failure.retryable) {
          // It stays: on this link it goes out again after a backoff; a new link resends it at once.
          const delayMs = Math.max(failure.retryAfterMs, backoffDelayMs(entry.failures++, this.#s.backoff, this.#s.random));
          this.#outbox.retryAt(entry, this.#s.clock.nowMs() + delayMs);
        } else {
          this.#outbox.delete(entry);
          this.#host.sendSettled(entry.send, { ok: false, failure });
        }
        break;
      }
      case "markRead":
        this.#host.markReadSettled(purpose.handle, { ok: false, failure });
        break;
      case "fetch":
        this.#engine.fetchFailed(purpose.conversationId);
        this.#host.error(failure.cause);
        this.#drop("request-failed");
        return;
      case "sync":
        this.#host.error(failure.cause);
        this.#drop("request-failed");
        return;
    }
    this.#drain();
  }

  /** The server is ending `link` with a disconnect frame. */
  serverDisconnect(link: number, kind: DisconnectKind, reconnectAfterMs: number): void {
    if (link !== this.#link) return;
    this.#disconnect = { kind, reconnectAfterMs };
    this.#drop("server-disconnect");
  }

  /** `link` died (reset, refused, stream ended). */
  linkLost(link: number): void {
    if (link === this.#link) this.#lost();
  }

  /** Carries out what is due: reconnect, heartbeat, send retries, gap fetches, resync. */
  tick(): void {
    if (this.#closed) return;
    const now = this.#s.clock.nowMs();
    if (this.#state === "offline") {
      if (now >= this.#reconnectAtMs) this.#connect();
      return;
    }
    if (this.#link === 0) return;
    if (this.#heartbeat.timedOut(now)) {
      this.#drop("heartbeat-timeout");
      return;
    }
    if (!this.#ready) return;
    if (this.#s.pings && this.#heartbeat.pingDue(now)) {
      this.#heartbeat.sent(now);
      this.#host.write(this.#link, ++this.#nextRequestId, { kind: "ping", clientTimeMs: now });
    }
    for (const entry of this.#outbox.dueRetries(now)) if (this.#ready) this.#transmit(entry);
    this.#apply(this.#engine.tick());
    if (this.#state === "live" && now >= this.#resyncAtMs) {
      this.#resyncAtMs = now + this.#s.resyncIntervalMs;
      if (this.#engine.idle()) {
        this.#nextSyncIsResync = true;
        this.#apply(this.#engine.connected());
      }
    }
  }

  /** When tick() has something to do next; undefined: nothing until some input arrives. */
  nextWakeMs(): number | undefined {
    if (this.#closed) return undefined;
    let at: number;
    if (this.#state === "offline") at = this.#reconnectAtMs;
    else if (this.#link === 0) return undefined;
    else {
      at = this.#heartbeat.nextDueMs(this.#ready && this.#s.pings);
      if (this.#ready) {
        at = Math.min(at, this.#outbox.nextRetryMs(), this.#engine.nextDueMs() ?? Infinity);
        if (this.#state === "live") at = Math.min(at, this.#resyncAtMs);
      }
    }
    return at === Infinity ? undefined : at;
  }

  /** Live, synced, no gap being repaired, no send waiting. */
  idle(): boolean {
    return this.#state === "live" && this.#engine.idle() && this.#outbox.size === 0;
  }

  /** Cursors to persist, so a restarted app syncs only what is new. */
  cursors(): ClientCursor[] {
    return this.#engine.cursors();
  }

  cursor(conversationId: string): ClientCursor {
    return this.#engine.cursor(conversationId);
  }

  lastSeq(conversationId: string): number {
    return this.#engine.lastSeq(conversationId);
  }

  /** The sends waiting for acknowledgement, in order (what a ClientStore keeps). */
  outbox(): PendingSend[] {
    return [...this.#outbox.entries()].map((e) => e.send);
  }

  /** Sends waiting for acknowledgement. */
  get outboxSize(): number {
    return this.#outbox.size;
  }

  #connect(): void {
    this.#reconnectAtMs = Infinity;
    this.#setState("connecting");
    const attempt = this.#attempts++;
    this.#tokenFor = attempt + 1;
    this.#host.fetchToken(attempt);
  }

  #setState(state: ClientState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.#host.stateChanged(state);
  }

  /** Closes the current link on the core's own decision and plans the reconnect. */
  #drop(cause: LinkCloseCause): void {
    const link = this.#link;
    if (link === 0) return;
    this.#lost();
    this.#host.closeLink(link, cause);
  }

  /** The current link is gone: what was in flight on it, and the reconnect. */
  #lost(): void {
    this.#link = 0;
    this.#ready = false;
    this.#engine.disconnected();
    this.#resyncAtMs = Infinity;
    this.#nextSyncIsResync = false;
    // The next link syncs everything on connect.
    this.#membershipSyncDue = false;
    this.#outbox.allWaiting();
    this.#failRequests(localFailure("connection-lost"));
    if (!this.#closed) this.#planReconnect();
  }

  /** Fails the markRead calls in flight or queued; sends, syncs and fetches are redone on the next link. */
  #failRequests(failure: RequestFailure): void {
    const inFlight = this.#inFlight;
    const queue = this.#queue;
    if ((inFlight === undefined || inFlight.size === 0) && (queue === undefined || queue.length === 0)) return;
    // Detached before the app hears of it: a markRead it makes in reply must not land in them.
    const settled = inFlight === undefined ? [] : [...inFlight.values()];
    this.#inFlight = undefined;
    this.#queue = undefined;
    this.#markReadsQueued = 0;
    const outcome = { ok: false as const, failure };
    for (const p of settled) if (p.kind === "markRead") this.#host.markReadSettled(p.handle, outcome);
    if (queue !== undefined) for (const q of queue) if (q.purpose.kind === "markRead") this.#host.markReadSettled(q.purpose.handle, outcome);
  }

  /**
   * Reconnect delay by what ended the link: a slow consumer or an expired token reconnects at
   * once (first time), a shutting-down server's delay is respected, everything else backs off
   * with full jitter. The backoff resets once the client is live again.
   */
  #planReconnect(): void {
    const d = this.#disconnect;
    this.#disconnect = undefined;
    this.#setState("offline");
    const immediate = (d?.kind === "slow-consumer" || d?.kind === "token-expired") && this.#failures === 0;
    const delayMs = immediate ? 0 : Math.max(d?.reconnectAfterMs ?? 0, backoffDelayMs(this.#failures, this.#s.backoff, this.#s.random));
    this.#failures++;
    this.#reconnectAtMs = this.#s.clock.nowMs() + delayMs;
  }

  #transmit(entry: OutboxEntry): void {
    this.#outbox.inFlight(entry);
    entry.attempts++;
    this.#issue({ kind: "send", send: entry.send, attempt: entry.attempts }, { kind: "send", entry });
  }

  /** Writes a request, or queues it while the link has requestsInFlightMax in flight. */
  #issue(request: ClientRequest, purpose: Purpose): void {
    if (!this.#ready) return;
    if ((this.#inFlight?.size ?? 0) >= this.#s.requestsInFlightMax) {
      (this.#queue ??= []).push({ request, purpose });
      if (purpose.kind === "markRead") this.#markReadsQueued++;
      return;
    }
    this.#write(request, purpose);
  }

  /** Removes and returns what request `requestId` was for; an emptied map goes (most clients are idle most of the time). */
  #takeInFlight(requestId: number): Purpose | undefined {
    const inFlight = this.#inFlight;
    const purpose = inFlight?.get(requestId);
    if (purpose === undefined) return undefined;
    inFlight!.delete(requestId);
    if (inFlight!.size === 0) this.#inFlight = undefined;
    return purpose;
  }

  #write(request: ClientRequest, purpose: Purpose): void {
    const requestId = ++this.#nextRequestId;
    (this.#inFlight ??= new Map()).set(requestId, purpose);
    this.#heartbeat.sent(this.#s.clock.nowMs());
    this.#host.write(this.#link, requestId, request);
  }

  #drain(): void {
    const queue = this.#queue;
    while (this.#ready && queue !== undefined && queue.length > 0 && (this.#inFlight?.size ?? 0) < this.#s.requestsInFlightMax) {
      const next = queue.shift()!;
      if (next.purpose.kind === "markRead") this.#markReadsQueued--;
      this.#write(next.request, next.purpose);
    }
  }

  /** Carries out the engine's decisions. */
  #apply(effects: readonly SyncEffect<M>[]): void {
    for (const effect of effects) {
      if (this.#closed) return;
      switch (effect.type) {
        case "deliver":
          this.#host.deliver(effect.conversationId, effect.messages);
          break;
        case "read":
          this.#host.readMoved(effect.conversationId, effect.readSeq);
          break;
        case "removed":
          this.#host.removed(effect.conversationId);
          break;
        case "stuck":
          this.#host.stuck(effect.conversationId, effect.lastSeq);
          break;
        case "sync": {
          const resync = this.#nextSyncIsResync;
          this.#nextSyncIsResync = false;
          this.#issue({ kind: "sync", cursors: effect.cursors, resync }, SYNC);
          break;
        }
        case "fetch":
          this.#issue({ kind: "fetch", conversationId: effect.conversationId, afterSeq: effect.afterSeq, upToSeq: effect.upToSeq }, { kind: "fetch", conversationId: effect.conversationId });
          break;
      }
    }
    if (this.#state === "syncing" && this.#engine.idle()) {
      this.#failures = 0;
      this.#resyncAtMs = this.#s.resyncIntervalMs > 0 ? this.#s.clock.nowMs() + this.#s.resyncIntervalMs : Infinity;
      this.#setState("live");
    }
    if (this.#membershipSyncDue && this.#state === "live" && this.#engine.idle()) {
      this.#membershipSyncDue = false;
      this.#nextSyncIsResync = true;
      this.#apply(this.#engine.connected());
    }
  }
}
