import { createClient, type Client, type Transport } from "@connectrpc/connect";
import { CallClient } from "../../../client/call-client.js";
import { ImClient } from "../../../client/im-client.js";
import { fromWireMessage, type ClientMessage } from "../../../client/client-message.js";
import type { PendingSend } from "../../../client/client-protocol.js";
import { ConversationService } from "../../../gen/im/v1/conversation_pb.js";
import { GatewayService } from "../../../gen/im/v1/gateway_pb.js";
import { ConversationKind, type Session } from "../../../gen/im/v1/message_pb.js";
import { directConversationId, isUserId } from "../../../server/core/conversation-id.js";
import { canLoadOlder, chainEndingAt, displayName, HISTORY_PAGE, initialState, kindOfId, peerOf, seenSeq, type SessionInfo } from "../model/chat-state.js";
import { messageText } from "../model/message-text.js";
import { CallController } from "./call-controller.js";
import { RoomController } from "./room-controller.js";
import { openDeviceStorage, storageName, type CachedSession, type DeviceStorage } from "./device-storage.js";
import { disconnectWords, errorWords } from "./error-words.js";
import type { TokenSource } from "./token-source.js";
import { ChatStore } from "./store.js";
import { createWebTransport, isUnanswered, type WebProtocol } from "./transport.js";

/** Most sessions the page loads when it starts (the server's list, most recent first). */
export const START_SESSIONS_MAX = 2000;
/** Most members listed for a group. */
export const MEMBERS_SHOWN_MAX = 1000;
/** Most session-list entries the page keeps on the device. */
export const SESSIONS_CACHED_MAX = 10_000;
/** Reconnect backoff: the SDK's full jitter, capped low enough that a restarted server is found quickly. */
const BACKOFF = { baseMs: 250, maxMs: 8000 } as const;
/** The content type of texts, as the SDK sends strings. */
const TEXT = "text/plain; charset=utf-8";

/** What the controller needs from the page. */
export interface ChatControllerOptions {
  /** The gateway, e.g. the page's own origin. */
  readonly baseUrl: string;
  readonly protocol: WebProtocol;
  readonly tokens: TokenSource;
  /** Whether a person can see the page now. */
  readonly visible: () => boolean;
  /** A transport instead of the browser's (tests). */
  readonly transport?: Transport;
  /** This device's id for calls (default: one per tab, kept in sessionStorage across reloads). */
  readonly deviceId?: string;
  /** Opens the user's storage (default: IndexedDB when the page has it, else memory). */
  readonly storage?: (name: string) => Promise<DeviceStorage>;
}

/** A send the SDK's promise does not report on: resumed from the stored outbox, or stored there before the SDK opened. */
interface StoredSend {
  readonly conversationId: string;
  readonly text: string;
}

function sessionInfo(s: Session, cursorSeq: number): SessionInfo {
  return {
    conversationId: s.conversationId,
    kind: s.kind === ConversationKind.GROUP ? "group" : "direct",
    title: s.title,
    peerUserId: s.peerUserId,
    lastSeq: Number(s.lastSeq),
    readSeq: Number(s.readSeq),
    lastMessage: s.lastMessage === undefined ? undefined : fromWireMessage(s.lastMessage),
    cursorSeq,
  };
}

function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** User ids typed as "a, b c" -> ["a", "b", "c"]. */
export function parseUserIds(text: string): string[] {
  return [...new Set(text.split(/[\s,]+/).filter((s) => s !== ""))];
}

/**
 * The page's shell around the SDK: it starts from the server's session list, runs ImClient
 * in browser mode (Subscribe plus unary calls), pages history with FetchRange, and turns
 * everything the SDK and the server say into ChatState actions, errors in words.
 */
