/**
 * The web client's state and the one function that changes it, free of I/O: the controller
 * turns what the SDK and the server say into actions, and the view renders the state.
 *
 * A conversation's thread holds an exact slice of its log: `messages` ascend and chain by
 * prevSeq (each message's prevSeq is the seq before it), and `olderUpTo` is the seq of the
 * newest message older than the slice (`messages[0].prevSeq`, 0 when the slice reaches the
 * first message). The SDK delivers messages after the cursor it was started with, which is
 * where a conversation's slice begins; history pages (FetchRange) extend it backwards.
 */
import type { ClientMessage } from "../../../client/client-message.js";
import { messageText } from "./message-text.js";

/** Messages per history page (FetchRange). */
export const HISTORY_PAGE = 50;
/** Most messages a thread holds; live messages beyond it push the oldest out. */
export const THREAD_MESSAGES_MAX = 2000;
/** Most notices (errors in words) kept on screen. */
export const NOTICES_MAX = 5;
/** Longest preview in the conversation list, in characters. */
export const PREVIEW_CHARS_MAX = 80;

export type ConversationKind = "direct" | "group";

/** Where the page keeps what the user has seen: on this device (IndexedDB), or in the page only. */
export type StorageKind = "opening" | "indexeddb" | "memory";

/** The connection as the page shows it. */
export type ConnectionState = "idle" | "connecting" | "syncing" | "live" | "offline" | "closed";

/** A session-list entry as the server describes it. */
export interface SessionInfo {
  readonly conversationId: string;
  readonly kind: ConversationKind;
  /** Group title; "" for direct conversations. */
  readonly title: string;
  /** The other participant of a direct conversation; "" for groups. */
  readonly peerUserId: string;
  readonly lastSeq: number;
  readonly readSeq: number;
  readonly lastMessage: ClientMessage | undefined;
  /**
   * Where the SDK starts delivering this conversation (it delivers seq > cursorSeq): the
   * thread of a conversation first seen here begins there.
   */
  readonly cursorSeq: number;
}

export type OutgoingStatus = "pending" | "sent" | "failed";

/** A message this page sent that its log has not delivered back yet. */
export interface OutgoingMessage {
  readonly clientMsgId: string;
  readonly text: string;
  readonly status: OutgoingStatus;
  /** Why it failed, in words. */
  readonly error: string;
  /** Its seq once the server stored it. */
  readonly seq: number;
  readonly createdAtMs: number;
}

/** One conversation: its list entry and its thread. */
export interface Conversation {
  readonly id: string;
  readonly kind: ConversationKind;
  /** Group title; "" until the server told it. */
  readonly title: string;
  readonly peerUserId: string;
  /** The newest seq known to exist. */
  readonly lastSeq: number;
  /** This user's read position. */
  readonly readSeq: number;
  readonly preview: string;
  readonly previewSenderId: string;
  /** The newest seq of a message by this user: replying implies having read up to it. */
  readonly ownSeq: number;
  /** Time of the newest activity (message, or creation here), for the list's order. */
  readonly activityMs: number;
  /** Position in the server's session list (most recent first), to break ties. */
  readonly rank: number;
  /** The user is no longer a member. */
  readonly removed: boolean;
  readonly messages: readonly ClientMessage[];
  readonly olderUpTo: number;
  readonly loadingOlder: boolean;
  readonly outgoing: readonly OutgoingMessage[];
  /** Members, once loaded (groups). */
  readonly members: readonly string[] | undefined;
}

/** An error shown in words. */
export interface Notice {
  readonly id: number;
  readonly text: string;
}

/** Everything the page shows. */
export interface ChatState {
  readonly userId: string;
  readonly connection: ConnectionState;
  /** Why the connection is not live, in words ("" when nothing to say). */
  readonly connectionDetail: string;
  /** Live at least once since the page loaded. */
  readonly everLive: boolean;
  readonly conversations: ReadonlyMap<string, Conversation>;
  readonly selectedId: string | undefined;
  readonly notices: readonly Notice[];
  readonly nextNoticeId: number;
  readonly storage: StorageKind;
  /** Why history is kept in memory only, in words. */
  readonly storageDetail: string;
}

