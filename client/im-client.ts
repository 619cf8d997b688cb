import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import { createWritableIterable, type WritableIterable } from "@connectrpc/connect/protocol";
import {
  ConnectRequestSchema,
  DisconnectReason,
  GatewayService,
  type ConnectRequest,
  type ConnectResponse,
  type Disconnect,
  type FetchRangeResponse,
  type MarkReadResponse,
  type ReadPosition,
  type SendResponse,
  type SyncResponse,
} from "../gen/im/v1/gateway_pb.js";
import { ConversationService } from "../gen/im/v1/conversation_pb.js";
import { ErrorDetailSchema, type Message, type Session } from "../gen/im/v1/message_pb.js";
import { backoffDelayMs, type BackoffOptions } from "./backoff.js";
import { fromWireMessage, type ClientMessage } from "./client-message.js";
import { Emitter } from "./emitter.js";
import { SyncEngine, type ClientCursor, type SyncEffect, type SyncEngineFaults } from "./sync-engine.js";

/** Connection states, in the order a healthy client goes through them. */
export type ClientState = "idle" | "connecting" | "syncing" | "live" | "offline" | "closed";

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
  /** Interval of pings on an idle connection. Default 15 s. */
  readonly heartbeatIntervalMs?: number;
  /** Silence from the server after which the connection is abandoned. Default 45 s. */
  readonly heartbeatTimeoutMs?: number;
  /** Reconnect backoff. Default 250 ms doubling to 30 s, full jitter. */
  readonly backoff?: BackoffOptions;
  /**
   * While live and idle, sync this often, so a push lost at the tail of a conversation (which
   * shows no prev_seq gap until the next message) is seen within this bound. Default 60 s.
   */
  readonly resyncIntervalMs?: number;
  /** Most sends waiting for acknowledgement; send() rejects beyond it. Default 1000. */
  readonly outboxMax?: number;
  /** Where the client stood before (restored from the app's storage). */
  readonly cursors?: readonly ClientCursor[];
  /** [0, 1) randomness for backoff jitter and client_msg_ids. Default Math.random. */
  readonly random?: () => number;
  /** The user's id, for the sender of its own messages; read from the token's `sub` when absent. */
  readonly userId?: string;
  /**
   * "stream" (default): one bidirectional stream. "browser": a Subscribe server stream plus
   * unary calls, for runtimes that cannot open bidirectional streams (browsers).
   */
  readonly mode?: "stream" | "browser";
  /** Test-only switches that break the client on purpose. */
  readonly faults?: SyncEngineFaults & { readonly dropPush?: (m: ClientMessage) => boolean };
}

interface PendingRequest {
  resolve(frame: ConnectResponse["frame"]): void;
  reject(error: ConnectError): void;
}

interface OutboxEntry {
  readonly request: ConnectRequest["frame"] & { case: "send" };
  readonly contentType: string;
  readonly data: Uint8Array;
  /** Retries of this send on live connections, for its backoff. */
  attempts: number;
  resolve(result: SendResponse): void;
  reject(error: Error): void;
}

/** One connection: how requests reach the server and get their answers. */
interface Link {
  request(frame: ConnectRequest["frame"]): Promise<ConnectResponse["frame"]>;
  /** Fails every request still waiting. */
  close(lost: ConnectError): void;
}

