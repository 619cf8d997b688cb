import type { ClientMessage } from "./client-message.js";
import type { PendingSend } from "./client-protocol.js";
import type { ClientCursor } from "./sync-engine.js";

/** What a client needs to resume after an app restart. */
export interface StoredClientState {
  /** Every conversation's cursor (last delivered seq with no gap before it, read position). */
  readonly cursors: ClientCursor[];
  /** Sends never acknowledged, in the order they were added. */
  readonly outbox: PendingSend[];
}

/** One page of stored history. */
export interface HistoryQuery {
  /** Only messages with a seq below this (default: the newest). */
  readonly beforeSeq?: number;
  /** At most this many, the newest of the range (default 50, at most HISTORY_PAGE_MAX). */
  readonly limit?: number;
}

/** Largest history page. */
export const HISTORY_PAGE_MAX = 1000;

/** Messages kept per conversation by default; older ones are dropped (the server keeps the log). */
export const HISTORY_MAX_DEFAULT = 10_000;

/**
 * The SDK's data layer: the messages a device has delivered, its cursors and its outbox, kept
 * across app restarts so a restarted app shows its history offline, syncs only what is new,
 * and resends what was never acknowledged with the same clientMsgId.
 *
 * Contract (test/client/client-store-contract.ts runs it on every adapter):
 * - appendMessages stores delivered messages and moves the cursor in one atomic step, so a
 *   crash never leaves a cursor ahead of the stored messages. Storing a seq again is harmless
 *   (a conversation's log is immutable). A cursor's lastSeq and readSeq never move back.
 * - Each conversation keeps at most `historyMax` messages (the newest); history pages are
 *   bounded by HISTORY_PAGE_MAX and returned in ascending seq order.
 * - The outbox keeps sends in the order added; adding a clientMsgId already there changes
 *   nothing; removing one that is not there does nothing.
 * - Writes are applied in the order they were called; a write has happened once its promise
 *   resolves (durably, for the durable adapters).
 */
export interface ClientStore {
  /** Cursors and outbox, to resume from. */
  load(): Promise<StoredClientState>;
  /** Stores delivered messages of one conversation (ascending) and moves its cursor to `lastSeq`. */
  appendMessages(conversationId: string, messages: readonly ClientMessage[], lastSeq: number): Promise<void>;
  /** Moves a conversation's read position forward. */
  setReadSeq(conversationId: string, readSeq: number): Promise<void>;
  /** A page of stored history, ascending. */
  messages(conversationId: string, query?: HistoryQuery): Promise<ClientMessage[]>;
  /** Forgets a conversation (the user left it): its messages and cursor. */
  removeConversation(conversationId: string): Promise<void>;
  addOutbox(send: PendingSend): Promise<void>;
  removeOutbox(clientMsgId: string): Promise<void>;
  close(): Promise<void>;
}

/** The page size of a query, bounded. */
export function pageLimit(query: HistoryQuery | undefined): number {
  return Math.max(0, Math.min(HISTORY_PAGE_MAX, Math.floor(query?.limit ?? 50)));
}
