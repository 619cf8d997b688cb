import { displayName, unreadCount, type Conversation } from "../model/chat-state.js";

interface ConversationListProps {
  readonly conversations: readonly Conversation[];
  readonly userId: string;
  readonly selectedId: string | undefined;
  readonly onSelect: (id: string) => void;
}

function previewLine(c: Conversation, userId: string): string {
  if (c.preview === "" && c.lastSeq === 0) return c.kind === "group" ? "No messages yet" : "New chat";
  const who = c.previewSenderId === userId ? "You" : c.kind === "group" ? c.previewSenderId : "";
  return who === "" ? c.preview : `${who}: ${c.preview}`;
}

/** The session list: newest activity first, with previews and unread counts. */
export function ConversationList({ conversations, userId, selectedId, onSelect }: ConversationListProps) {
  if (conversations.length === 0) return <p class="hint">No conversations yet.</p>;
  return (
    <ul class="conversations">
      {conversations.map((c) => {
        const unread = unreadCount(c, userId);
        return (
          <li key={c.id}>
            <button
              type="button"
              class="conversation"
              aria-current={c.id === selectedId ? "true" : undefined}
              data-conversation-id={c.id}
              data-unread={unread}
              onClick={() => onSelect(c.id)}
            >
              <span class="name">
                {displayName(c)}
                {c.kind === "group" && <span class="visually-hidden"> (group)</span>}
              </span>
              {unread > 0 && (
                <span class="unread">
                  <span class="visually-hidden">, </span>
                  {unread}
                  <span class="visually-hidden"> unread</span>
                </span>
              )}
              <span class="preview">{previewLine(c, userId)}</span>
            </button>
          </li>
        );
      })}
    </ul>
  );
}
