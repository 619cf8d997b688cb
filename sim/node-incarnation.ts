import type { Clock } from "../server/core/clock.js";
import { parseConversationId } from "../server/core/conversation-id.js";
import type { EventSink } from "../server/core/events.js";
import { createMessageIdGenerator } from "../server/core/message-id.js";
import { Messaging } from "../server/core/messaging.js";
import type { ConversationRecord, StoredMessage } from "../server/core/model.js";
import { StoreUnavailableError } from "../server/core/result.js";
import type { MessageStore } from "../server/store/message-store.js";
import { FaultyStore, type StoreCaller } from "./faulty-store.js";
import type { GatewayNode, NodeContext } from "./gateway-node.js";
import type { ClientFrame, Push, ServerFrame } from "./network.js";

const RESOLVED = Promise.resolve();

/** The body of every simulated message (its bytes do not matter; the store copies it). */
const BODY = new Uint8Array(16);

/** Members read per page when a group message is routed to its members' connections. */
const FANOUT_PAGE = 1000;

/**
 * One life of a gateway process, between a start and a crash: its own Messaging (the real
 * core) with its own clock (virtual time plus a skew) and id generator, its own store view, and
 * the EventSink port the core hands stored events to. Output of a dead incarnation is dropped.
 *
 * Events reach connections the way user-addressed routing does: a group message's members
 * are read from the store in pages, one conversation's fan-outs chained in order, and handed
 * to the node's routing layer (local, or across the inter-node hop).
 */
export class NodeIncarnation implements EventSink, StoreCaller {
  readonly #node: GatewayNode;
  readonly #ctx: NodeContext;
  readonly #store: MessageStore;
  readonly #fanouts = new Map<string, Promise<void>>();
  readonly generation: number;
  readonly messaging: Messaging;

  constructor(node: GatewayNode, ctx: NodeContext, generation: number, skewMs: number) {
    this.#node = node;
    this.#ctx = ctx;
    this.generation = generation;
    const clock: Clock = { nowMs: () => ctx.config.epochMs + ctx.sched.nowMs + skewMs };
    this.#store = new FaultyStore(ctx.backend, this, ctx.sched, ctx.faults, ctx.stats, ctx.trace, ctx.storeBugs);
    this.messaging = new Messaging({
      store: this.#store,
      events: this,
      clock,
      ids: createMessageIdGenerator(clock, ctx.random),
      limits: ctx.config.limits,
    });
  }

  get alive(): boolean {
    return this.#node.alive && this.#node.generation === this.generation;
  }

  get storeCut(): boolean {
    return this.#node.partitioned && this.#ctx.faults.config.partitionStore === 1;
  }

  messageAppended(conversation: ConversationRecord, message: StoredMessage, originConnectionId: string | undefined): void {
    this.#fanout(conversation.id, { kind: "message", message }, originConnectionId);
  }

  readMoved(userId: string, conversationId: string, readSeq: number, originConnectionId: string | undefined): void {
    this.#deliver([userId], { kind: "read", conversationId, readSeq }, originConnectionId);
  }

  membersChanged(): void {
    // Membership changes are not part of the simulated workload.
  }

