import type { Delivery } from "./delivery-checker.js";

interface ConversationState {
  /** Highest seq handed on (the checker's last seq, mirrored). */
  last: number;
  /** Sends to the conversation not answered yet. */
  inFlight: number;
  /** Pushes not handed on yet, in arrival order (never reordered among themselves). */
  readonly held: Delivery[];
  /** Own acknowledged messages not handed on yet, by seq. */
  readonly own: Delivery[];
}

/** Pushes held per conversation while own sends are in flight; past it the oldest is handed on. */
export const HELD_PUSHES_MAX = 1024;

/**
 * Puts a device's own acknowledged sends into the stream of pushes it receives, for the
 * delivery checker. The server does not push a message back to the connection that sent it:
 * that device learns of it from the answer to its send, which may arrive before or after
 * pushes of later messages (another process answers, another path carries the push). So a
 * push whose prev_seq names a message this device sent is held until that answer arrives, and
 * an answer whose prev_seq names a message not pushed yet waits for that push.
 *
 * Pushes are never reordered among themselves, never dropped and never invented: whatever the
 * server got wrong reaches the checker as it was (a push is held only while an own send is
 * unanswered, and at most HELD_PUSHES_MAX of them). A conversation the device never sent to
 * passes straight through. Pure.
 */
export class OwnSendMerger {
  readonly #record: (delivery: Delivery) => void;
  readonly #lastSeqOf: (conversationId: string) => number;
  readonly #heldMax: number;
  readonly #conversations = new Map<string, ConversationState>();

  /**
   * `record` gets every delivery, in the order the device would see them; `lastSeqOf` says
   * what was recorded in a conversation before the merger first saw a send to it (pushes of a
   * conversation the device has not sent to pass straight through).
   */
  constructor(record: (delivery: Delivery) => void, lastSeqOf: (conversationId: string) => number = () => 0, heldMax = HELD_PUSHES_MAX) {
    this.#record = record;
    this.#lastSeqOf = lastSeqOf;
    this.#heldMax = heldMax;
  }

  /** Pushes held and own answers waiting, over every conversation. */
  get waiting(): number {
    let n = 0;
    for (const s of this.#conversations.values()) n += s.held.length + s.own.length;
    return n;
  }

  /** The device sends to `conversationId`. */
  sending(conversationId: string): void {
    this.#state(conversationId).inFlight++;
  }

  /**
   * The send to `conversationId` was answered: with the stored message, or `undefined` when it
   * failed or repeated an earlier send (nothing new to deliver).
   */
  answered(conversationId: string, message: Delivery | undefined): void {
    const s = this.#state(conversationId);
    s.inFlight = Math.max(0, s.inFlight - 1);
    if (message !== undefined) {
      let at = s.own.length;
      while (at > 0 && s.own[at - 1]!.seq > message.seq) at--;
      s.own.splice(at, 0, message);
    }
    this.#pump(s);
  }

  /** A push arrived. */
  pushed(delivery: Delivery): void {
    const s = this.#conversations.get(delivery.conversationId);
    if (s === undefined) {
      this.#record(delivery);
      return;
    }
    s.held.push(delivery);
    this.#pump(s);
  }

  /** Hands on everything still waiting (end of a run): pushes in arrival order, own messages by seq between them. */
  flush(): void {
    for (const s of this.#conversations.values()) {
      while (s.held.length > 0 || s.own.length > 0) {
        const p = s.held[0];
        const own = s.own[0];
        if (p !== undefined && (own === undefined || p.seq < own.seq)) this.#emit(s, s.held.shift()!);
        else this.#emit(s, s.own.shift()!);
      }
    }
  }

  #state(conversationId: string): ConversationState {
    let s = this.#conversations.get(conversationId);
    if (s === undefined) {
      s = { last: this.#lastSeqOf(conversationId), inFlight: 0, held: [], own: [] };
      this.#conversations.set(conversationId, s);
    }
    return s;
  }

  #emit(s: ConversationState, delivery: Delivery): void {
    s.last = Math.max(s.last, delivery.seq);
    this.#record(delivery);
  }

  #pump(s: ConversationState): void {
    for (;;) {
      const p = s.held[0];
      const own = s.own[0];
      if (p !== undefined) {
        // The push follows what was handed on (or is a repeat, which the checker reports).
        if (p.prevSeq === s.last || p.seq <= s.last) {
          this.#emit(s, s.held.shift()!);
          continue;
        }
        if (own !== undefined && own.prevSeq === s.last) {
          this.#emit(s, s.own.shift()!);
          continue;
        }
        // An unanswered send may be the message the push follows.
        if (s.inFlight > 0 && s.held.length < this.#heldMax) return;
        // Nothing can fill the gap: the device saw it; the checker reports it.
        if (own !== undefined && own.seq < p.seq) this.#emit(s, s.own.shift()!);
        else this.#emit(s, s.held.shift()!);
        continue;
      }
      if (own !== undefined && (own.prevSeq === s.last || own.seq <= s.last)) {
        this.#emit(s, s.own.shift()!);
        continue;
      }
      return;
    }
  }
}
