import type { EventSink } from "../core/events.js";
import { parseConversationId } from "../core/conversation-id.js";
import type { ConversationRecord, StoredMessage } from "../core/model.js";
import { toWireMessage } from "../gateway/codec.js";
import type { Broker } from "./broker.js";
import type { Hub } from "./hub.js";
import { encodeMessage, groupChannel, Publication, userChannel } from "./publication.js";

/**
 * The core's EventSink on channels: a group's events go on its channel, a direct
 * conversation's on both participants' user channels, a read position on its user's
 * channel. Each event is encoded once, handed to this process's hub at once, and published
 * once per channel for the other processes.
 */
export class ChannelPublisher implements EventSink {
  readonly #origin: string;
  readonly #hub: Pick<Hub, "handle">;
  readonly #broker: Pick<Broker, "publish">;

  /** `origin` is this process's id among everything sharing the broker. */
  constructor(origin: string, hub: Pick<Hub, "handle">, broker: Pick<Broker, "publish">) {
    this.#origin = origin;
    this.#hub = hub;
    this.#broker = broker;
  }

  messageAppended(conversation: ConversationRecord, message: StoredMessage, originConnectionId: string | undefined): void {
    const publication = Publication.message(this.#origin, encodeMessage(toWireMessage(message)), originConnectionId);
    const parsed = parseConversationId(conversation.id);
    if (parsed?.kind === "direct") {
      this.#publish(userChannel(parsed.userA), publication);
      this.#publish(userChannel(parsed.userB), publication);
    } else {
      this.#publish(groupChannel(conversation.id), publication);
    }
  }

  readMoved(userId: string, conversationId: string, readSeq: number, originConnectionId: string | undefined): void {
    this.#publish(userChannel(userId), Publication.read(this.#origin, conversationId, readSeq, originConnectionId));
  }

  membersChanged(conversation: ConversationRecord, added: readonly string[], removed: readonly string[]): void {
    // On the group's channel first, in order with its messages: hubs holding a removed member
    // stop delivering to it before any later message arrives.
    this.#publish(groupChannel(conversation.id), Publication.members(this.#origin, added, removed));
    for (const userId of added) this.#publish(userChannel(userId), Publication.membership(this.#origin, conversation.id, true, conversation.lastSeq));
    for (const userId of removed) this.#publish(userChannel(userId), Publication.membership(this.#origin, conversation.id, false, conversation.lastSeq));
  }

  #publish(channel: string, publication: Publication): void {
    this.#hub.handle(channel, publication);
    this.#broker.publish(channel, publication);
  }
}
