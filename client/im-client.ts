import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import { GatewayService, type Disconnect, type SendResponse } from "../gen/im/v1/gateway_pb.js";
import { ConversationService } from "../gen/im/v1/conversation_pb.js";
import type { CallEvent } from "../gen/im/v1/call_pb.js";
import type { ConnectRequest, ConnectResponse } from "../gen/im/v1/gateway_pb.js";
import type { Session } from "../gen/im/v1/message_pb.js";
import type { BackoffOptions } from "./backoff.js";
import { ClientCore, type ClientHost, type ClientState, type Settled } from "./client-core.js";
import { clientSettings } from "./client-settings.js";
import { fromWireMessage, type ClientMessage } from "./client-message.js";
import type { PendingSend, SendAck } from "./client-protocol.js";
import type { ClientStore, HistoryQuery } from "./client-store.js";
import type { Clock } from "./clock.js";
import { openBrowserLink, openStreamLink, type LinkIo, type LinkSink } from "./connect-links.js";
import { Emitter } from "./emitter.js";
import type { ClientCursor } from "./sync-engine.js";
import { answerOf, disconnectKind, errorOfFailure, failureOf, sendResponseOf, syncAnswerOf } from "./wire-codec.js";

export type { ClientState } from "./client-core.js";

/** What the client tells the app. */
export interface ImClientEvents {
  /** A message, in log order per conversation, each once, with no gap before it. */
  message: ClientMessage;
  /** A read position moved (this user, another device). */
  read: { conversationId: string; readSeq: number };
  /** A session from a sync (new or changed conversation, with its metadata). */
  session: Session;
  /** The user left or was removed from a conversation. */
  removed: { conversationId: string };
  /** The connection state changed. */
  state: ClientState;
  /** The server closed the connection with a reason. */
  disconnect: Disconnect;
  /** Something failed that the client works around (reconnects, retries); for logs. */
  error: Error;
  /** A gap could not be closed; the next sync retries. */
  stuck: { conversationId: string; lastSeq: number };
  /** A send was stored by the server: every acknowledged send, including those resumed from a ClientStore after a restart. */
  sent: SendResponse;
  /** A send was refused for good (not retryable); it left the outbox. */
  sendFailed: { clientMsgId: string; error: ConnectError };
  /** A call event pushed to this user (see client/call-client.ts). */
  callEvent: CallEvent;
}

/** What to send. */
export interface SendInput {
  /** An existing conversation; or `toUserId` for the direct conversation with a user. */
  readonly conversationId?: string;
  readonly toUserId?: string;
  /** Text (sent as text/plain; charset=utf-8) or bytes. */
  readonly body: string | Uint8Array;
  readonly contentType?: string;
  /** Idempotency key; generated when absent. Reuse it to retry the same send. */
  readonly clientMsgId?: string;
}

/** Client settings. */
export interface ImClientOptions {
  /**
   * A Connect transport (createGrpcTransport / createConnectTransport from connect-node or
   * connect-web); or a function called before each connection attempt with its index (0, 1,
   * 2, ... over the client's life) that returns the transport to use, e.g. to move to another
   * gateway node after a failure: `(i) => transports[i % transports.length]`. Conversation
   * calls use the transport of the latest attempt.
   */
  readonly transport: Transport | ((attempt: number) => Transport);
  /** A bearer token, or a function that returns a fresh one (called on every (re)connect). */
  readonly token: string | (() => string | Promise<string>);
  /**
   * Ping after this long without writing anything. Default 15 s. 0: no application pings;
   * liveness is then the transport's job: give connect-node's transport `pingIntervalMs` and
   * `pingTimeoutMs` (HTTP/2 PING keepalive) and a dead link ends the stream.
   */
  readonly heartbeatIntervalMs?: number;
  /**
   * Silence from the server after which the connection is abandoned. Default 45 s with pings
   * or in browser mode (the server sends heartbeats there); 0 (off) when heartbeatIntervalMs is 0.
   */
  readonly heartbeatTimeoutMs?: number;
  /** Reconnect backoff. Default 250 ms doubling to 30 s, full jitter; reset once live. */
  readonly backoff?: BackoffOptions;
  /**
   * While live and idle, sync this often, so a push lost at the tail of a conversation (which
   * shows no prev_seq gap until the next message) is seen within this bound. Default 60 s; 0: never.
   */
  readonly resyncIntervalMs?: number;
  /** Most sends waiting for acknowledgement; send() rejects beyond it. Default 1000. */
  readonly outboxMax?: number;
  /** Most requests in flight on the connection; more wait their turn. Default 32 (the server allows 64). */
  readonly requestsInFlightMax?: number;
  /** How long a gap a push revealed waits for a reordered push before it is fetched. Default 50 ms. */
  readonly reorderWindowMs?: number;
  /**
   * Where the client stood before (restored from the app's storage). With `ImClient.open`,
   * only for conversations the store holds no cursor for.
   */
  readonly cursors?: readonly ClientCursor[];
  /** Sends a previous run never got acknowledged, resent first with their clientMsgId. */
  readonly outbox?: readonly PendingSend[];
  /**
   * The SDK's data layer: delivered messages, cursors and the outbox are written to it as they
   * change. Open the client with `ImClient.open(options)` to resume from what it holds.
   */
  readonly store?: ClientStore;
  /** [0, 1) randomness for backoff jitter and client_msg_ids. Default Math.random. */
  readonly random?: () => number;
  /** The user's id, for the sender of its own messages; read from the token's `sub` when absent. */
  readonly userId?: string;
  /**
   * "stream" (default): one bidirectional stream. "browser": a Subscribe server stream plus
   * unary calls, for runtimes that cannot open bidirectional streams (browsers).
   */
  readonly mode?: "stream" | "browser";
}