/** What can happen. */
export type ChatAction =
  | { readonly type: "connection"; readonly state: ConnectionState; readonly detail?: string }
  | { readonly type: "connectionDetail"; readonly detail: string }
  /** Sessions from the server; `ranked` when they are the head of its list, in its order. */
  | { readonly type: "sessions"; readonly sessions: readonly SessionInfo[]; readonly ranked: boolean }
  | { readonly type: "delivered"; readonly message: ClientMessage }
  | { readonly type: "history"; readonly conversationId: string; readonly upTo: number; readonly messages: readonly ClientMessage[] }
  | { readonly type: "historyLoading"; readonly conversationId: string; readonly loading: boolean }
  | { readonly type: "read"; readonly conversationId: string; readonly readSeq: number }
  | { readonly type: "removed"; readonly conversationId: string }
  | { readonly type: "created"; readonly session: SessionInfo; readonly atMs: number }
  | { readonly type: "select"; readonly conversationId: string | undefined }
  | { readonly type: "members"; readonly conversationId: string; readonly members: readonly string[] }
  | { readonly type: "sendQueued"; readonly conversationId: string; readonly clientMsgId: string; readonly text: string; readonly atMs: number }
  | { readonly type: "sendAcked"; readonly conversationId: string; readonly clientMsgId: string; readonly seq: number }
  | { readonly type: "sendFailed"; readonly conversationId: string; readonly clientMsgId: string; readonly error: string }
  | { readonly type: "sendRetried"; readonly conversationId: string; readonly clientMsgId: string }
  | { readonly type: "sendDiscarded"; readonly conversationId: string; readonly clientMsgId: string }
  | { readonly type: "notice"; readonly text: string }
  | { readonly type: "dismiss"; readonly id: number }
  | { readonly type: "storage"; readonly kind: StorageKind; readonly detail: string };

/** The state of a page signed in as `userId`, before anything is known. */
export function initialState(userId: string): ChatState {
  return { userId, connection: "idle", connectionDetail: "", everLive: false, conversations: new Map(), selectedId: undefined, notices: [], nextNoticeId: 1, storage: "opening", storageDetail: "" };
}

/** The kind of a conversation id ("d:a:b" direct, "g:..." group). */
export function kindOfId(conversationId: string): ConversationKind {
  return conversationId.startsWith("g:") ? "group" : "direct";
}

/** The other participant of a direct conversation id, seen by `userId`. */
export function peerOf(conversationId: string, userId: string): string {
  const [, a = "", b = ""] = conversationId.split(":");
  return a === userId ? b : a;
}

/** A new, empty conversation entry. */
function emptyConversation(id: string, userId: string, cursorSeq: number): Conversation {
  const kind = kindOfId(id);
  return {
    id,
    kind,
    title: "",
    peerUserId: kind === "direct" ? peerOf(id, userId) : "",
    lastSeq: cursorSeq,
    readSeq: 0,
    preview: "",
    previewSenderId: "",
    ownSeq: 0,
    activityMs: 0,
    rank: Number.MAX_SAFE_INTEGER,
    removed: false,
    messages: [],
    olderUpTo: cursorSeq,
    loadingOlder: false,
    outgoing: [],
    members: undefined,
  };
}

function previewOf(m: ClientMessage): string {
  const text = messageText(m).replace(/\s+/g, " ").trim();
  return text.length > PREVIEW_CHARS_MAX ? `${text.slice(0, PREVIEW_CHARS_MAX - 1)}…` : text;
}

/** Takes the newest message as the preview if it is newer than the current one. */
function withOwn(c: Conversation, messages: readonly (ClientMessage | undefined)[], userId: string): Conversation {
  let ownSeq = c.ownSeq;
  for (const m of messages) if (m !== undefined && m.senderId === userId && m.seq > ownSeq) ownSeq = m.seq;
  return ownSeq === c.ownSeq ? c : { ...c, ownSeq };
}

function withPreview(c: Conversation, m: ClientMessage | undefined): Conversation {
  if (m === undefined || m.seq < c.lastSeq) return c;
  return { ...c, lastSeq: m.seq, preview: previewOf(m), previewSenderId: m.senderId, activityMs: Math.max(c.activityMs, m.sentAtMs) };
}

function put(state: ChatState, c: Conversation): ChatState {
  const conversations = new Map(state.conversations);
  conversations.set(c.id, c);
  return { ...state, conversations };
}

function update(state: ChatState, id: string, change: (c: Conversation) => Conversation): ChatState {
  const c = state.conversations.get(id);
  if (c === undefined) return state;
  const next = change(c);
  return next === c ? state : put(state, next);
}

