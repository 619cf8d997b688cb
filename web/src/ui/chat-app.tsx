import { useEffect } from "preact/hooks";
import type { ChatController } from "../app/chat-controller.js";
import { conversationOrder, unreadCount } from "../model/chat-state.js";
import { CallPanel } from "./call-panel.js";
import { ConnectionIndicator, StorageNote } from "./connection-indicator.js";
import { ConversationList } from "./conversation-list.js";
import { NewConversationForms } from "./new-conversation-forms.js";
import { Notices } from "./notices.js";
import { LiveRoomForms, RoomPanel } from "./room-panel.js";
import { ThreadView } from "./thread-view.js";
import { useChatState } from "./use-chat-state.js";

/** The signed-in page: header, errors, conversation list and the open conversation. */
export function ChatApp({ controller, onSignOut }: { controller: ChatController; onSignOut: () => void }) {
  const state = useChatState(controller.store);
  const order = conversationOrder(state);
  const selected = state.selectedId === undefined ? undefined : state.conversations.get(state.selectedId);
  const unreadTotal = order.reduce((n, c) => n + unreadCount(c, state.userId), 0);

  useEffect(() => {
    document.title = unreadTotal > 0 ? `(${unreadTotal}) microchat` : "microchat";
  }, [unreadTotal]);

  return (
    <div class="app">
      <header class="top">
        <h1>microchat</h1>
        <ConnectionIndicator state={state.connection} detail={state.connectionDetail} />
        <StorageNote kind={state.storage} detail={state.storageDetail} />
        <p class="me">
          Signed in as <strong data-testid="me">{state.userId}</strong>
        </p>
        <button type="button" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      <Notices notices={state.notices} onDismiss={(id) => controller.dismiss(id)} />
      <CallPanel controller={controller} />
      <RoomPanel controller={controller} />
      <div class="panes">
        <nav class="sidebar" aria-label="Conversations">
          <NewConversationForms controller={controller} />
          <LiveRoomForms controller={controller} />
          <ConversationList conversations={order} userId={state.userId} selectedId={state.selectedId} onSelect={(id) => controller.select(id)} />
        </nav>
        {selected === undefined ? (
          <main class="thread empty">
            <p>Pick a conversation, or start one with a user name.</p>
          </main>
        ) : (
          <ThreadView key={selected.id} controller={controller} conversation={selected} userId={state.userId} live={state.connection === "live"} />
        )}
      </div>
    </div>
  );
}
