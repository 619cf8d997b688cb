/** A user's presence changed at its push home: first live connection anywhere, or last one gone. */
export interface PresenceChange {
  readonly userId: string;
  readonly online: boolean;
}

/**
 * Who has a live connection, as a user's push home hears it from every process: each process
 * reports the users it holds (changes as they happen, and a snapshot every refresh period),
 * and each report is a lease that lapses after `ttlMs` unless renewed. A user is online while
 * any process holds a lease for it, so a process that dies, or a report that is lost, makes
 * the user offline at most `ttlMs` later rather than never.
 *
 * Pure: time is given by the caller and no timer is kept (`expire(now)` on the caller's tick).
 * Returns the users whose presence across all processes changed, in the order it happened.
 */
export class PresenceLeases {
  readonly #ttlMs: number;
  /** userId -> process -> lease expiry. */
  readonly #byUser = new Map<string, Map<string, number>>();
  /** process -> its users here, for snapshots and for a process that leaves. */
  readonly #byProcess = new Map<string, Set<string>>();

  constructor(ttlMs: number) {
    if (!(ttlMs > 0)) throw new Error(`presence lease must be positive, got ${ttlMs}`);
    this.#ttlMs = ttlMs;
  }

  /** Users online (held by at least one process). */
  get onlineCount(): number {
    return this.#byUser.size;
  }

  isOnline(userId: string): boolean {
    return this.#byUser.has(userId);
  }

  /**
   * A report from `process`: `online` users hold a live connection there (leases renewed),
   * `offline` users no longer do. With `snapshot`, `online` is every user the process holds
   * for this home, and the process's other leases end.
   */
  report(process: string, online: readonly string[], offline: readonly string[], snapshot: boolean, nowMs: number): PresenceChange[] {
    const changes: PresenceChange[] = [];
    const expiry = nowMs + this.#ttlMs;
    let held = this.#byProcess.get(process);
    if (snapshot && held !== undefined) {
      const keep = new Set(online);
      for (const userId of held) if (!keep.has(userId)) this.#drop(process, userId, changes);
    }
    for (const userId of offline) this.#drop(process, userId, changes);
    if (online.length > 0 && held === undefined) this.#byProcess.set(process, (held = new Set()));
    for (const userId of online) {
      let leases = this.#byUser.get(userId);
      if (leases === undefined) {
        this.#byUser.set(userId, (leases = new Map()));
        changes.push({ userId, online: true });
      }
      leases.set(process, expiry);
      held!.add(userId);
    }
    return changes;
  }

  /** `process` is gone (it left the live set): its leases end now. */
  processGone(process: string): PresenceChange[] {
    const changes: PresenceChange[] = [];
    for (const userId of [...(this.#byProcess.get(process) ?? [])]) this.#drop(process, userId, changes);
    return changes;
  }

  /** Ends the leases that were not renewed by `nowMs`. */
  expire(nowMs: number): PresenceChange[] {
    const changes: PresenceChange[] = [];
    for (const [process, users] of [...this.#byProcess]) {
      for (const userId of [...users]) {
        const expiry = this.#byUser.get(userId)?.get(process);
        if (expiry !== undefined && expiry <= nowMs) this.#drop(process, userId, changes);
      }
    }
    return changes;
  }

  #drop(process: string, userId: string, changes: PresenceChange[]): void {
    const leases = this.#byUser.get(userId);
    if (leases?.delete(process) !== true) return;
    const held = this.#byProcess.get(process)!;
    held.delete(userId);
    if (held.size === 0) this.#byProcess.delete(process);
    if (leases.size > 0) return;
    this.#byUser.delete(userId);
    changes.push({ userId, online: false });
  }
}