function updateOutgoing(c: Conversation, clientMsgId: string, change: (o: OutgoingMessage) => OutgoingMessage | undefined): Conversation {
  const outgoing: OutgoingMessage[] = [];
  for (const o of c.outgoing) {
    if (o.clientMsgId !== clientMsgId) outgoing.push(o);
    else {
      const changed = change(o);
      if (changed !== undefined) outgoing.push(changed);
    }
  }
  return { ...c, outgoing };
}

function notice(state: ChatState, text: string): ChatState {
  const notices = [...state.notices, { id: state.nextNoticeId, text }].slice(-NOTICES_MAX);
  return { ...state, notices, nextNoticeId: state.nextNoticeId + 1 };
}

/** Appends a message the SDK delivered (in log order, once) to its thread. */
function deliver(state: ChatState, m: ClientMessage): ChatState {
  const c = state.conversations.get(m.conversationId) ?? emptyConversation(m.conversationId, state.userId, m.prevSeq);
  const last = c.messages[c.messages.length - 1];
  if (last !== undefined && m.seq <= last.seq) return state;
  let messages: readonly ClientMessage[];
  let olderUpTo = c.olderUpTo;
  if (m.prevSeq === (last?.seq ?? c.olderUpTo)) {
    messages = [...c.messages, m];
  } else {
    // The slice no longer chains onto this message (it was trimmed or started elsewhere):
    // start a new slice here; older messages come back as history pages.
    messages = [m];
    olderUpTo = m.prevSeq;
  }
  if (messages.length > THREAD_MESSAGES_MAX) {
    messages = messages.slice(messages.length - THREAD_MESSAGES_MAX);
    olderUpTo = messages[0]!.prevSeq;
  }
  const own = m.senderId === state.userId;
  const outgoing = own && m.clientMsgId !== "" ? c.outgoing.filter((o) => o.clientMsgId !== m.clientMsgId) : c.outgoing;
  const next = withPreview({ ...c, messages, olderUpTo, outgoing, removed: false }, m);
  return put(state, withOwn(next, [m], state.userId));
}

/** Prepends a history page: messages with seq <= upTo, ascending, ending at upTo. */
function prependHistory(state: ChatState, id: string, upTo: number, page: readonly ClientMessage[]): ChatState {
  const c = state.conversations.get(id);
  if (c === undefined || c.olderUpTo !== upTo) return state;
  const newest = page[page.length - 1];
  if (newest === undefined || newest.seq !== upTo) return update(state, id, (x) => ({ ...x, loadingOlder: false }));
  for (let i = 1; i < page.length; i++) if (page[i]!.prevSeq !== page[i - 1]!.seq) return update(state, id, (x) => ({ ...x, loadingOlder: false }));
  const first = page[0]!;
  return put(state, withOwn(withPreview({ ...c, messages: [...page, ...c.messages], olderUpTo: first.prevSeq, loadingOlder: false }, newest), page, state.userId));
}

function mergeSession(state: ChatState, s: SessionInfo, rank: number | undefined): ChatState {
  const known = state.conversations.get(s.conversationId);
  const c = known ?? emptyConversation(s.conversationId, state.userId, s.cursorSeq);
  const merged: Conversation = {
    ...c,
    kind: s.kind,
    title: s.title !== "" ? s.title : c.title,
    peerUserId: s.peerUserId !== "" ? s.peerUserId : c.peerUserId,
    readSeq: Math.max(c.readSeq, s.readSeq),
    rank: rank ?? c.rank,
    removed: false,
  };
  const previewed = withOwn(withPreview(merged, s.lastMessage), [s.lastMessage], state.userId);
  return put(state, { ...previewed, lastSeq: Math.max(previewed.lastSeq, s.lastSeq) });
}

