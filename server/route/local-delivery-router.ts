import type { DeliveryRouter, Push, PushTarget } from "./delivery-router.js";

/** In-process presence and routing: one gateway process, no external dependency. */
export class LocalDeliveryRouter implements DeliveryRouter {
  readonly #byUser = new Map<string, Set<PushTarget>>();
  #count = 0;

  attach(target: PushTarget): void {
    let set = this.#byUser.get(target.userId);
    if (set === undefined) {
      set = new Set();
      this.#byUser.set(target.userId, set);
    }
    if (!set.has(target)) {
      set.add(target);
      this.#count++;
    }
  }

  detach(target: PushTarget): void {
    const set = this.#byUser.get(target.userId);
    if (set === undefined || !set.delete(target)) return;
    this.#count--;
    if (set.size === 0) this.#byUser.delete(target.userId);
  }

  deliver(userIds: readonly string[], push: Push, exceptConnectionId?: string): void {
    for (const userId of userIds) {
      const set = this.#byUser.get(userId);
      if (set === undefined) continue;
      for (const target of set) {
        if (target.connectionId !== exceptConnectionId) target.push(push);
      }
    }
  }

  connectionCount(): number {
    return this.#count;
  }

  /** Live connections of one user registered here. */
  connectionsOf(userId: string): number {
    return this.#byUser.get(userId)?.size ?? 0;
  }

  /** The users with at least one live connection here. */
  users(): IterableIterator<string> {
    return this.#byUser.keys();
  }
}
