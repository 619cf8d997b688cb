import type { ConversationRecord, SessionEntry, StoredMessage } from "../core/model.js";
import type { AppendResult, MembershipChange, MessageStore, NewGroup, NewMessage } from "../store/message-store.js";

/** The MessageStore operations, as observers name them. */
export type StoreOp = keyof Omit<MessageStore, "close">;

/** Watches each store call (metrics, traces). */
export interface StoreObserver {
  /** Runs `call`, store operation `op` on `conversationId` (when it names one), and returns what it returns. */
  run<T>(op: StoreOp, conversationId: string | undefined, call: () => Promise<T>): Promise<T>;
}

/** A MessageStore whose every call goes through a StoreObserver; the contract is the wrapped store's. */
export class ObservedMessageStore implements MessageStore {
  readonly #store: MessageStore;
  readonly #observer: StoreObserver;

  constructor(store: MessageStore, observer: StoreObserver) {
    this.#store = store;
    this.#observer = observer;
  }

  ensureDirect(conversationId: string, userA: string, userB: string, nowMs: number): Promise<ConversationRecord> {
    return this.#observer.run("ensureDirect", conversationId, () => this.#store.ensureDirect(conversationId, userA, userB, nowMs));
  }

  createGroup(group: NewGroup, memberIds: readonly string[]): Promise<ConversationRecord> {
    return this.#observer.run("createGroup", group.id, () => this.#store.createGroup(group, memberIds));
  }

  getConversation(conversationId: string): Promise<ConversationRecord | undefined> {
    return this.#observer.run("getConversation", conversationId, () => this.#store.getConversation(conversationId));
  }

  isMember(conversationId: string, userId: string): Promise<boolean> {
    return this.#observer.run("isMember", conversationId, () => this.#store.isMember(conversationId, userId));
  }

  addMembers(conversationId: string, userIds: readonly string[], membersMax: number, nowMs: number): Promise<MembershipChange | "limit"> {
    return this.#observer.run("addMembers", conversationId, () => this.#store.addMembers(conversationId, userIds, membersMax, nowMs));
  }

  removeMembers(conversationId: string, userIds: readonly string[]): Promise<MembershipChange> {
    return this.#observer.run("removeMembers", conversationId, () => this.#store.removeMembers(conversationId, userIds));
  }

  listMembers(conversationId: string, afterUserId: string, limit: number): Promise<string[]> {
    return this.#observer.run("listMembers", conversationId, () => this.#store.listMembers(conversationId, afterUserId, limit));
  }

  append(message: NewMessage): Promise<AppendResult> {
    return this.#observer.run("append", message.conversationId, () => this.#store.append(message));
  }

  readRange(conversationId: string, afterSeq: number, upToSeq: number | undefined, limit: number): Promise<StoredMessage[]> {
    return this.#observer.run("readRange", conversationId, () => this.#store.readRange(conversationId, afterSeq, upToSeq, limit));
  }

  listSessions(userId: string, limit: number): Promise<SessionEntry[]> {
    return this.#observer.run("listSessions", undefined, () => this.#store.listSessions(userId, limit));
  }

  listGroups(userId: string, limit: number): Promise<string[]> {
    return this.#observer.run("listGroups", undefined, () => this.#store.listGroups(userId, limit));
  }

  markRead(userId: string, conversationId: string, readSeq: number): Promise<number> {
    return this.#observer.run("markRead", conversationId, () => this.#store.markRead(userId, conversationId, readSeq));
  }

  close(): Promise<void> {
    return this.#store.close();
  }
}