  #deliver(userIds: readonly string[], push: Push, exceptConnectionId?: string): void {
    if (this.alive) this.#node.route(userIds, push, exceptConnectionId);
  }

  #fanout(conversationId: string, push: Push, except: string | undefined): void {
    const previous = this.#fanouts.get(conversationId) ?? RESOLVED;
    const next = previous
      .then(() => this.#toMembers(conversationId, push, except))
      .catch((error: unknown) => this.#unexpected(error, `fan-out of ${conversationId}`, true))
      .finally(() => {
        if (this.#fanouts.get(conversationId) === next) this.#fanouts.delete(conversationId);
      });
    this.#fanouts.set(conversationId, next);
  }

  async #toMembers(conversationId: string, push: Push, except: string | undefined): Promise<void> {
    const parsed = parseConversationId(conversationId);
    if (parsed?.kind === "direct") {
      this.#deliver([parsed.userA, parsed.userB], push, except);
      return;
    }
    let after = "";
    for (;;) {
      const batch = await this.#store.listMembers(conversationId, after, FANOUT_PAGE);
      if (batch.length > 0) this.#deliver(batch, push, except);
      if (batch.length < FANOUT_PAGE) return;
      after = batch[batch.length - 1]!;
    }
  }

  /** Answers one request frame the way the gateway service does. */
  handle(frame: ClientFrame): void {
    if (frame.kind === "send") {
      // Sends of one connection are applied in the order written (gateway-service.ts).
      frame.link.sendChain = (frame.link.sendChain ?? RESOLVED).then(() => this.#send(frame));
    } else if (frame.kind === "sync") {
      void this.#sync(frame);
    } else if (frame.kind === "fetch") {
      void this.#fetch(frame);
    } else {
      void this.#markRead(frame);
    }
    this.#ctx.sched.touch();
  }

  async #send(frame: ClientFrame & { kind: "send" }): Promise<void> {
    const { link, requestId } = frame;
    const target = frame.conversationId !== "" ? { conversationId: frame.conversationId } : { toUserId: frame.toUserId };
    let reply: ServerFrame;
    try {
      const result = await this.messaging.send(link.userId, { target, clientMsgId: frame.clientMsgId, contentType: "text/plain", data: BODY }, link.connectionId);
      reply = { kind: "send", link, requestId, message: result.ok ? result.value.message : undefined, retryable: false };
    } catch (error) {
      this.#unexpected(error, `send of ${link.connectionId}`, false);
      reply = { kind: "send", link, requestId, message: undefined, retryable: true };
    }
    this.#reply(reply);
  }

  async #sync(frame: ClientFrame & { kind: "sync" }): Promise<void> {
    let reply: ServerFrame;
    try {
      const result = await this.messaging.sync(frame.link.userId, { cursors: frame.cursors, maxMessagesPerConversation: 0, maxSessions: 0 });
      reply = { kind: "sync", link: frame.link, requestId: frame.requestId, outcome: result.ok ? result.value : undefined };
    } catch (error) {
      this.#unexpected(error, `sync of ${frame.link.connectionId}`, false);
      reply = { kind: "sync", link: frame.link, requestId: frame.requestId, outcome: undefined };
    }
    this.#reply(reply);
  }

  async #fetch(frame: ClientFrame & { kind: "fetch" }): Promise<void> {
    const { link, conversationId } = frame;
    let reply: ServerFrame;
    try {
      const result = await this.messaging.fetchRange(link.userId, { conversationId, afterSeq: frame.afterSeq, upToSeq: frame.upToSeq, limit: 0 });
      if (!result.ok) this.#note(conversationId, `fetch of ${link.device.name} refused: ${result.reason}: ${result.message}`);
      reply = { kind: "fetch", link, requestId: frame.requestId, conversationId, outcome: result.ok ? result.value : undefined };
    } catch (error) {
      this.#unexpected(error, `fetch of ${link.connectionId}`, false);
      reply = { kind: "fetch", link, requestId: frame.requestId, conversationId, outcome: undefined };
    }
    this.#reply(reply);
  }

  async #markRead(frame: ClientFrame & { kind: "markRead" }): Promise<void> {
    const { link, conversationId } = frame;
    let readSeq: number | undefined;
    try {
      const result = await this.messaging.markRead(link.userId, conversationId, frame.readSeq, link.connectionId);
      readSeq = result.ok ? result.value : undefined;
    } catch (error) {
      this.#unexpected(error, `markRead of ${link.connectionId}`, false);
    }
    this.#reply({ kind: "markRead", link, requestId: frame.requestId, conversationId, readSeq });
  }

  #reply(frame: ServerFrame): void {
    if (this.alive && frame.link.attached && !frame.link.ending) this.#ctx.network.toClient(frame);
  }

  #note(conversationId: string, text: string): void {
    const { trace, sched } = this.#ctx;
    if (trace.wants(conversationId)) trace.add(sched.nowMs, text);
  }

  /** StoreUnavailableError is expected (faults); anything else is a broken invariant. */
  #unexpected(error: unknown, context: string, background: boolean): void {
    if (error instanceof StoreUnavailableError) {
      if (background) this.#ctx.stats.fanoutFailures++;
      return;
    }
    const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
    this.#ctx.checkers.report("invariant", "", "", `${context}: ${text}`);
  }
}
