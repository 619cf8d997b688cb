import type { Notice } from "../model/chat-state.js";

/** Errors in words, newest last, each dismissable. */
export function Notices({ notices, onDismiss }: { notices: readonly Notice[]; onDismiss: (id: number) => void }) {
  return (
    <div class="notices" role="alert" aria-live="assertive">
      {notices.map((n) => (
        <p key={n.id} class="notice">
          <span>{n.text}</span>
          <button type="button" onClick={() => onDismiss(n.id)} aria-label={`Dismiss: ${n.text}`}>
            Dismiss
          </button>
        </p>
      ))}
    </div>
  );
}