/** Requests as frames on the bidi stream, answered by frames with the same request_id. */
function bidiLink(abort: AbortController): Link & { outgoing: WritableIterable<ConnectRequest>; answer(r: ConnectResponse): void } {
  const outgoing = createWritableIterable<ConnectRequest>();
  const pending = new Map<bigint, PendingRequest>();
  let nextRequestId = 1n;
  return {
    outgoing,
    request(frame) {
      if (abort.signal.aborted) return Promise.reject(new ConnectError("not connected", Code.Unavailable));
      const requestId = nextRequestId++;
      return new Promise((resolve, reject) => {
        pending.set(requestId, { resolve, reject });
        outgoing.write(create(ConnectRequestSchema, { requestId, frame })).catch((error: unknown) => {
          pending.delete(requestId);
          reject(ConnectError.from(error));
        });
      });
    },
    answer(response) {
      const waiting = pending.get(response.requestId);
      pending.delete(response.requestId);
      const frame = response.frame;
      if (frame.case === "error") {
        const detail = frame.value.detail;
        waiting?.reject(new ConnectError(frame.value.message, frame.value.code as Code, undefined, detail === undefined ? undefined : [{ desc: ErrorDetailSchema, value: detail }]));
      } else {
        waiting?.resolve(frame);
      }
    },
    close(lost) {
      outgoing.close();
      for (const p of pending.values()) p.reject(lost);
      pending.clear();
    },
  };
}

/**
 * The SDK client: one long connection (Connect bidi stream), heartbeats, reconnect with
 * jittered exponential backoff, sync on every (re)connect, gap repair, and idempotent resend of
 * unacknowledged sends. All ordering and gap logic lives in SyncEngine.
 */
export class ImClient extends Emitter<ImClientEvents> {
  /** Generated client of the conversation service, with the token attached. */
  readonly conversations: Client<typeof ConversationService>;
  #gateway: Client<typeof GatewayService>;
  #conversationClient: Client<typeof ConversationService>;
  #attempts = 0;
  readonly #options: ImClientOptions;
  readonly #engine: SyncEngine<ClientMessage>;
  readonly #outbox = new Map<string, OutboxEntry>();
  readonly #random: () => number;
  #state: ClientState = "idle";
  #link: Link | undefined;
  /** Aborts the current connection attempt or connection. */
  #abort: AbortController | undefined;
  #closed = false;
  #running: Promise<void> | undefined;
  #wakeSleep: (() => void) | undefined;
  #userId = "";

  constructor(options: ImClientOptions) {
    super();
    this.#options = options;
    this.#random = options.random ?? Math.random;
    this.#engine = new SyncEngine<ClientMessage>({ cursors: options.cursors, faults: options.faults });
    const transport = typeof options.transport === "function" ? options.transport(0) : options.transport;
    this.#gateway = createClient(GatewayService, transport);
    this.#conversationClient = createClient(ConversationService, transport);
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
    return this.#state;
  }

  /** Opens the connection and keeps it open (reconnecting) until close(). */
  start(): void {
    this.#running ??= this.#run();
  }