/** The next state. */
export function reduce(state: ChatState, action: ChatAction): ChatState {
  switch (action.type) {
    case "connection":
      return {
        ...state,
        connection: action.state,
        connectionDetail: action.state === "live" ? "" : (action.detail ?? state.connectionDetail),
        everLive: state.everLive || action.state === "live",
      };
    case "connectionDetail":
      return { ...state, connectionDetail: action.detail };
    case "sessions": {
      let next = state;
      action.sessions.forEach((s, i) => (next = mergeSession(next, s, action.ranked ? i : undefined)));
      return next;
    }
    case "delivered":
      return deliver(state, action.message);
    case "history":
      return prependHistory(state, action.conversationId, action.upTo, action.messages);
    case "historyLoading":
      return update(state, action.conversationId, (c) => ({ ...c, loadingOlder: action.loading }));
    case "read":
      return update(state, action.conversationId, (c) => (action.readSeq > c.readSeq ? { ...c, readSeq: action.readSeq } : c));
    case "removed":
      return update(state, action.conversationId, (c) => ({ ...c, removed: true }));
    case "created": {
      const next = mergeSession(state, action.session, -1);
      return update(next, action.session.conversationId, (c) => ({ ...c, activityMs: Math.max(c.activityMs, action.atMs) }));
    }
    case "select":
      return { ...state, selectedId: action.conversationId };
    case "members":
      return update(state, action.conversationId, (c) => ({ ...c, members: action.members }));
    case "sendQueued":
      return update(state, action.conversationId, (c) => ({
        ...c,
        activityMs: Math.max(c.activityMs, action.atMs),
        outgoing: [...c.outgoing, { clientMsgId: action.clientMsgId, text: action.text, status: "pending", error: "", seq: 0, createdAtMs: action.atMs }],
      }));
    case "sendAcked":
      return update(state, action.conversationId, (c) => updateOutgoing(c, action.clientMsgId, (o) => ({ ...o, status: "sent", seq: action.seq, error: "" })));
    case "sendFailed":
      return update(state, action.conversationId, (c) => updateOutgoing(c, action.clientMsgId, (o) => ({ ...o, status: "failed", error: action.error })));
    case "sendRetried":
      return update(state, action.conversationId, (c) => updateOutgoing(c, action.clientMsgId, (o) => ({ ...o, status: "pending", error: "" })));
    case "sendDiscarded":
      return update(state, action.conversationId, (c) => updateOutgoing(c, action.clientMsgId, () => undefined));
    case "notice":
      return notice(state, action.text);
    case "dismiss":
      return { ...state, notices: state.notices.filter((n) => n.id !== action.id) };
    case "storage":
      return { ...state, storage: action.kind, storageDetail: action.detail };
  }
}

/** Conversations in the list's order: newest activity first, then the server's order. */
export function conversationOrder(state: ChatState): Conversation[] {
  return [...state.conversations.values()].sort((a, b) => b.activityMs - a.activityMs || a.rank - b.rank || (a.id < b.id ? -1 : 1));
}

/**
 * Others' messages after the read position, where the user's own newest message counts as
 * read up to it (whoever replied, from any device, has read what came before). Exact when
 * the thread holds everything after that point; otherwise the difference of seqs, which is
 * exact while the conversation's seqs are contiguous (seqs skip only where a store's sequence
 * allocation moved to another owner).
 */
export function unreadCount(c: Conversation, userId: string): number {
  const read = Math.max(c.readSeq, c.ownSeq);
  if (c.lastSeq <= read) return 0;
  const first = c.messages[0];
  const last = c.messages[c.messages.length - 1];
  if (first !== undefined && last !== undefined && first.prevSeq <= read && last.seq >= c.lastSeq) {
    let n = 0;
    for (const m of c.messages) if (m.seq > read && m.senderId !== userId) n++;
    return n;
  }
  return c.lastSeq - read;
}

/** The name a person sees for a conversation. */
export function displayName(c: Conversation): string {
  if (c.kind === "direct") return c.peerUserId;
  return c.title !== "" ? c.title : "Group";
}

/** Whether older history can be loaded into the thread. */
export function canLoadOlder(c: Conversation): boolean {
  return c.olderUpTo > 0 && c.messages.length < THREAD_MESSAGES_MAX;
}

/** The seq to mark read when the newest message of the thread has been seen (0: nothing). */
export function seenSeq(c: Conversation): number {
  const last = c.messages[c.messages.length - 1];
  const seq = last?.seq ?? 0;
  return seq > c.readSeq ? seq : 0;
}

/**
 * The history page a thread can take from `stored` (ascending messages with seq <= upTo, e.g.
 * a page of the device's store): the run that ends exactly at `upTo` and chains by prevSeq,
 * empty when `upTo` is not there. What is left of the page (before a hole) comes from the
 * server.
 */
export function chainEndingAt(stored: readonly ClientMessage[], upTo: number): ClientMessage[] {
  let end = stored.length - 1;
  while (end >= 0 && stored[end]!.seq > upTo) end--;
  if (end < 0 || stored[end]!.seq !== upTo) return [];
  let start = end;
  while (start > 0 && stored[start]!.prevSeq === stored[start - 1]!.seq) start--;
  return stored.slice(start, end + 1);
}