export class ChatController {
  readonly store: ChatStore;
  readonly #options: ChatControllerOptions;
  readonly #transport: Transport;
  readonly #gateway: Client<typeof GatewayService>;
  readonly #conversations: Client<typeof ConversationService>;
  #client: ImClient | undefined;
  readonly #clientReady: Promise<ImClient>;
  #resolveClient!: (client: ImClient) => void;
  /** The SDK is being opened: sends wait for it instead of going to the stored outbox. */
  #opening = false;
  #storage: DeviceStorage | undefined;
  readonly #storageReady: Promise<DeviceStorage>;
  #resolveStorage!: (storage: DeviceStorage) => void;
  /** Writes to the stored outbox made before the SDK opened, in order. */
  #outboxWrites: Promise<void> = Promise.resolve();
  /** Sends whose outcome comes as the SDK's sent / sendFailed events, by clientMsgId. */
  readonly #storedSends = new Map<string, StoredSend>();
  /** The session list as kept on the device. */
  #cached = new Map<string, CachedSession>();
  #running: Promise<void> | undefined;
  /** One-to-one calls, once the SDK is open. */
  readonly calls: Promise<CallController>;
  #resolveCalls!: (calls: CallController) => void;
  #calls: CallController | undefined;
  /** Group calls and live rooms on the media server, once the SDK is open. */
  readonly rooms: Promise<RoomController>;
  #resolveRooms!: (rooms: RoomController) => void;
  #rooms: RoomController | undefined;
  #closed = false;
  #wake: (() => void) | undefined;
  /** Read positions being sent, per conversation. */
  readonly #marking = new Set<string>();
  #refresh: ReturnType<typeof setTimeout> | undefined;

