import type { ConnectionState } from "../model/chat-state.js";

const LABELS: Record<ConnectionState, string> = {
  idle: "Starting",
  connecting: "Connecting…",
  syncing: "Syncing…",
  live: "Live",
  offline: "Offline, reconnecting",
  closed: "Closed",
};

/** The connection state in words (a live region, so a screen reader hears it change). */
export function ConnectionIndicator({ state, detail }: { state: ConnectionState; detail: string }) {
  return (
    <div class="connection" role="status" aria-live="polite" data-state={state} data-testid="connection">
      <span class="dot" aria-hidden="true" />
      <span class="label">{LABELS[state]}</span>
      {detail !== "" && state !== "live" && <span class="detail">: {detail}</span>}
    </div>
  );
}
