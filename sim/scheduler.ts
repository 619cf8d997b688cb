/**
 * The discrete-event scheduler of the simulator: virtual time in whole milliseconds, events
 * ordered by (time, sequence), so two events at the same time run in the order they were
 * scheduled. Nothing here reads the system clock or uses a real timer to decide anything.
 *
 * Layout: a binary min-heap of the distinct times that have events, and a FIFO bucket of
 * events per time. That is the (time, sequence) order of one heap of events, with a heap
 * operation per distinct millisecond instead of per event, and no object per event (a bucket
 * holds handler and argument side by side).
 *
 * Async code (the real Messaging core over the store) continues in microtasks. Whenever an
 * event handler may have started such work it calls `touch()`; before virtual time moves on,
 * the scheduler lets the microtask queue run dry (one `setImmediate` turn, which runs only
 * after every queued microtask). Microtasks run in a deterministic FIFO order, and the points
 * where they run depend only on the events, so a run is a function of its seed.
 */

/** An event handler; the argument is what `schedule` was given (no closure per event needed). */
export type EventHandler<T> = (arg: T) => void;

/** Bounds of one `run`. */
export interface RunBounds {
  /** Stop before the first event later than this virtual time. */
  readonly untilMs: number;
  /** Stop after this many events in total (the run's event budget). */
  readonly maxEvents: number;
  /** Checked between time steps: true stops the run. */
  readonly stop?: () => boolean;
}

/** Why a run returned. */
export type RunEnd = "idle" | "until" | "max-events" | "stopped";

/** See the file comment. */
export class Scheduler {
  #now = 0;
  #events = 0;
  #dirty = false;
  readonly #times: number[] = [];
  readonly #buckets = new Map<number, unknown[]>();
  /** Resolves a `delay` promise; its continuation runs in microtasks, so drain them. */
  readonly #wake = (resolve: () => void): void => {
    this.#dirty = true;
    resolve();
  };

  /** The current virtual time in milliseconds since the start of the run. */
  get nowMs(): number {
    return this.#now;
  }

  /** Events run so far. */
  get events(): number {
    return this.#events;
  }

  /** Events waiting. O(distinct times). */
  pending(): number {
    let n = 0;
    for (const bucket of this.#buckets.values()) n += bucket.length / 2;
    return n;
  }

  /** Runs `fn(arg)` after `delayMs` (rounded down, at least 0) of virtual time. */
  schedule<T>(delayMs: number, fn: EventHandler<T>, arg: T): void {
    this.at(this.#now + (delayMs > 0 ? Math.floor(delayMs) : 0), fn, arg);
  }

  /** Runs `fn(arg)` at virtual time `timeMs` (never earlier than now). */
  at<T>(timeMs: number, fn: EventHandler<T>, arg: T): void {
    const t = timeMs > this.#now ? Math.floor(timeMs) : this.#now;
    let bucket = this.#buckets.get(t);
    if (bucket === undefined) {
      bucket = [];
      this.#buckets.set(t, bucket);
      heapPush(this.#times, t);
    }
    bucket.push(fn, arg);
  }

  /** A promise that resolves after `delayMs` of virtual time. */
  delay(delayMs: number): Promise<void> {
    return new Promise<void>((resolve) => this.schedule(delayMs, this.#wake, resolve));
  }

  /** Says that async work may be waiting in the microtask queue: drain it before time moves. */
  touch(): void {
    this.#dirty = true;
  }

  /** Runs events in (time, sequence) order within `bounds`. */
  async run(bounds: RunBounds): Promise<RunEnd> {
    const times = this.#times;
    for (;;) {
      if (this.#dirty) {
        this.#dirty = false;
        await drainMicrotasks();
        continue;
      }
      if (bounds.stop?.() === true) return "stopped";
      const t = times[0];
      if (t === undefined) return "idle";
      if (t > bounds.untilMs) return "until";
      const bucket = this.#buckets.get(t)!;
      this.#now = t;
      // Events scheduled for `t` while the bucket runs are appended to it and run in turn.
      let i = 0;
      for (; i < bucket.length; i += 2) {
        if (this.#events >= bounds.maxEvents) {
          bucket.splice(0, i);
          return "max-events";
        }
        this.#events++;
        (bucket[i] as EventHandler<unknown>)(bucket[i + 1]);
      }
      this.#buckets.delete(t);
      heapPop(times);
    }
  }
}

/** Resolves after every microtask queued so far (and those they queue) has run. */
function drainMicrotasks(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}

function heapPush(heap: number[], value: number): void {
  let i = heap.length;
  heap.push(value);
  while (i > 0) {
    const parent = (i - 1) >> 1;
    const p = heap[parent]!;
    if (p <= value) break;
    heap[i] = p;
    i = parent;
  }
  heap[i] = value;
}

function heapPop(heap: number[]): void {
  const last = heap.pop()!;
  const n = heap.length;
  if (n === 0) return;
  let i = 0;
  for (;;) {
    const left = 2 * i + 1;
    if (left >= n) break;
    const right = left + 1;
    const child = right < n && heap[right]! < heap[left]! ? right : left;
    if (heap[child]! >= last) break;
    heap[i] = heap[child]!;
    i = child;
  }
  heap[i] = last;
}