  constructor(options: ChatControllerOptions) {
    this.#options = options;
    this.store = new ChatStore(initialState(options.tokens.userId));
    this.#transport = options.transport ?? createWebTransport(options.baseUrl, options.protocol);
    this.#gateway = createClient(GatewayService, this.#transport);
    this.#conversations = createClient(ConversationService, this.#transport);
    this.#clientReady = new Promise((resolve) => (this.#resolveClient = resolve));
    this.#storageReady = new Promise((resolve) => (this.#resolveStorage = resolve));
    this.calls = new Promise((resolve) => (this.#resolveCalls = resolve));
    this.rooms = new Promise((resolve) => (this.#resolveRooms = resolve));
  }

  get userId(): string {
    return this.#options.tokens.userId;
  }

  /**
   * Shows what the device stored (history, unread counts, unsent messages), loads the
   * session list (retrying until the server answers), then opens the SDK on the stored
   * cursors and outbox and connects.
   */
  start(): Promise<void> {
    this.#running ??= this.#run();
    return this.#running;
  }

  async #run(): Promise<void> {
    const open = this.#options.storage ?? ((name: string) => openDeviceStorage(name));
    const storage = await open(storageName(this.#options.baseUrl, this.userId));
    this.#storage = storage;
    this.#resolveStorage(storage);
    this.store.dispatch({ type: "storage", kind: storage.kind, detail: storage.why });
    if (this.#closed) return;
    await this.#showStored(storage);
    const sessions = await this.#startingPoint();
    if (sessions === undefined) return;
    // Every send stored before this point is in the outbox the SDK loads; later ones wait for it.
    for (let writes = this.#outboxWrites; ; writes = this.#outboxWrites) {
      await writes;
      if (writes === this.#outboxWrites) break;
    }
    this.#opening = true;
    const client = await ImClient.open({
      transport: this.#transport,
      token: () => this.#options.tokens.token(),
      mode: "browser",
      userId: this.userId,
      backoff: BACKOFF,
      store: storage.clientStore,
      // Conversations the device never stored start at their newest message; older ones are history pages.
      cursors: sessions.map((s) => ({ conversationId: s.conversationId, lastSeq: s.lastSeq, readSeq: s.readSeq })),
    });
    this.#wire(client);
    this.#client = client;
    this.#resolveClient(client);
    if (this.#closed) return;
    const notice = (text: string) => this.store.dispatch({ type: "notice", text });
    const callOptions = { im: client, userId: this.userId, deviceId: this.#options.deviceId ?? deviceId(), transport: this.#transport, token: () => this.#options.tokens.token() };
    const callClient = new CallClient({ ...callOptions, unary: { transport: callOptions.transport, token: callOptions.token } });
    this.#calls = new CallController({ ...callOptions, client: callClient, notice });
    this.#rooms = new RoomController({ calls: callClient, userId: this.userId, notice });
    this.#resolveCalls(this.#calls);
    this.#resolveRooms(this.#rooms);
    client.start();
  }

  /** Stops for good. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#wake?.();
    clearTimeout(this.#refresh);
    await this.#running?.catch(() => undefined);
    this.#rooms?.close();
    this.#calls?.close();
    await this.#client?.close();
    await this.#storage?.close();
  }

  /**
   * Shows what the device holds before the server answers: the session list as last seen,
   * with the newest stored message and read position of each conversation the SDK stored,
   * and the sends never acknowledged (they go out again, with their client_msg_id, once the
   * SDK opens).
   */
  async #showStored(storage: DeviceStorage): Promise<void> {
    const { store } = this;
    const [saved, cached] = await Promise.all([storage.clientStore.load(), storage.sessions.load()]);
    this.#cached = new Map(cached.slice(0, SESSIONS_CACHED_MAX).map((s) => [s.conversationId, s]));
    const cursors = new Map(saved.cursors.map((c) => [c.conversationId, c]));
    const ids = [...new Set([...cursors.keys(), ...this.#cached.keys()])].slice(0, START_SESSIONS_MAX);
    const newest = await Promise.all(ids.map((id) => (cursors.has(id) ? storage.clientStore.messages(id, { limit: 1 }).then((page) => page[0]) : undefined)));
    const sessions = ids.map((id, i): SessionInfo => {
      const cursor = cursors.get(id);
      const seen = this.#cached.get(id);
      const stored = newest[i];
      const last = stored !== undefined && (seen?.lastMessage === undefined || stored.seq >= seen.lastMessage.seq) ? stored : seen?.lastMessage;
      return {
        ...this.#storedSession(id, Math.max(cursor?.lastSeq ?? 0, seen?.lastSeq ?? 0), Math.max(cursor?.readSeq ?? 0, seen?.readSeq ?? 0), last),
        // The thread begins where the SDK will deliver from: the stored cursor, else the newest message seen.
        cursorSeq: cursor?.lastSeq ?? seen?.lastSeq ?? 0,
      };
    });
    if (sessions.length > 0) store.dispatch({ type: "sessions", sessions, ranked: false });
    for (const send of saved.outbox) {
      const conversationId = send.conversationId !== "" ? send.conversationId : directConversationId(this.userId, send.toUserId);
      if (!store.state.conversations.has(conversationId)) {
        store.dispatch({ type: "created", session: this.#storedSession(conversationId, 0, 0, undefined), atMs: Date.now() });
      }
      const text = messageText(send);
      this.#storedSends.set(send.clientMsgId, { conversationId, text });
      store.dispatch({ type: "sendQueued", conversationId, clientMsgId: send.clientMsgId, text, atMs: Date.now() });
    }
  }

  #storedSession(conversationId: string, lastSeq: number, readSeq: number, newest: ClientMessage | undefined): SessionInfo {
    const kind = kindOfId(conversationId);
    return {
      conversationId,
      kind,
      title: this.#cached.get(conversationId)?.title ?? "",
      peerUserId: kind === "direct" ? peerOf(conversationId, this.userId) : "",
      lastSeq,
      readSeq,
      lastMessage: newest,
      cursorSeq: lastSeq,
    };
  }

  /** Keeps the server's session entries on the device (one write), so a page started offline lists them. */
  #cacheSessions(sessions: readonly SessionInfo[]): void {
    const storage = this.#storage;
    if (storage === undefined) return;
    const changed: CachedSession[] = [];
    for (const { cursorSeq: _, ...s } of sessions) {
      const known = this.#cached.get(s.conversationId);
      if (known === undefined && this.#cached.size >= SESSIONS_CACHED_MAX) continue;
      if (known !== undefined && known.lastSeq >= s.lastSeq && known.readSeq >= s.readSeq && (s.title === "" || known.title === s.title)) continue;
      const entry = known === undefined ? s : { ...s, title: s.title !== "" ? s.title : known.title, lastSeq: Math.max(s.lastSeq, known.lastSeq), readSeq: Math.max(s.readSeq, known.readSeq), lastMessage: s.lastMessage ?? known.lastMessage };
      this.#cached.set(s.conversationId, entry);
      changed.push(entry);
    }
    if (changed.length > 0) storage.sessions.put(changed).catch(() => undefined);
  }

  /**
   * The server's session list, retried until the server answers. It only adds to what the
   * device stored: conversations the store holds resume from their stored cursors (the SDK
   * delivers what came after), the others start at their newest message, and older messages
   * are history pages (from the store first, else FetchRange).
   */
  async #startingPoint(): Promise<SessionInfo[] | undefined> {
    const { store } = this;
    for (let attempt = 0; !this.#closed; attempt++) {
      store.dispatch({ type: "connection", state: "connecting" });
      try {
        const sessions = (await this.#listSessions(START_SESSIONS_MAX)).map((s) => sessionInfo(s, Number(s.lastSeq)));
        store.dispatch({ type: "sessions", sessions, ranked: true });
        this.#cacheSessions(sessions);
        return sessions;
      } catch (error) {
        store.dispatch({ type: "connection", state: "offline", detail: errorWords(error) });
        const delay = Math.floor(Math.random() * Math.min(BACKOFF.maxMs, BACKOFF.baseMs * 2 ** Math.min(attempt, 10)));
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delay);
          this.#wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    }
    return undefined;
  }

  async #headers(): Promise<{ authorization: string }> {
    return { authorization: `Bearer ${await this.#options.tokens.token()}` };
  }

  async #listSessions(max: number): Promise<Session[]> {
    const out: Session[] = [];
    let pageToken = "";
    do {
      const page = await this.#conversations.listConversations({ pageSize: Math.min(1000, max - out.length), pageToken }, { headers: await this.#headers() });
      out.push(...page.sessions);
      pageToken = page.nextPageToken;
    } while (pageToken !== "" && out.length < max);
    return out;
  }

  #wire(client: ImClient): void {
    const { store } = this;
    client.on("state", (state) => {
      store.dispatch({ type: "connection", state });
      if (state === "live") {
        const selected = store.state.selectedId;
        if (selected !== undefined) this.seen(selected);
      }
    });
    client.on("message", (message) => {
      const known = store.state.conversations.get(message.conversationId);
      store.dispatch({ type: "delivered", message });
      // A group seen first through a message: its title comes with the session list.
      if (known === undefined && message.conversationId.startsWith("g:")) this.#refreshSoon();
    });
    client.on("read", ({ conversationId, readSeq }) => store.dispatch({ type: "read", conversationId, readSeq }));
    client.on("session", (session) => {
      const info = sessionInfo(session, client.lastSeq(session.conversationId));
      store.dispatch({ type: "sessions", sessions: [info], ranked: false });
      this.#cacheSessions([info]);
    });
    client.on("removed", ({ conversationId }) => {
      store.dispatch({ type: "removed", conversationId });
      this.#cached.delete(conversationId);
      this.#storage?.sessions.remove(conversationId).catch(() => undefined);
    });
    // Sends whose promise this page does not hold (resumed from the stored outbox).
    client.on("sent", (r) => {
      if (this.#storedSends.delete(r.clientMsgId)) store.dispatch({ type: "sendAcked", conversationId: r.conversationId, clientMsgId: r.clientMsgId, seq: Number(r.seq) });
    });
    client.on("sendFailed", ({ clientMsgId, error }) => {
      const send = this.#storedSends.get(clientMsgId);
      if (send === undefined) return;
      this.#storedSends.delete(clientMsgId);
      if (!this.#closed && isUnanswered(error)) this.#transmit(send.conversationId, clientMsgId, send.text);
      else store.dispatch({ type: "sendFailed", conversationId: send.conversationId, clientMsgId, error: errorWords(error) });
    });
    client.on("error", (error) => {
      if (client.state !== "live") store.dispatch({ type: "connectionDetail", detail: errorWords(error) });
    });
    client.on("disconnect", (d) => store.dispatch({ type: "connectionDetail", detail: disconnectWords(d) }));
    client.on("stuck", ({ conversationId }) => {
      const c = store.state.conversations.get(conversationId);
      const name = c === undefined ? conversationId : displayName(c);
      store.dispatch({ type: "notice", text: `Some messages of ${name} could not be loaded yet; they are fetched again at the next sync` });
    });
  }

  /** Fetches the head of the session list soon (for titles of groups first seen by a message). */
  #refreshSoon(): void {
    if (this.#refresh !== undefined) return;
    this.#refresh = setTimeout(() => {
      this.#refresh = undefined;
      void this.#headers()
        .then((headers) => this.#conversations.listConversations({ pageSize: 100 }, { headers }))
        .then((page) => {
          const client = this.#client;
          const sessions = page.sessions.map((s) => sessionInfo(s, client?.lastSeq(s.conversationId) ?? 0));
          this.store.dispatch({ type: "sessions", sessions, ranked: true });
          this.#cacheSessions(sessions);
        })
        .catch((error: unknown) => this.store.dispatch({ type: "notice", text: `The conversation list could not be refreshed: ${errorWords(error)}` }));
    }, 200);
  }

  /** Opens a conversation: loads a page of history if less than a page of it is shown. */
  select(conversationId: string | undefined): void {
    this.store.dispatch({ type: "select", conversationId });
    if (conversationId === undefined) return;
    const c = this.store.state.conversations.get(conversationId);
    if (c !== undefined && c.messages.length < HISTORY_PAGE && canLoadOlder(c)) void this.loadOlder(conversationId);
  }

  /**
   * Loads the page of history before the oldest message shown: from the device's store when
   * it holds that page, else from the server (FetchRange), which is then stored too.
   */
  async loadOlder(conversationId: string): Promise<void> {
    const c = this.store.state.conversations.get(conversationId);
    if (c === undefined || c.loadingOlder || !canLoadOlder(c)) return;
    const upTo = c.olderUpTo;
    this.store.dispatch({ type: "historyLoading", conversationId, loading: true });
    const storage = this.#storage;
    const stored = storage === undefined ? [] : await storage.clientStore.messages(conversationId, { beforeSeq: upTo + 1, limit: HISTORY_PAGE }).catch(() => []);
    const local = chainEndingAt(stored, upTo);
    if (local.length > 0) {
      this.store.dispatch({ type: "history", conversationId, upTo, messages: local });
      return;
    }
    try {
      const page = await this.#gateway.fetchRange(
        { conversationId, afterSeq: BigInt(Math.max(0, upTo - HISTORY_PAGE)), upToSeq: BigInt(upTo), limit: HISTORY_PAGE },
        { headers: await this.#headers() },
      );
      const messages = page.messages.map(fromWireMessage);
      this.store.dispatch({ type: "history", conversationId, upTo, messages });
      // Kept for the next time. The cursor only moves forward, so this older page leaves it
      // where the SDK has it.
      const newest = messages[messages.length - 1];
      if (storage !== undefined && newest !== undefined) storage.clientStore.appendMessages(conversationId, messages, newest.seq).catch(() => undefined);
    } catch (error) {
      this.store.dispatch({ type: "historyLoading", conversationId, loading: false });
      this.store.dispatch({ type: "notice", text: `Older messages could not be loaded: ${errorWords(error)}` });
    }
  }

  /** The newest message of a conversation is on screen: move the read position there. */
  seen(conversationId: string): void {
    const client = this.#client;
    const c = this.store.state.conversations.get(conversationId);
    if (client === undefined || c === undefined || c.removed || client.state !== "live" || !this.#options.visible()) return;
    const seq = seenSeq(c);
    if (seq === 0 || this.#marking.has(conversationId)) return;
    this.#marking.add(conversationId);
    client.markRead(conversationId, seq).then(
      (readSeq) => {
        this.#marking.delete(conversationId);
        this.store.dispatch({ type: "read", conversationId, readSeq });
        // More may have arrived while this one was on its way.
        this.seen(conversationId);
      },
      (error: unknown) => {
        this.#marking.delete(conversationId);
        if (client.state === "live") this.store.dispatch({ type: "notice", text: `The read position could not be saved: ${errorWords(error)}` });
      },
    );
  }

  /** Sends a text; its state (pending, sent, failed) shows in the thread. Returns a refusal in words, if any. */
  send(conversationId: string, text: string): string | undefined {
    if (text.trim() === "") return "Type a message first";
    const clientMsgId = randomId();
    this.store.dispatch({ type: "sendQueued", conversationId, clientMsgId, text, atMs: Date.now() });
    this.#transmit(conversationId, clientMsgId, text);
    return undefined;
  }

  /** Sends a failed message again, with the same client_msg_id (stored at most once). */
  retry(conversationId: string, clientMsgId: string): void {
    const o = this.store.state.conversations.get(conversationId)?.outgoing.find((x) => x.clientMsgId === clientMsgId);
    if (o === undefined || o.status !== "failed") return;
    this.store.dispatch({ type: "sendRetried", conversationId, clientMsgId });
    this.#transmit(conversationId, clientMsgId, o.text);
  }

  /** Forgets a failed message. */
  discard(conversationId: string, clientMsgId: string): void {
    this.store.dispatch({ type: "sendDiscarded", conversationId, clientMsgId });
  }

  #transmit(conversationId: string, clientMsgId: string, text: string): void {
    if (this.#client === undefined && !this.#opening) {
      this.#storeForLater(conversationId, clientMsgId, text);
      return;
    }
    void this.#clientReady
      .then((client) => client.send({ conversationId, body: text, clientMsgId }))
      .then(
        (result) => this.store.dispatch({ type: "sendAcked", conversationId, clientMsgId, seq: Number(result.seq) }),
        (error: unknown) => {
          // Cut off with its connection, unanswered: the server may or may not have stored it.
          // Sent again with the same client_msg_id (stored at most once); the SDK holds it
          // until the next connection.
          if (!this.#closed && isUnanswered(error)) this.#transmit(conversationId, clientMsgId, text);
          else this.store.dispatch({ type: "sendFailed", conversationId, clientMsgId, error: errorWords(error) });
        },
      );
  }

  /**
   * A send before the SDK is open (the server has not answered since the page loaded): into
   * the stored outbox, so it survives a reload and goes out, with its client_msg_id, once the
   * SDK opens on that outbox. Its outcome comes as the SDK's sent / sendFailed events.
   */
  #storeForLater(conversationId: string, clientMsgId: string, text: string): void {
    this.#storedSends.set(clientMsgId, { conversationId, text });
    const send: PendingSend = { clientMsgId, conversationId, toUserId: "", contentType: TEXT, data: new TextEncoder().encode(text) };
    this.#outboxWrites = this.#outboxWrites
      .then(() => this.#storageReady)
      .then((storage) => storage.clientStore.addOutbox(send))
      .catch((error: unknown) => this.store.dispatch({ type: "notice", text: `A message could not be kept on this device until it is sent: ${errorWords(error)}` }));
  }

  /** Opens the direct conversation with `peer` (created on the server by the first message). Returns a refusal in words. */
  startDirect(peer: string): string | undefined {
    const name = peer.trim();
    if (!isUserId(name)) return `"${name}" is not a user name (1-64 of A-Z a-z 0-9 _ . @ -)`;
    if (name === this.userId) return "That is you: pick someone else";
    const conversationId = directConversationId(this.userId, name);
    if (!this.store.state.conversations.has(conversationId)) {
      this.store.dispatch({
        type: "created",
        session: { conversationId, kind: "direct", title: "", peerUserId: name, lastSeq: 0, readSeq: 0, lastMessage: undefined, cursorSeq: 0 },
        atMs: Date.now(),
      });
    }
    this.select(conversationId);
    return undefined;
  }

  /** Creates a group with the given members and opens it. Resolves with a refusal in words, if any. */
  async createGroup(title: string, members: readonly string[]): Promise<string | undefined> {
    try {
      const { conversation } = await this.#conversations.createGroup({ title: title.trim(), memberUserIds: [...members] }, { headers: await this.#headers() });
      if (conversation === undefined) return "The server created no group";
      const id = conversation.conversationId;
      const cursorSeq = this.#client?.lastSeq(id) ?? 0;
      this.#cacheSessions([{ conversationId: id, kind: "group", title: conversation.title, peerUserId: "", lastSeq: 0, readSeq: 0, lastMessage: undefined, cursorSeq }]);
      this.store.dispatch({
        type: "created",
        session: { conversationId: id, kind: "group", title: conversation.title, peerUserId: "", lastSeq: Number(conversation.lastSeq), readSeq: 0, lastMessage: undefined, cursorSeq },
        atMs: Date.now(),
      });
      this.select(id);
      void this.loadMembers(id);
      return undefined;
    } catch (error) {
      return errorWords(error);
    }
  }

  /** Adds users to a group. Resolves with a refusal in words, if any. */
  async addMembers(conversationId: string, userIds: readonly string[]): Promise<string | undefined> {
    try {
      await this.#conversations.addMembers({ conversationId, userIds: [...userIds] }, { headers: await this.#headers() });
      await this.loadMembers(conversationId);
      return undefined;
    } catch (error) {
      return errorWords(error);
    }
  }

  /** Removes users from a group (the owner removes anyone; a member only itself). */
  async removeMembers(conversationId: string, userIds: readonly string[]): Promise<string | undefined> {
    try {
      await this.#conversations.removeMembers({ conversationId, userIds: [...userIds] }, { headers: await this.#headers() });
      if (userIds.includes(this.userId)) this.store.dispatch({ type: "removed", conversationId });
      else await this.loadMembers(conversationId);
      return undefined;
    } catch (error) {
      return errorWords(error);
    }
  }

  /** Loads a conversation's members (up to MEMBERS_SHOWN_MAX). */
  async loadMembers(conversationId: string): Promise<void> {
    try {
      const members: string[] = [];
      let pageToken = "";
      do {
        const page = await this.#conversations.listMembers({ conversationId, pageToken, pageSize: 1000 }, { headers: await this.#headers() });
        members.push(...page.userIds);
        pageToken = page.nextPageToken;
      } while (pageToken !== "" && members.length < MEMBERS_SHOWN_MAX);
      this.store.dispatch({ type: "members", conversationId, members: members.slice(0, MEMBERS_SHOWN_MAX) });
    } catch (error) {
      this.store.dispatch({ type: "notice", text: `The members could not be listed: ${errorWords(error)}` });
    }
  }

  /** Removes a notice. */
  /** Shows `text` as a notice. */
  notify(text: string): void {
    this.store.dispatch({ type: "notice", text });
  }

  dismiss(id: number): void {
    this.store.dispatch({ type: "dismiss", id });
  }
}

const DEVICE_ID_KEY = "microchat:device-id";

/** This tab's device id for calls (each tab rings as a device of its own): kept in sessionStorage across reloads. */
function deviceId(): string {
  const fresh = () => `web-${crypto.randomUUID()}`;
  try {
    const kept = sessionStorage.getItem(DEVICE_ID_KEY);
    if (kept !== null && /^[A-Za-z0-9_.:-]{1,64}$/.test(kept)) return kept;
    const id = fresh();
    sessionStorage.setItem(DEVICE_ID_KEY, id);
    return id;
  } catch {
    return fresh();
  }
}
