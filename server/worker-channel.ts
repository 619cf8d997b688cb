/**
 * Services the primary offers its workers over the IPC channels it already has with them
 * (metrics gathering, presence), beside the broker relay. Each service speaks its own message
 * types (`type` starting with its prefix) and ignores every other message.
 */
export interface PrimaryService {
  /** True for this service's messages. */
  handles(message: unknown): boolean;
  /** A message of this service from worker `worker` (its index). */
  receive(worker: number, message: unknown): void;
  /** Worker `worker` started (or restarted); `send` reaches it (best effort) until it exits. */
  workerStarted(worker: number, send: (message: unknown) => void): void;
  workerExited(worker: number): void;
}

/** A worker's IPC channel to its primary, for the primary's services. */
export interface WorkerChannel {
  /** Best effort; a closed channel drops the message. */
  send(message: unknown): void;
  /** Adds a listener of every message from the primary. */
  onMessage(listener: (message: unknown) => void): void;
}

/** A request that waits for its answer. */
interface Waiting<T> {
  readonly resolve: (answer: T | undefined) => void;
  readonly timer: NodeJS.Timeout;
}

/**
 * Requests from a worker to its primary, each answered once: `ask` sends the message built for
 * a fresh id and resolves with the answer `answered(id, answer)` reports, or with undefined when
 * none came within `timeoutMs` or more than `pendingMax` wait already (bounded both ways).
 */
export class IpcRequests<T> {
  readonly #send: (id: number) => void;
  readonly #timeoutMs: number;
  readonly #pendingMax: number;
  readonly #waiting = new Map<number, Waiting<T>>();
  #nextId = 0;

  constructor(send: (id: number) => void, options: { readonly timeoutMs: number; readonly pendingMax: number }) {
    this.#send = send;
    this.#timeoutMs = options.timeoutMs;
    this.#pendingMax = options.pendingMax;
  }

  ask(): Promise<T | undefined> {
    if (this.#waiting.size >= this.#pendingMax) return Promise.resolve(undefined);
    const id = ++this.#nextId;
    return new Promise<T | undefined>((resolve) => {
      const timer = setTimeout(() => this.answered(id, undefined), this.#timeoutMs);
      timer.unref();
      this.#waiting.set(id, { resolve, timer });
      this.#send(id);
    });
  }

  /** The answer to request `id` (undefined: none). Unknown or late ids are ignored. */
  answered(id: number, answer: T | undefined): void {
    const waiting = this.#waiting.get(id);
    if (waiting === undefined) return;
    this.#waiting.delete(id);
    clearTimeout(waiting.timer);
    waiting.resolve(answer);
  }
}
