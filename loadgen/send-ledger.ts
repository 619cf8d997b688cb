/**
 * What the senders of a run had acknowledged, per conversation: the oracle the delivery checker
 * compares every receiver against. Pure and mergeable across processes (plain JSON).
 */

/** One conversation's acknowledged sends. */
export interface LedgerEntry {
  /** Highest seq acknowledged. */
  maxSeq: number;
  /** Distinct messages acknowledged (results flagged `duplicate` are not counted twice). */
  count: number;
  /** Order-independent digest of the acknowledged message ids (see messageDigest). */
  digest: number;
  /** Sends to this conversation that failed: a message may have been stored without an ack. */
  failures: number;
}

/** What every member of a conversation must hold at the end of a run. */
export interface ConversationExpectation {
  /** The last seq a member must have delivered. */
  readonly lastSeq: number;
  /**
   * The digest of all messages 1..lastSeq, when the ledger saw every one of them acknowledged
   * (no failures, no seq missing); absent when it cannot know.
   */
  readonly digest?: number;
}

/** FNV-1a (32 bit) of a message id: summed (mod 2^32) into an order-independent set digest. */
export function messageDigest(messageId: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < messageId.length; i++) {
    h ^= messageId.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Adds one message's digest to a set digest. */
export function addDigest(digest: number, messageId: string): number {
  return (digest + messageDigest(messageId)) >>> 0;
}

/** Acknowledged sends per conversation. */
export class SendLedger {
  readonly #entries = new Map<string, LedgerEntry>();

  #entry(conversationId: string): LedgerEntry {
    let e = this.#entries.get(conversationId);
    if (e === undefined) {
      e = { maxSeq: 0, count: 0, digest: 0, failures: 0 };
      this.#entries.set(conversationId, e);
    }
    return e;
  }

  /** A send was acknowledged; `duplicate` results repeat an earlier ack and count once. */
  acked(conversationId: string, seq: number, messageId: string, duplicate = false): void {
    const e = this.#entry(conversationId);
    if (duplicate) return;
    e.maxSeq = Math.max(e.maxSeq, seq);
    e.count++;
    e.digest = addDigest(e.digest, messageId);
  }

  /** A send to `conversationId` failed (no ack). */
  failed(conversationId: string): void {
    this.#entry(conversationId).failures++;
  }

  /** Plain-object form, for IPC. */
  toJSON(): Record<string, LedgerEntry> {
    return Object.fromEntries([...this.#entries].map(([k, v]) => [k, { ...v }]));
  }

  /** Adds another ledger's entries (from another process or phase). */
  merge(other: Readonly<Record<string, LedgerEntry>>): void {
    for (const [conversationId, o] of Object.entries(other)) {
      const e = this.#entry(conversationId);
      e.maxSeq = Math.max(e.maxSeq, o.maxSeq);
      e.count += o.count;
      e.digest = (e.digest + o.digest) >>> 0;
      e.failures += o.failures;
    }
  }

  /** Totals over every conversation. */
  totals(): { acked: number; failures: number; conversations: number } {
    let acked = 0;
    let failures = 0;
    for (const e of this.#entries.values()) {
      acked += e.count;
      failures += e.failures;
    }
    return { acked, failures, conversations: this.#entries.size };
  }

  /**
   * What each member must hold. The digest is given only for conversations whose every seq
   * 1..maxSeq was acknowledged exactly once and nothing failed, i.e. where the ledger is the
   * complete truth (the run's conversations start empty).
   */
  expectations(): Map<string, ConversationExpectation> {
    const out = new Map<string, ConversationExpectation>();
    for (const [conversationId, e] of this.#entries) {
      const complete = e.failures === 0 && e.count === e.maxSeq;
      out.set(conversationId, complete ? { lastSeq: e.maxSeq, digest: e.digest } : { lastSeq: e.maxSeq });
    }
    return out;
  }
}
