import type { ClientMessage } from "./client-message.js";
import type { PendingSend } from "./client-protocol.js";
import { HISTORY_MAX_DEFAULT, pageLimit, type ClientStore, type HistoryQuery, type StoredClientState } from "./client-store.js";
import type { ClientCursor } from "./sync-engine.js";

interface Conversation {
  lastSeq: number;
  readSeq: number;
  /** Ascending by seq. */
  messages: ClientMessage[];
}

/** A ClientStore in memory: for tests, and for apps that need no persistence. */
export class MemoryClientStore implements ClientStore {
  readonly #conversations = new Map<string, Conversation>();
  readonly #outbox = new Map<string, PendingSend>();
  readonly #historyMax: number;

  constructor(options: { historyMax?: number } = {}) {
    this.#historyMax = options.historyMax ?? HISTORY_MAX_DEFAULT;
  }

  async load(): Promise<StoredClientState> {
    const cursors: ClientCursor[] = [];
    for (const [conversationId, c] of this.#conversations) cursors.push({ conversationId, lastSeq: c.lastSeq, readSeq: c.readSeq });
    return { cursors, outbox: [...this.#outbox.values()].map(copySend) };
  }

  async appendMessages(conversationId: string, messages: readonly ClientMessage[], lastSeq: number): Promise<void> {
    const c = this.#conversation(conversationId);
    for (const m of messages) {
      const at = insertionPoint(c.messages, m.seq);
      const copy = { ...m, data: m.data.slice() };
      if (c.messages[at]?.seq === m.seq) c.messages[at] = copy;
      else c.messages.splice(at, 0, copy);
    }
    if (c.messages.length > this.#historyMax) c.messages.splice(0, c.messages.length - this.#historyMax);
    c.lastSeq = Math.max(c.lastSeq, lastSeq);
  }

  async setReadSeq(conversationId: string, readSeq: number): Promise<void> {
    const c = this.#conversation(conversationId);
    c.readSeq = Math.max(c.readSeq, readSeq);
  }

  async messages(conversationId: string, query?: HistoryQuery): Promise<ClientMessage[]> {
    const all = this.#conversations.get(conversationId)?.messages ?? [];
    const end = query?.beforeSeq === undefined ? all.length : insertionPoint(all, query.beforeSeq);
    const limit = pageLimit(query);
    return all.slice(Math.max(0, end - limit), end).map((m) => ({ ...m, data: m.data.slice() }));
  }

  async removeConversation(conversationId: string): Promise<void> {
    this.#conversations.delete(conversationId);
  }

  async addOutbox(send: PendingSend): Promise<void> {
    if (!this.#outbox.has(send.clientMsgId)) this.#outbox.set(send.clientMsgId, copySend(send));
  }

  async removeOutbox(clientMsgId: string): Promise<void> {
    this.#outbox.delete(clientMsgId);
  }

  async close(): Promise<void> {}

  #conversation(conversationId: string): Conversation {
    let c = this.#conversations.get(conversationId);
    if (c === undefined) {
      c = { lastSeq: 0, readSeq: 0, messages: [] };
      this.#conversations.set(conversationId, c);
    }
    return c;
  }
}

function copySend(s: PendingSend): PendingSend {
  return { ...s, data: s.data.slice() };
}

/** The index of the first message with seq >= `seq`. */
function insertionPoint(messages: readonly ClientMessage[], seq: number): number {
  let lo = 0;
  let hi = messages.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (messages[mid]!.seq < seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
