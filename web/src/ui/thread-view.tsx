import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import type { ChatController } from "../app/chat-controller.js";
import { canLoadOlder, displayName, type Conversation, type OutgoingMessage } from "../model/chat-state.js";
import { messageText } from "../model/message-text.js";
import type { ClientMessage } from "../../../client/client-message.js";
import { CallButton } from "./call-panel.js";
import { GroupCallButton } from "./room-panel.js";
import { Composer } from "./composer.js";
import { MembersPanel } from "./members-panel.js";

/** Distance from the bottom, in pixels, that still counts as "at the newest message". */
const BOTTOM_SLACK_PX = 48;
/** Distance from the top at which scrolling up loads the next older page. */
const TOP_LOAD_PX = 80;

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

interface ThreadViewProps {
  readonly controller: ChatController;
  readonly conversation: Conversation;
  readonly userId: string;
  readonly live: boolean;
}

/** One conversation: history (paged backwards), live messages, sends in flight, composer. */
export function ThreadView({ controller, conversation: c, userId, live }: ThreadViewProps) {
  const scroller = useRef<HTMLDivElement>(null);
  const [atBottom, setAtBottom] = useState(true);
  const [membersOpen, setMembersOpen] = useState(false);
  // The newest seq seen while at the bottom: what arrived after it counts as new.
  const seenUpTo = useRef(0);
  const before = useRef({ height: 0, top: 0, firstSeq: 0 });
  const name = displayName(c);
  const newest = c.messages[c.messages.length - 1]?.seq ?? 0;
  const older = canLoadOlder(c);

  // Keep the reader's place: stick to the bottom when there, hold still when a page is prepended.
  useLayoutEffect(() => {
    const el = scroller.current;
    if (el === null) return;
    const firstSeq = c.messages[0]?.seq ?? 0;
    const prepended = before.current.firstSeq !== 0 && firstSeq !== 0 && firstSeq < before.current.firstSeq;
    if (prepended) el.scrollTop = before.current.top + (el.scrollHeight - before.current.height);
    else if (atBottom) el.scrollTop = el.scrollHeight;
    before.current = { height: el.scrollHeight, top: el.scrollTop, firstSeq };
  }, [c.messages, c.outgoing]);

  // At the bottom of a visible page, the newest message is seen: move the read position.
  useEffect(() => {
    if (atBottom) {
      seenUpTo.current = newest;
      controller.seen(c.id);
    }
  }, [atBottom, newest, live, c.id]);
  useEffect(() => {
    const onVisible = () => {
      if (atBottom) controller.seen(c.id);
    };
    document.addEventListener("visibilitychange", onVisible);
    return () => document.removeEventListener("visibilitychange", onVisible);
  }, [atBottom, c.id]);

  const onScroll = () => {
    const el = scroller.current;
    if (el === null) return;
    setAtBottom(el.scrollHeight - el.scrollTop - el.clientHeight <= BOTTOM_SLACK_PX);
    before.current = { ...before.current, top: el.scrollTop };
    if (el.scrollTop <= TOP_LOAD_PX && older && !c.loadingOlder) void controller.loadOlder(c.id);
  };

  const jumpToNewest = () => {
    const el = scroller.current;
    if (el !== null) el.scrollTop = el.scrollHeight;
    setAtBottom(true);
  };

  const newCount = atBottom ? 0 : c.messages.filter((m) => m.seq > seenUpTo.current && m.senderId !== userId).length;

  return (
    <main class="thread" aria-labelledby="thread-title" data-conversation-id={c.id}>
      <header class="thread-head">
        <h2 id="thread-title">{name}</h2>
        {c.kind === "direct" && <CallButton controller={controller} peerUserId={c.peerUserId} live={live} />}
        {c.kind === "group" && <GroupCallButton controller={controller} conversationId={c.id} live={live} />}
        {c.kind === "group" && (
          <button type="button" aria-expanded={membersOpen} aria-controls="members-panel" onClick={() => setMembersOpen(!membersOpen)}>
            Members
          </button>
        )}
      </header>
      {membersOpen && <MembersPanel controller={controller} conversation={c} userId={userId} />}
      <div class="scroller" ref={scroller} onScroll={onScroll}>
        {older ? (
          <button type="button" class="older" onClick={() => void controller.loadOlder(c.id)} disabled={c.loadingOlder}>
            {c.loadingOlder ? "Loading older messages…" : "Load older messages"}
          </button>
        ) : (
          c.messages.length > 0 && <p class="start">Start of the conversation</p>
        )}
        <div role="log" aria-label={`Messages with ${name}`}>
        <ol class="messages">
          {c.messages.map((m) => (
            <MessageRow key={m.seq} message={m} own={m.senderId === userId} />
          ))}
          {c.outgoing.map((o) => (
            <OutgoingRow key={o.clientMsgId} outgoing={o} onRetry={() => controller.retry(c.id, o.clientMsgId)} onDiscard={() => controller.discard(c.id, o.clientMsgId)} />
          ))}
        </ol>
        </div>
      </div>
      {!atBottom && (
        <button type="button" class="jump" onClick={jumpToNewest}>
          Jump to newest{newCount > 0 ? ` (${newCount} new)` : ""}
        </button>
      )}
      {c.removed && (
        <p class="removed" role="note">
          You are no longer a member of this conversation.
        </p>
      )}
      <Composer key={c.id} recipient={name} disabled={c.removed} onSend={(text) => controller.send(c.id, text)} />
    </main>
  );
}

function MessageRow({ message: m, own }: { message: ClientMessage; own: boolean }) {
  return (
    <li class={own ? "message own" : "message"} data-seq={m.seq} data-client-msg-id={m.clientMsgId} data-sender={m.senderId} data-status="delivered">
      <span class="sender">{own ? "You" : m.senderId}</span>
      <span class="text">{messageText(m)}</span>
      <time dateTime={new Date(m.sentAtMs).toISOString()}>{timeFormat.format(m.sentAtMs)}</time>
    </li>
  );
}

const STATUS: Record<OutgoingMessage["status"], string> = { pending: "Sending…", sent: "Sent", failed: "Not sent" };

function OutgoingRow({ outgoing: o, onRetry, onDiscard }: { outgoing: OutgoingMessage; onRetry: () => void; onDiscard: () => void }) {
  return (
    <li class={`message own outgoing ${o.status}`} data-client-msg-id={o.clientMsgId} data-status={o.status}>
      <span class="sender">You</span>
      <span class="text">{o.text}</span>
      <span class="status">{STATUS[o.status]}</span>
      {o.status === "failed" && (
        <span class="failure">
          <span class="error">{o.error}</span>
          <button type="button" onClick={onRetry}>
            Retry
          </button>
          <button type="button" onClick={onDiscard}>
            Discard
          </button>
        </span>
      )}
    </li>
  );
}
