/** Direct conversations have two members and are created by the first message; groups are created explicitly. */
export type ConversationKind = "direct" | "group";

/** A message as stored in a conversation log. */
export interface StoredMessage {
  readonly conversationId: string;
  /** Strictly increasing within the conversation; not necessarily contiguous. */
  readonly seq: number;
  /** The seq of the previous message in the log; 0 for the first. */
  readonly prevSeq: number;
  readonly messageId: string;
  readonly senderId: string;
  readonly sentAtMs: number;
  readonly contentType: string;
  readonly data: Uint8Array;
  readonly clientMsgId: string;
}

/** A conversation with its head: the group-session record for groups. */
export interface ConversationRecord {
  readonly id: string;
  readonly kind: ConversationKind;
  /** Group title; empty for direct conversations. */
  readonly title: string;
  /** Group creator; empty for direct conversations. */
  readonly ownerId: string;
  readonly memberCount: number;
  /** The newest seq, 0 when the log is empty. */
  readonly lastSeq: number;
  /** The newest message with its body cut to a preview, absent when the log is empty. */
  readonly lastMessage: StoredMessage | undefined;
  readonly createdAtMs: number;
}

/** One entry of a user's session list. */
export interface SessionEntry {
  readonly conversationId: string;
  readonly kind: ConversationKind;
  readonly lastSeq: number;
  readonly lastMessage: StoredMessage | undefined;
  /** The highest seq this user marked read. */
  readonly readSeq: number;
  /** For direct conversations, the other participant; empty for groups. */
  readonly peerUserId: string;
  readonly title: string;
  /** When the conversation last changed (last message, or creation): orders the session list. */
  readonly updatedAtMs: number;
}

/** The most bytes of a body kept in a session-list preview. */
export const PREVIEW_BYTES_MAX = 256;

/** The message as kept in a session-list preview: the body cut to PREVIEW_BYTES_MAX bytes. */
export function toPreview(message: StoredMessage): StoredMessage {
  if (message.data.byteLength <= PREVIEW_BYTES_MAX) return message;
  return { ...message, data: message.data.slice(0, PREVIEW_BYTES_MAX) };
}

/** Orders sessions most recently active first, ties by conversation id, so pages are stable. */
export function compareSessions(a: SessionEntry, b: SessionEntry): number {
  if (a.updatedAtMs !== b.updatedAtMs) return b.updatedAtMs - a.updatedAtMs;
  return a.conversationId < b.conversationId ? -1 : a.conversationId > b.conversationId ? 1 : 0;
}
