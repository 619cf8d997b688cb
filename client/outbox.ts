import type { PendingSend } from "./client-protocol.js";

/** Where a send stands. */
export const WAITING = 0;
export const IN_FLIGHT = 1;
export const RETRY = 2;

/** One send of the outbox. */
export interface OutboxEntry {
  readonly send: PendingSend;
  /** Transmissions so far. */
  attempts: number;
  /** Retryable failures on live links since the last success, for the retry backoff. */
  failures: number;
  status: typeof WAITING | typeof IN_FLIGHT | typeof RETRY;
  /** For RETRY: when to transmit again. */
  retryAtMs: number;
}

/** The conversation a send goes to, as far as ordering goes. */
function targetOf(send: PendingSend): string {
  return send.conversationId !== "" ? send.conversationId : `to:${send.toUserId}`;
}

/**
 * The sends waiting for acknowledgement, in the order the app made them, bounded by `max`.
 * A send stays until the server acknowledges it or refuses it for good; a retryable failure
 * parks it until its retry time, a lost connection puts it back to waiting.
 *
 * Sends of one conversation keep their order through retries: a parked send never goes out
 * before an earlier parked send of its conversation, and a new send of a conversation that
 * has one parked waits behind it, so an outage does not reorder what the user wrote.
 */
export class Outbox {
  readonly #max: number;
  #entries: Map<string, OutboxEntry> | undefined;
  #retrying = 0;

  constructor(max: number) {
    this.#max = max;
  }

  get size(): number {
    return this.#entries?.size ?? 0;
  }

  /** Adds a send; false when the outbox is full or the clientMsgId is already waiting. */
  add(send: PendingSend): OutboxEntry | undefined {
    this.#entries ??= new Map();
    if (this.#entries.size >= this.#max || this.#entries.has(send.clientMsgId)) return undefined;
    const entry: OutboxEntry = { send, attempts: 0, failures: 0, status: WAITING, retryAtMs: 0 };
    this.#entries.set(send.clientMsgId, entry);
    return entry;
  }

  get(clientMsgId: string): OutboxEntry | undefined {
    return this.#entries?.get(clientMsgId);
  }

  /** Removes a send (acknowledged or refused for good). */
  delete(entry: OutboxEntry): void {
    if (entry.status === RETRY) this.#retrying--;
    this.#entries?.delete(entry.send.clientMsgId);
  }

  /** Every send, in order. */
  entries(): IterableIterator<OutboxEntry> | readonly OutboxEntry[] {
    return this.#entries?.values() ?? [];
  }

  /** The link died: every send waits for the next one. */
  allWaiting(): void {
    if (this.#entries === undefined) return;
    for (const entry of this.#entries.values()) entry.status = WAITING;
    this.#retrying = 0;
  }

  /**
   * Parks a send until `atMs`, or until the earlier parked sends of its conversation go, if
   * later; later parked sends of the conversation go no sooner than it.
   */
  retryAt(entry: OutboxEntry, atMs: number): void {
    const target = targetOf(entry.send);
    let at = atMs;
    let before = true;
    for (const other of this.#entries?.values() ?? []) {
      if (other === entry) {
        before = false;
        continue;
      }
      if (other.status !== RETRY || targetOf(other.send) !== target) continue;
      if (before) at = Math.max(at, other.retryAtMs);
      else if (other.retryAtMs < at) other.retryAtMs = at;
    }
    if (entry.status !== RETRY) this.#retrying++;
    entry.status = RETRY;
    entry.retryAtMs = at;
  }

  /**
   * A new send whose conversation has a parked send: parks it to go right after it (true);
   * false when nothing of its conversation is parked and it may go now.
   */
  parkBehind(entry: OutboxEntry): boolean {
    if (this.#retrying === 0) return false;
    const target = targetOf(entry.send);
    let at = -1;
    for (const other of this.#entries?.values() ?? []) {
      if (other === entry) break;
      if (other.status === RETRY && targetOf(other.send) === target) at = Math.max(at, other.retryAtMs);
    }
    if (at < 0) return false;
    this.retryAt(entry, at);
    return true;
  }

  /** A parked send is transmitted again. */
  inFlight(entry: OutboxEntry): void {
    if (entry.status === RETRY) this.#retrying--;
    entry.status = IN_FLIGHT;
  }

  /** Parked sends whose time has come, in order. */
  dueRetries(nowMs: number): OutboxEntry[] {
    const out: OutboxEntry[] = [];
    if (this.#retrying === 0 || this.#entries === undefined) return out;
    for (const entry of this.#entries.values()) if (entry.status === RETRY && entry.retryAtMs <= nowMs) out.push(entry);
    return out;
  }

  /** The earliest retry time, or Infinity. */
  nextRetryMs(): number {
    let at = Infinity;
    if (this.#retrying === 0 || this.#entries === undefined) return at;
    for (const entry of this.#entries.values()) if (entry.status === RETRY && entry.retryAtMs < at) at = entry.retryAtMs;
    return at;
  }
}