/** A monotonic clock (performance.now exists in browsers and Node). */
const monotonicClock: Clock = { nowMs: () => performance.now() };

interface Waiter<T> {
  resolve(value: T): void;
  reject(error: Error): void;
}

/**
 * The SDK client: a thin shell over ClientCore (client/client-core.ts), which holds all the
 * logic (connection lifecycle, reconnects, heartbeats, outbox, sync and gap repair). This
 * class owns what the core must not: the Connect transport and its streams, the token
 * provider, one real timer (armed at the core's next wake time), the app's promises and
 * events, and the writes to an optional ClientStore.
 */
export class ImClient extends Emitter<ImClientEvents> {
  /** Generated client of the conversation service, with the token attached. */
  readonly conversations: Client<typeof ConversationService>;
  #gateway: Client<typeof GatewayService>;
  #conversationClient: Client<typeof ConversationService>;
  readonly #options: ImClientOptions;
  readonly #core: ClientCore<ClientMessage>;
  readonly #random: () => number;
  readonly #links = new Map<number, LinkIo>();
  /** Requests made with `request()`, by request id. */
  readonly #frames = new Map<number, { link: number; resolve(frame: ConnectResponse["frame"]): void; reject(error: ConnectError): void }>();
  #frameIds = 0;
  readonly #sends = new Map<string, Waiter<SendResponse>[]>();
  readonly #markReads = new Map<number, Waiter<number>>();
  #nextHandle = 0;
  #userId = "";
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt: number | undefined;
  /** Store writes, one after the other, in the order the changes happened. */
  #storeWrites: Promise<void> = Promise.resolve();

  /**
   * A client resumed from `options.store`: its cursors and its outbox (resent with the same
   * clientMsgIds). `options.cursors` start only the conversations the store holds no cursor
   * for (e.g. where an app begins conversations it has never stored: at their newest message).
   */
  static async open(options: ImClientOptions): Promise<ImClient> {
    const saved = options.store === undefined ? undefined : await options.store.load();
    if (saved === undefined) return new ImClient(options);
    const stored = new Set(saved.cursors.map((c) => c.conversationId));
    const cursors = [...saved.cursors, ...(options.cursors ?? []).filter((c) => !stored.has(c.conversationId))];
    return new ImClient({ ...options, cursors, outbox: saved.outbox });
  }

