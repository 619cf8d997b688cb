import type { ConversationRecord, StoredMessage } from "./model.js";

/**
 * Where the core's events go once they are stored: to every live device concerned, best
 * effort (the store is the truth; devices repair a lost event through prev_seq and sync).
 * The delivery layer publishes each event once per channel (a group's channel, or each
 * participant's user channel) and every process's hub writes it to its local devices.
 *
 * Contract: calls return at once (nothing is awaited, nothing throws). The events of one
 * conversation are handed over in the order they happened at the conversation's owner, and
 * reach each device in that order when nothing is lost.
 */
export interface EventSink {
  /** A message was appended: to every member's devices except the origin connection. */
  messageAppended(conversation: ConversationRecord, message: StoredMessage, originConnectionId: string | undefined): void;
  /** A user's read position moved: to the user's devices except the origin connection. */
  readMoved(userId: string, conversationId: string, readSeq: number, originConnectionId: string | undefined): void;
  /**
   * The members of a group changed: `added` are members now and `removed` are not (each
   * whether or not it was before, so a repeated change tells the same again). The group's
   * messages stop reaching a removed member's devices at once, and start reaching an added
   * member's devices; each is told with a membership event.
   */
  membersChanged(conversation: ConversationRecord, added: readonly string[], removed: readonly string[]): void;
}

/** An EventSink that tells nobody (benchmarks of the store path, tools without devices). */
export const discardEvents: EventSink = {
  messageAppended() {},
  readMoved() {},
  membersChanged() {},
};

/** An EventSink that hands every event to each of `sinks` in turn (delivery first, then offline push). */
export function teeEvents(...sinks: readonly EventSink[]): EventSink {
  return {
    messageAppended: (conversation, message, origin) => {
      for (const sink of sinks) sink.messageAppended(conversation, message, origin);
    },
    readMoved: (userId, conversationId, readSeq, origin) => {
      for (const sink of sinks) sink.readMoved(userId, conversationId, readSeq, origin);
    },
    membersChanged: (conversation, added, removed) => {
      for (const sink of sinks) sink.membersChanged(conversation, added, removed);
    },
  };
}
