import { useEffect, useState } from "preact/hooks";
import type { ChatState } from "../model/chat-state.js";
import type { ChatStore } from "../app/store.js";

/** The store's state, re-rendering the component on every change. */
export function useChatState(store: ChatStore): ChatState {
  const [state, setState] = useState(store.state);
  useEffect(() => {
    setState(store.state);
    return store.subscribe(() => setState(store.state));
  }, [store]);
  return state;
}