  constructor(options: ImClientOptions) {
    super();
    this.#options = options;
    this.#random = options.random ?? Math.random;
    const transport = typeof options.transport === "function" ? options.transport(0) : options.transport;
    this.#gateway = createClient(GatewayService, transport);
    this.#conversationClient = createClient(ConversationService, transport);
    const settings = clientSettings<ClientMessage>({
      clock: monotonicClock,
      random: this.#random,
      ownMessage: (ack, send) => ownMessage(ack, send, this.#userId),
      mode: options.mode,
      heartbeatIntervalMs: options.heartbeatIntervalMs,
      heartbeatTimeoutMs: options.heartbeatTimeoutMs,
      backoff: options.backoff,
      resyncIntervalMs: options.resyncIntervalMs,
      outboxMax: options.outboxMax,
      requestsInFlightMax: options.requestsInFlightMax,
      reorderWindowMs: options.reorderWindowMs,
    });
    this.#core = new ClientCore(settings, this.#host(), { cursors: options.cursors, outbox: options.outbox });
    // Attach the bearer token to every conversation-service call, on the current transport.
    this.conversations = new Proxy(this.#conversationClient, {
      get: (_target, key) => {
        const target = this.#conversationClient;
        const method = Reflect.get(target, key) as unknown;
        if (typeof method !== "function") return method;
        return async (req: unknown, callOptions: { headers?: ConstructorParameters<typeof Headers>[0] } = {}) => {
          const headers = new Headers(callOptions.headers);
          headers.set("authorization", `Bearer ${await this.#token()}`);
          return (method as (r: unknown, o: unknown) => unknown).call(target, req, { ...callOptions, headers });
        };
      },
    });
  }

  /** The connection state. */
  get state(): ClientState {
    return this.#core.state;
  }

  /** Opens the connection and keeps it open (reconnecting) until close(). */
  start(): void {
    this.#core.start();
    this.#arm();
  }

  /**
   * Closes the connection for good. Unacknowledged sends are rejected; with a store they stay
   * in its outbox, so the next ImClient.open resends them.
   */
  async close(): Promise<void> {
    this.#core.close();
    this.#arm();
    await this.#storeWrites;
  }

  /**
   * Sends a message; resolves with the server's result once it is stored (durably), across
   * reconnects if needed. The same clientMsgId is used for every retry, so it is stored once.
   */
  send(input: SendInput): Promise<SendResponse> {
    const data = typeof input.body === "string" ? new TextEncoder().encode(input.body) : input.body;
    const contentType = input.contentType ?? (typeof input.body === "string" ? "text/plain; charset=utf-8" : "application/octet-stream");
    const send: PendingSend = {
      clientMsgId: input.clientMsgId ?? this.#randomId(),
      conversationId: input.conversationId ?? "",
      toUserId: input.conversationId !== undefined ? "" : (input.toUserId ?? ""),
      contentType,
      data,
    };
    return new Promise<SendResponse>((resolve, reject) => {
      const waiters = this.#sends.get(send.clientMsgId) ?? [];
      waiters.push({ resolve, reject });
      this.#sends.set(send.clientMsgId, waiters);
      const outcome = this.#core.send(send);
      if (outcome === "queued") {
        this.#persist((store) => store.addOutbox(send));
      } else if (outcome !== "duplicate") {
        waiters.pop();
        if (waiters.length === 0) this.#sends.delete(send.clientMsgId);
        reject(outcome === "closed" ? new ConnectError("client closed", Code.Canceled) : new ConnectError("too many sends waiting for acknowledgement", Code.ResourceExhausted));
      }
      this.#arm();
    });
  }

  /** Marks a conversation read up to `readSeq` (needs a live connection). */
  markRead(conversationId: string, readSeq: number): Promise<number> {
    const handle = ++this.#nextHandle;
    return new Promise<number>((resolve, reject) => {
      this.#markReads.set(handle, { resolve, reject });
      this.#core.markRead(handle, conversationId, readSeq);
      this.#arm();
    });
  }

  /** Cursors to persist, so a restarted app syncs only what is new. */
  cursors(): ClientCursor[] {
    return this.#core.cursors();
  }

  /** The last delivered seq of a conversation. */
  lastSeq(conversationId: string): number {
    return this.#core.lastSeq(conversationId);
  }

  /** True when live, synced, with no gap being repaired and no send waiting. */
  idle(): boolean {
    return this.#core.idle();
  }

  /** Stored history of a conversation, ascending, offline too (empty without a store). */
  async history(conversationId: string, query?: HistoryQuery): Promise<ClientMessage[]> {
    await this.#storeWrites;
    return (await this.#options.store?.messages(conversationId, query)) ?? [];
  }

  async #token(): Promise<string> {
    const t = this.#options.token;
    return typeof t === "string" ? t : t();
  }

