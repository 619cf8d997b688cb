/**
 * Liveness of one link as data: when the client last heard from the server and last wrote to
 * it. A ping is due when nothing was written for `intervalMs` (so the server's silence timer
 * never fires on a working link and the client hears something back); the link is dead when
 * nothing was heard for `timeoutMs` (a half-open connection). Either bound 0 turns it off:
 * interval 0 leaves liveness to the transport (HTTP/2 PING keepalive), timeout 0 never
 * abandons a silent link.
 */
export class Heartbeat {
  readonly #intervalMs: number;
  readonly #timeoutMs: number;
  #heardAtMs = 0;
  #sentAtMs = 0;

  constructor(intervalMs: number, timeoutMs: number) {
    this.#intervalMs = intervalMs;
    this.#timeoutMs = timeoutMs;
  }

  /** A link was opened: both clocks start now. */
  reset(nowMs: number): void {
    this.#heardAtMs = nowMs;
    this.#sentAtMs = nowMs;
  }

  /** Any frame arrived from the server. */
  heard(nowMs: number): void {
    this.#heardAtMs = nowMs;
  }

  /** A request was written. */
  sent(nowMs: number): void {
    this.#sentAtMs = nowMs;
  }

  /** The link is silent for too long. */
  timedOut(nowMs: number): boolean {
    return this.#timeoutMs > 0 && nowMs - this.#heardAtMs >= this.#timeoutMs;
  }

  /** A ping should be written (only where the caller sends pings at all). */
  pingDue(nowMs: number): boolean {
    return this.#intervalMs > 0 && nowMs - this.#sentAtMs >= this.#intervalMs;
  }

  /** The next time timedOut() or pingDue() can change, or Infinity. */
  nextDueMs(pings: boolean): number {
    const timeout = this.#timeoutMs > 0 ? this.#heardAtMs + this.#timeoutMs : Infinity;
    const ping = pings && this.#intervalMs > 0 ? this.#sentAtMs + this.#intervalMs : Infinity;
    return Math.min(timeout, ping);
  }
}