  /** Closes the connection for good. Unacknowledged sends are rejected. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#abort?.abort();
    this.#wakeSleep?.();
    await this.#running;
    for (const entry of this.#outbox.values()) entry.reject(new ConnectError("client closed", Code.Canceled));
    this.#outbox.clear();
    this.#setState("closed");
  }

  /**
   * Sends a message; resolves with the server's result once it is stored (durably), across
   * reconnects if needed. The same clientMsgId is used for every retry, so it is stored once.
   */
  send(input: SendInput): Promise<SendResponse> {
    if (this.#closed) return Promise.reject(new ConnectError("client closed", Code.Canceled));
    if (this.#outbox.size >= (this.#options.outboxMax ?? 1000)) {
      return Promise.reject(new ConnectError("too many sends waiting for acknowledgement", Code.ResourceExhausted));
    }
    const data = typeof input.body === "string" ? new TextEncoder().encode(input.body) : input.body;
    const contentType = input.contentType ?? (typeof input.body === "string" ? "text/plain; charset=utf-8" : "application/octet-stream");
    const clientMsgId = input.clientMsgId ?? this.#randomId();
    const target =
      input.conversationId !== undefined
        ? { case: "conversationId" as const, value: input.conversationId }
        : { case: "toUserId" as const, value: input.toUserId ?? "" };
    return new Promise<SendResponse>((resolve, reject) => {
      const entry: OutboxEntry = {
        request: { case: "send", value: { $typeName: "im.v1.SendRequest", target, clientMsgId, body: { $typeName: "im.v1.MessageBody", contentType, data } } },
        contentType,
        data,
        attempts: 0,
        resolve,
        reject,
      };
      this.#outbox.set(clientMsgId, entry);
      if (this.#state === "syncing" || this.#state === "live") this.#transmit(entry);
    });
  }

  /** Marks a conversation read up to `readSeq` (needs a live connection). */
  async markRead(conversationId: string, readSeq: number): Promise<number> {
    const frame = await this.#request({ case: "markRead", value: { $typeName: "im.v1.MarkReadRequest", conversationId, readSeq: BigInt(readSeq) } });
    const effective = Number((frame as { value: MarkReadResponse }).value.readSeq);
    // The server tells this user's other connections, not this one: the answer moves ours.
    this.#apply(this.#engine.readPosition(conversationId, effective), () => {});
    return effective;
  }

  /** Cursors to persist, so a restarted app syncs only what is new. */
  cursors(): ClientCursor[] {
    return this.#engine.cursors();
  }

  /** The last delivered seq of a conversation. */
  lastSeq(conversationId: string): number {
    return this.#engine.lastSeq(conversationId);
  }

  /** True when live, synced, with no gap being repaired and no send waiting. */
  idle(): boolean {
    return this.#state === "live" && this.#engine.idle() && this.#outbox.size === 0;
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

  #setState(state: ClientState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.emit("state", state);
  }

  async #run(): Promise<void> {
    let attempt = 0;
    while (!this.#closed) {
      this.#setState("connecting");
      let disconnect: Disconnect | undefined;
      try {
        disconnect = await this.#session(() => (attempt = 0));
      } catch (error) {
        if (!this.#closed) this.emit("error", ConnectError.from(error));
      }
      if (this.#closed) break;
      this.#setState("offline");
      const backoff = this.#options.backoff ?? { baseMs: 250, maxMs: 30_000 };
      const immediate = disconnect?.reason === DisconnectReason.SLOW_CONSUMER || disconnect?.reason === DisconnectReason.TOKEN_EXPIRED;
      const delay = immediate && attempt === 0 ? 0 : Math.max(disconnect?.reconnectAfterMs ?? 0, backoffDelayMs(attempt, backoff, this.#random));
      attempt++;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.#wakeSleep = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** One connection's lifetime; returns the server's disconnect frame if it sent one. */
  async #session(onLive: () => void): Promise<Disconnect | undefined> {
    const pick = this.#options.transport;
    if (typeof pick === "function" && this.#attempts > 0) {
      const transport = pick(this.#attempts);
      this.#gateway = createClient(GatewayService, transport);
      this.#conversationClient = createClient(ConversationService, transport);
    }
    this.#attempts++;
    const abort = new AbortController();
    this.#abort = abort;
    const heartbeatIntervalMs = this.#options.heartbeatIntervalMs ?? 15_000;
    const heartbeatTimeoutMs = this.#options.heartbeatTimeoutMs ?? 45_000;
    let lastHeard = Date.now();
    let link: Link | undefined;
    const heartbeat = setInterval(() => {
      if (Date.now() - lastHeard > heartbeatTimeoutMs) {
        abort.abort(new ConnectError("no answer from the server within the heartbeat timeout", Code.DeadlineExceeded));
        return;
      }
      void link?.request({ case: "ping", value: { $typeName: "im.v1.PingRequest", clientTimeMs: BigInt(Date.now()) } }).catch(() => {});
    }, heartbeatIntervalMs);
    // A lost push at the tail of a conversation shows no gap until the next message; a
    // periodic sync while idle bounds how long it can stay unseen.
    const resync = setInterval(() => {
      if (this.#state === "live") this.#apply(this.#engine.connected(), onLive);
    }, this.#options.resyncIntervalMs ?? 60_000);
    let disconnect: Disconnect | undefined;
    const begin = () => {
      this.#link = link;
      this.#setState("syncing");
      this.#apply(this.#engine.connected(), onLive);
      for (const entry of this.#outbox.values()) this.#transmit(entry);
    };
    const push = (frame: { case: "message"; value: Message } | { case: "read"; value: ReadPosition } | { case: "disconnect"; value: Disconnect }) => {
      if (frame.case === "disconnect") {
        disconnect = frame.value;
        this.emit("disconnect", frame.value);
      } else if (frame.case === "message") {
        const message = fromWireMessage(frame.value);
        if (this.#options.faults?.dropPush?.(message) !== true) this.#apply(this.#engine.receive(message), onLive);
      } else {
        this.#apply(this.#engine.readPosition(frame.value.conversationId, Number(frame.value.readSeq)), onLive);
      }
    };
    try {
      const token = await this.#token();
      this.#userId = this.#options.userId ?? subjectOf(token);
      const headers = { authorization: `Bearer ${token}` };
      if (this.#options.mode === "browser") {
        link = this.#browserLink(headers, abort);
        for await (const response of this.#gateway.subscribe({}, { headers, signal: abort.signal })) {
          lastHeard = Date.now();
          const frame = response.frame;
          // The first frame is a heartbeat sent once the subscription is registered: a sync
          // started after it misses nothing.
          if (frame.case === "heartbeatMs") {
            if (this.#link !== link) begin();
          } else if (frame.case !== undefined && frame.case !== "membership") {
            push(frame);
          }
        }
      } else {
        const bidi = bidiLink(abort);
        link = bidi;
        const responses = this.#gateway.connect(bidi.outgoing, { headers, signal: abort.signal });
        begin();
        for await (const response of responses) {
          lastHeard = Date.now();
          const frame = response.frame;
          if (frame.case === "disconnect" || frame.case === "message" || frame.case === "read") push(frame);
          else if (frame.case === "membership") continue;
          else bidi.answer(response);
        }
      }
    } finally {
      clearInterval(heartbeat);
      clearInterval(resync);
      this.#link = undefined;
      abort.abort();
      this.#engine.disconnected();
      link?.close(new ConnectError("connection lost", Code.Unavailable));
    }
    return disconnect;
  }

  /** Requests as unary calls, for the browser mode. */
  #browserLink(headers: Record<string, string>, abort: AbortController): Link {
    const gateway = this.#gateway;
    const options = { headers, signal: abort.signal };
    return {
      async request(frame) {
        switch (frame.case) {
          case "send":
            return { case: "send", value: await gateway.send(frame.value, options) };
          case "sync":
            return { case: "sync", value: await gateway.sync(frame.value, options) };
          case "fetchRange":
            return { case: "fetchRange", value: await gateway.fetchRange(frame.value, options) };
          case "markRead":
            return { case: "markRead", value: await gateway.markRead(frame.value, options) };
          default:
            // Pings: the server's heartbeats on the push stream prove liveness instead.
            return { case: undefined };
        }
      },
      close() {},
    };
  }

  /** Sends a request on the current connection and waits for its answer. */
  #request(frame: ConnectRequest["frame"]): Promise<ConnectResponse["frame"]> {
    const link = this.#link;
    if (link === undefined) return Promise.reject(new ConnectError("not connected", Code.Unavailable));
    return link.request(frame).catch((error: unknown) => Promise.reject(ConnectError.from(error)));
  }

  #transmit(entry: OutboxEntry): void {
    this.#request(entry.request).then(
      (frame) => {
        const result = (frame as { value: SendResponse }).value;
        const clientMsgId = entry.request.value.clientMsgId;
        if (this.#outbox.get(clientMsgId) !== entry) return;
        this.#outbox.delete(clientMsgId);
        entry.resolve(result);
        const own: ClientMessage = {
          conversationId: result.conversationId,
          seq: Number(result.seq),
          prevSeq: Number(result.prevSeq),
          messageId: result.messageId,
          senderId: this.#userId,
          sentAtMs: Number(result.sentAtMs),
          contentType: entry.contentType,
          data: entry.data,
          clientMsgId,
        };
        this.#apply(this.#engine.receive(own), () => {});
      },
      (error: ConnectError) => {
        const detail = error.findDetails(ErrorDetailSchema)[0];
        const retryable = detail?.retryable ?? error.code === Code.Unavailable;
        if (!retryable) {
          this.#outbox.delete(entry.request.value.clientMsgId);
          entry.reject(error);
          return;
        }
        // Retryable: it stays in the outbox. The next connection resends it; on this one it
        // goes out again after a backoff (the same client_msg_id, so it is stored once).
        const backoff = this.#options.backoff ?? { baseMs: 250, maxMs: 30_000 };
        const delay = Math.max(detail?.retryAfterMs ?? 0, backoffDelayMs(entry.attempts++, backoff, this.#random));
        const link = this.#link;
        setTimeout(() => {
          if (link !== undefined && this.#link === link && this.#outbox.get(entry.request.value.clientMsgId) === entry) this.#transmit(entry);
        }, delay);
      },
    );
  }

  /** Carries out the engine's decisions. */
  #apply(effects: readonly SyncEffect<ClientMessage>[], onLive: () => void): void {
    for (const effect of effects) {
      switch (effect.type) {
        case "deliver":
          for (const m of effect.messages) this.emit("message", m);
          break;
        case "read":
          this.emit("read", { conversationId: effect.conversationId, readSeq: effect.readSeq });
          break;
        case "removed":
          this.emit("removed", { conversationId: effect.conversationId });
          break;
        case "stuck":
          this.emit("stuck", { conversationId: effect.conversationId, lastSeq: effect.lastSeq });
          break;
        case "sync":
          this.#startSync(effect.cursors, onLive);
          break;
        case "fetch":
          this.#startFetch(effect.conversationId, effect.afterSeq, effect.upToSeq, onLive);
          break;
      }
    }
    if (this.#state === "syncing" && this.#engine.idle()) {
      this.#setState("live");
      onLive();
    }
  }

  #startSync(cursors: readonly ClientCursor[], onLive: () => void): void {
    const value = {
      $typeName: "im.v1.SyncRequest" as const,
      cursors: cursors.map((c) => ({ $typeName: "im.v1.SyncCursor" as const, conversationId: c.conversationId, lastSeq: BigInt(c.lastSeq), readSeq: BigInt(c.readSeq) })),
      maxMessagesPerConversation: 0,
      maxSessions: 0,
    };
    this.#request({ case: "sync", value }).then(
      (frame) => {
        const r = (frame as { value: SyncResponse }).value;
        for (const u of r.sessions) if (u.session !== undefined) this.emit("session", u.session);
        const effects = this.#engine.syncResult({
          sessions: r.sessions.map((u) => ({
            conversationId: u.session?.conversationId ?? "",
            lastSeq: Number(u.session?.lastSeq ?? 0n),
            readSeq: Number(u.session?.readSeq ?? 0n),
            messages: u.messages.map(fromWireMessage),
            hasMoreMessages: u.hasMoreMessages,
          })),
          removedConversationIds: r.removedConversationIds,
          hasMoreSessions: r.hasMoreSessions,
        });
        this.#apply(effects, onLive);
      },
      (error: ConnectError) => this.#fail(error),
    );
  }

  #startFetch(conversationId: string, afterSeq: number, upToSeq: number, onLive: () => void): void {
    const value = { $typeName: "im.v1.FetchRangeRequest" as const, conversationId, afterSeq: BigInt(afterSeq), upToSeq: BigInt(upToSeq), limit: 0 };
    this.#request({ case: "fetchRange", value }).then(
      (frame) => {
        const r = (frame as { value: FetchRangeResponse }).value;
        this.#apply(this.#engine.fetchResult(conversationId, r.messages.map(fromWireMessage), r.hasMore), onLive);
      },
      (error: ConnectError) => {
        this.#engine.fetchFailed(conversationId);
        this.#fail(error);
      },
    );
  }

  /** A sync or fetch failed: drop the connection; the next one syncs again. */
  #fail(error: ConnectError): void {
    if (this.#closed) return;
    this.emit("error", error);
    this.#abort?.abort(error);
  }
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