  #randomId(): string {
    let id = "";
    for (let i = 0; i < 4; i++) id += Math.floor(this.#random() * 0x1_0000_0000).toString(16).padStart(8, "0");
    return id;
  }

  /** Keeps one timer, at the core's next wake time. */
  #arm(): void {
    const at = this.#core.nextWakeMs();
    if (at === this.#timerAt) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = at;
    if (at !== undefined) this.#timer = setTimeout(this.#wake, Math.max(0, Math.ceil(at - monotonicClock.nowMs())));
  }

  readonly #wake = (): void => {
    this.#timer = undefined;
    this.#timerAt = undefined;
    this.#core.tick();
    this.#arm();
  };

  #persist(write: (store: ClientStore) => Promise<void>): void {
    const store = this.#options.store;
    if (store === undefined) return;
    this.#storeWrites = this.#storeWrites.then(() => write(store)).catch((error: unknown) => this.emit("error", error instanceof Error ? error : new Error(String(error))));
  }

  #settleSend(send: PendingSend, outcome: Settled<SendAck>): void {
    const waiters = this.#sends.get(send.clientMsgId) ?? [];
    this.#sends.delete(send.clientMsgId);
    if (outcome.ok) {
      const result = sendResponseOf(outcome.value);
      this.#persist((store) => store.removeOutbox(send.clientMsgId));
      for (const w of waiters) w.resolve(result);
      this.emit("sent", result);
      return;
    }
    const error = errorOfFailure(outcome.failure);
    // Closing the client is not giving up on the send: a stored outbox resends it next time.
    if (outcome.failure.reason !== "closed") {
      this.#persist((store) => store.removeOutbox(send.clientMsgId));
      this.emit("sendFailed", { clientMsgId: send.clientMsgId, error });
    }
    for (const w of waiters) w.reject(error);
  }

  /** The core's port: links over the Connect transport, events, promises and the store. */
  #host(): ClientHost<ClientMessage> {
    return {
      fetchToken: (attempt) => {
        void this.#token().then(
          (token) => {
            this.#userId = this.#options.userId ?? subjectOf(token);
            this.#core.tokenReady(attempt, token);
            this.#arm();
          },
          (error: unknown) => {
            this.#core.tokenFailed(attempt, ConnectError.from(error));
            this.#arm();
          },
        );
      },
      openLink: (link, attempt, token) => {
        const pick = this.#options.transport;
        if (typeof pick === "function" && attempt > 0) {
          const transport = pick(attempt);
          this.#gateway = createClient(GatewayService, transport);
          this.#conversationClient = createClient(ConversationService, transport);
        }
        const headers = { authorization: `Bearer ${token}` };
        const browser = this.#options.mode === "browser";
        const io = (browser ? openBrowserLink : openStreamLink)(this.#gateway, headers, this.#sink(link));
        this.#links.set(link, io);
        if (!browser) this.#core.linkReady(link);
      },
      closeLink: (link, cause) => {
        this.#links.get(link)?.close();
        this.#links.delete(link);
        if (cause === "heartbeat-timeout") this.emit("error", new ConnectError("no answer from the server within the heartbeat timeout", Code.DeadlineExceeded));
      },
      write: (link, requestId, request) => this.#links.get(link)?.write(requestId, request),
      stateChanged: (state) => this.emit("state", state),
      deliver: (conversationId, messages) => {
        for (const m of messages) this.emit("message", m);
        const lastSeq = messages[messages.length - 1]!.seq;
        this.#persist((store) => store.appendMessages(conversationId, messages, lastSeq));
      },
      readMoved: (conversationId, readSeq) => {
        this.emit("read", { conversationId, readSeq });
        this.#persist((store) => store.setReadSeq(conversationId, readSeq));
      },
      removed: (conversationId) => {
        this.emit("removed", { conversationId });
        this.#persist((store) => store.removeConversation(conversationId));
      },
      stuck: (conversationId, lastSeq) => this.emit("stuck", { conversationId, lastSeq }),
      sendSettled: (send, outcome) => this.#settleSend(send, outcome),
      markReadSettled: (handle, outcome) => {
        const waiter = this.#markReads.get(handle);
        this.#markReads.delete(handle);
        if (outcome.ok) waiter?.resolve(outcome.value);
        else waiter?.reject(errorOfFailure(outcome.failure));
      },
      error: (cause) => this.emit("error", ConnectError.from(cause)),
    };
  }

  /**
   * Sends a request frame on the current long connection and waits for its answer (stream
   * mode; call control uses it). Rejects UNAVAILABLE when not connected.
   */
  request(frame: ConnectRequest["frame"]): Promise<ConnectResponse["frame"]> {
    const link = Math.max(-1, ...this.#links.keys());
    const io = this.#links.get(link);
    if (io?.writeFrame === undefined) return Promise.reject(new ConnectError("not connected (or browser mode: use the unary services)", Code.Unavailable));
    // Ids far above the core's own, so answers are told apart.
    const requestId = FRAME_REQUEST_IDS + ++this.#frameIds;
    return new Promise((resolve, reject) => {
      this.#frames.set(requestId, { link, resolve, reject });
      io.writeFrame!(requestId, frame);
    });
  }

  /**
   * Drops the current connection and connects again (e.g. after the device's network changed);
   * the new connection syncs as every reconnect does.
   */
  reconnect(): void {
    const link = Math.max(-1, ...this.#links.keys());
    this.#links.get(link)?.close();
  }

  /** Settles a request made with `request()`; false for the core's own requests. */
  #settleFrame(requestId: number, frame: ConnectResponse["frame"] | undefined, error: unknown): boolean {
    const waiter = this.#frames.get(requestId);
    if (waiter === undefined) return false;
    this.#frames.delete(requestId);
    if (frame !== undefined) waiter.resolve(frame);
    else waiter.reject(ConnectError.from(error));
    return true;
  }

  /** What one link reports, carried to the core. */
  #sink(link: number): LinkSink {
    const core = this.#core;
    const after = (): void => this.#arm();
    return {
      message: (m) => (core.push(link, fromWireMessage(m)), after()),
      read: (r) => (core.readPushed(link, r.conversationId, Number(r.readSeq)), after()),
      membership: () => (core.membershipChanged(link), after()),
      heartbeat: () => (core.heard(link), core.linkReady(link), after()),
      disconnect: (d) => {
        if (this.#links.has(link)) this.emit("disconnect", d);
        core.serverDisconnect(link, disconnectKind(d.reason), d.reconnectAfterMs);
        after();
      },
      callEvent: (e) => this.emit("callEvent", e),
      answer: (requestId, frame) => {
        if (this.#settleFrame(requestId, frame, undefined)) return;
        if (frame.case === "sync" && this.#links.has(link)) for (const u of frame.value.sessions) if (u.session !== undefined) this.emit("session", u.session);
        const answer = frame.case === "sync" ? { kind: "sync" as const, answer: syncAnswerOf(frame.value) } : answerOf(frame);
        if (answer !== undefined) core.answered(link, requestId, answer);
        after();
      },
      failure: (requestId, error) => {
        if (this.#settleFrame(requestId, undefined, error)) return;
        core.failed(link, requestId, failureOf(error));
        after();
      },
      ended: (error) => {
        for (const [id, waiter] of this.#frames) {
          if (waiter.link !== link) continue;
          this.#frames.delete(id);
          waiter.reject(new ConnectError("connection lost", Code.Unavailable));
        }
        if (this.#links.delete(link)) {
          if (error !== undefined) this.emit("error", ConnectError.from(error));
          core.linkLost(link);
        }
        after();
      },
    };
  }
}

/** Request ids of `request()` start here, above any id the core gives out. */
const FRAME_REQUEST_IDS = 2 ** 40;

function ownMessage(ack: SendAck, send: PendingSend, senderId: string): ClientMessage {
  return {
    conversationId: ack.conversationId,
    seq: ack.seq,
    prevSeq: ack.prevSeq,
    messageId: ack.messageId,
    senderId,
    sentAtMs: ack.sentAtMs,
    contentType: send.contentType,
    data: send.data,
    clientMsgId: send.clientMsgId,
  };
}

/** The `sub` claim of a JWT, read without verifying (the server verifies); "" if unreadable. */
function subjectOf(token: string): string {
  try {
    const payload = token.split(".")[1] ?? "";
    const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
    const sub = (JSON.parse(json) as { sub?: unknown }).sub;
    return typeof sub === "string" ? sub : "";
  } catch {
    return "";
  }
}
