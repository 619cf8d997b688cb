import { useState } from "preact/hooks";
import { parseUserIds, type ChatController } from "../app/chat-controller.js";

/** Start a direct chat by user name; create a group with a title and members. */
export function NewConversationForms({ controller }: { controller: ChatController }) {
  const [peer, setPeer] = useState("");
  const [peerError, setPeerError] = useState("");
  const [title, setTitle] = useState("");
  const [members, setMembers] = useState("");
  const [groupError, setGroupError] = useState("");
  const [creating, setCreating] = useState(false);

  const startChat = (event: Event) => {
    event.preventDefault();
    const refusal = controller.startDirect(peer);
    setPeerError(refusal ?? "");
    if (refusal === undefined) setPeer("");
  };

  const createGroup = async (event: Event) => {
    event.preventDefault();
    setCreating(true);
    const refusal = await controller.createGroup(title, parseUserIds(members));
    setCreating(false);
    setGroupError(refusal ?? "");
    if (refusal === undefined) {
      setTitle("");
      setMembers("");
    }
  };

  return (
    <div class="new-conversation">
      <form class="new-chat" onSubmit={startChat}>
        <label for="new-chat-user">Chat with</label>
        <input id="new-chat-user" required placeholder="user name" value={peer} onInput={(e) => setPeer(e.currentTarget.value)} />
        <button type="submit">Start chat</button>
        {peerError !== "" && (
          <p role="alert" class="error">
            {peerError}
          </p>
        )}
      </form>
      <details class="new-group">
        <summary>New group</summary>
        <form onSubmit={createGroup}>
          <label for="new-group-title">Group title</label>
          <input id="new-group-title" required maxLength={200} value={title} onInput={(e) => setTitle(e.currentTarget.value)} />
          <label for="new-group-members">Members</label>
          <input
            id="new-group-members"
            placeholder="bob, carol"
            value={members}
            onInput={(e) => setMembers(e.currentTarget.value)}
            aria-describedby="new-group-members-hint"
          />
          <p id="new-group-members-hint" class="hint">
            User names, separated by commas or spaces; you are a member too.
          </p>
          <button type="submit" disabled={creating}>
            Create group
          </button>
          {groupError !== "" && (
            <p role="alert" class="error">
              {groupError}
            </p>
          )}
        </form>
      </details>
    </div>
  );
}
