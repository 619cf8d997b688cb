import { useEffect, useState } from "preact/hooks";
import { parseUserIds, type ChatController } from "../app/chat-controller.js";
import type { Conversation } from "../model/chat-state.js";

/** A group's members: add, remove (the owner removes anyone; anyone may leave). */
export function MembersPanel({ controller, conversation: c, userId }: { controller: ChatController; conversation: Conversation; userId: string }) {
  const [add, setAdd] = useState("");
  const [error, setError] = useState("");
  useEffect(() => void controller.loadMembers(c.id), [c.id]);

  const answer = (refusal: string | undefined) => setError(refusal ?? "");

  return (
    <section id="members-panel" class="members" aria-label="Members">
      {c.members === undefined ? (
        <p role="status">Loading members…</p>
      ) : (
        <ul>
          {c.members.map((m) => (
            <li key={m} data-member={m}>
              <span>
                {m}
                {m === userId ? " (you)" : ""}
              </span>
              {m !== userId && !c.removed && (
                <button type="button" aria-label={`Remove ${m}`} onClick={() => void controller.removeMembers(c.id, [m]).then(answer)}>
                  Remove
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
      {!c.removed && (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void controller.addMembers(c.id, parseUserIds(add)).then((refusal) => {
              answer(refusal);
              if (refusal === undefined) setAdd("");
            });
          }}
        >
          <label for="add-members">Add members</label>
          <input id="add-members" required placeholder="user names" value={add} onInput={(e) => setAdd(e.currentTarget.value)} />
          <button type="submit">Add</button>
        </form>
      )}
      {!c.removed && (
        <button type="button" onClick={() => void controller.removeMembers(c.id, [userId]).then(answer)}>
          Leave group
        </button>
      )}
      {error !== "" && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
    </section>
  );
}
