/** Something the wheel beats: sends one heartbeat when told. */
export interface Beating {
  heartbeat(): void;
}

/** How often the wheel turns; each turn beats the members due in it. */
export const WHEEL_TICK_MS = 20;
/** The most heartbeats a late turn makes up for, in milliseconds of schedule. */
const CATCH_UP_MS = 5 * WHEEL_TICK_MS;

/**
 * One timer for the heartbeats of every device in a process: each member is beaten once per
 * `intervalMs`, the members spread evenly over the interval (not in bursts), round-robin in
 * the order they joined. 100,000 devices cost one interval timer, not 100,000. Members join
 * when live and leave when they go away; a member added mid-turn waits its turn.
 */
export class HeartbeatWheel<T extends Beating> {
  readonly #members = new Set<T>();
  readonly #intervalMs: number;
  #cursor: Iterator<T> | undefined;
  #credit = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  #lastTurnAt = 0;

  constructor(intervalMs: number) {
    this.#intervalMs = intervalMs;
  }

  get size(): number {
    return this.#members.size;
  }

  add(member: T): void {
    this.#members.add(member);
    if (this.#timer === undefined) {
      this.#lastTurnAt = performance.now();
      this.#timer = setInterval(() => {
        const now = performance.now();
        this.turn(now - this.#lastTurnAt);
        this.#lastTurnAt = now;
      }, WHEEL_TICK_MS);
      this.#timer.unref();
    }
  }

  delete(member: T): void {
    this.#members.delete(member);
  }

  /** Beats the members due in `elapsedMs` (called by the timer; public for tests). */
  turn(elapsedMs: number): void {
    const perMs = this.#members.size / this.#intervalMs;
    // A wheel held up (a busy event loop) catches up at most a few turns' worth, not in a burst.
    this.#credit = Math.min(this.#credit + perMs * elapsedMs, Math.max(1, perMs * CATCH_UP_MS));
    while (this.#credit >= 1 && this.#members.size > 0) {
      this.#credit--;
      let next = this.#cursor?.next();
      if (next === undefined || next.done === true) {
        this.#cursor = this.#members.values();
        next = this.#cursor.next();
      }
      if (next.done !== true) next.value.heartbeat();
    }
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#members.clear();
  }
}
