import { reduce, type ChatAction, type ChatState } from "../model/chat-state.js";

/** Holds the page's state; the view subscribes and re-renders on every change. */
export class ChatStore {
  #state: ChatState;
  readonly #listeners = new Set<() => void>();

  constructor(initial: ChatState) {
    this.#state = initial;
  }

  get state(): ChatState {
    return this.#state;
  }

  dispatch(action: ChatAction): void {
    const next = reduce(this.#state, action);
    if (next === this.#state) return;
    this.#state = next;
    for (const listener of this.#listeners) listener();
  }

  /** Calls `listener` after every change; returns the unsubscribe function. */
  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
