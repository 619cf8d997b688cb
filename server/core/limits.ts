/** The bounds the core enforces. Every list, page, batch and body has one. */
export interface Limits {
  /** Largest message body accepted, in bytes. */
  readonly bodyBytesMax: number;
  /** Largest group. */
  readonly groupMembersMax: number;
  /** Messages per conversation in one sync response: default and cap. */
  readonly syncMessagesDefault: number;
  readonly syncMessagesMax: number;
  /** Sessions in one sync response: default and cap. */
  readonly syncSessionsDefault: number;
  readonly syncSessionsMax: number;
  /** Most sessions of one user that a sync or a session-list call considers. */
  readonly sessionsScanMax: number;
  /** Messages in one range fetch: default and cap. */
  readonly fetchDefault: number;
  readonly fetchMax: number;
  /** Entries in one page of a list call: default and cap. */
  readonly pageDefault: number;
  readonly pageMax: number;
}

/** The defaults, documented in the README's configuration table. */
export const DEFAULT_LIMITS: Limits = {
  bodyBytesMax: 64 * 1024,
  groupMembersMax: 100_000,
  syncMessagesDefault: 100,
  syncMessagesMax: 1000,
  syncSessionsDefault: 200,
  syncSessionsMax: 1000,
  sessionsScanMax: 10_000,
  fetchDefault: 200,
  fetchMax: 1000,
  pageDefault: 100,
  pageMax: 1000,
};

/** `requested` if set (non-zero), else `fallback`, never above `cap`. */
export function clampPage(requested: number, fallback: number, cap: number): number {
  return Math.min(requested > 0 ? requested : fallback, cap);
}
