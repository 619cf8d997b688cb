import type { ConnectionState, StorageKind } from "../model/chat-state.js";

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

/** Where history is kept: on this device (IndexedDB, across reloads), or in this page only (and why). */
export function StorageNote({ kind, detail }: { kind: StorageKind; detail: string }) {
  if (kind === "opening") return null;
  return (
    <p class="storage" data-testid="storage" data-kind={kind} title={detail === "" ? undefined : detail}>
      {kind === "indexeddb" ? "History kept on this device" : `History kept in this page only${detail === "" ? "" : ` (${detail})`}`}
    </p>
  );
}
