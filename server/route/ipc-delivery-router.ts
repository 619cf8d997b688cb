import type { DeliveryRouter, Push, PushTarget } from "./delivery-router.js";
import { LocalDeliveryRouter } from "./local-delivery-router.js";

/** Routing messages between the workers of one node and their primary (structured-clone IPC). */
export type IpcRouteMessage =
  /** Worker -> primary: the user's first connection on the worker attached (online) or its last detached. */
  | { readonly type: "im.presence"; readonly userId: string; readonly online: boolean }
  /** Worker -> primary: deliver to these users' connections on the other workers. */
  | { readonly type: "im.deliver"; readonly userIds: readonly string[]; readonly push: Push; readonly exceptConnectionId: string | undefined }
  /** Primary -> worker: deliver to these users' local connections. */
  | { readonly type: "im.push"; readonly userIds: readonly string[]; readonly push: Push; readonly exceptConnectionId: string | undefined };

/** One end of an IPC channel: a forked worker's `process`, or the primary's ChildProcess. */
export interface IpcPort {
  /** Sends in order; `done` runs once the message is written (or with the error). Must not throw. */
  send(message: IpcRouteMessage, done: (error: Error | null) => void): void;
}

/** True for the messages of this protocol (the channel also carries other messages). */
export function isIpcRouteMessage(message: unknown): message is IpcRouteMessage {
  const type = (message as { type?: unknown } | null)?.type;
  return type === "im.presence" || type === "im.deliver" || type === "im.push";
}

/**
 * Routing for several worker processes of one node without Redis: the primary process relays
 * pushes between its workers over the IPC channels it already has with them (IpcPushRelay on
 * the primary, this on each worker). Presence is exact rather than leased: a worker reports
 * its users' first attach and last detach, and the primary forgets a worker that exits, so
 * no TTL is needed. IPC channels keep order, so one worker's pushes reach another in the order
 * they were handed off. Best effort like every DeliveryRouter: a full channel (more than
 * `sendsMax` messages not yet written) drops pushes, and clients repair them through
 * prev_seq and sync. Not for several nodes: use RedisDeliveryRouter.
 */
export class IpcDeliveryRouter implements DeliveryRouter {
  readonly #local = new LocalDeliveryRouter();
  readonly #port: IpcPort;
  readonly #sendsMax: number;
  #sending = 0;
  #relayed = 0;
  #received = 0;
  #dropped = 0;

  constructor(port: IpcPort, options: { sendsMax?: number } = {}) {
    this.#port = port;
    this.#sendsMax = options.sendsMax ?? 10_000;
  }

  attach(target: PushTarget): void {
    const before = this.#local.connectionsOf(target.userId);
    this.#local.attach(target);
    if (before === 0 && this.#local.connectionsOf(target.userId) === 1) this.#send({ type: "im.presence", userId: target.userId, online: true }, true);
  }

  detach(target: PushTarget): void {
    const before = this.#local.connectionsOf(target.userId);
    this.#local.detach(target);
    if (before > 0 && this.#local.connectionsOf(target.userId) === 0) this.#send({ type: "im.presence", userId: target.userId, online: false }, true);
  }

  deliver(userIds: readonly string[], push: Push, exceptConnectionId?: string): void {
    this.#local.deliver(userIds, push, exceptConnectionId);
    if (userIds.length === 0) return;
    if (this.#send({ type: "im.deliver", userIds, push, exceptConnectionId }, false)) this.#relayed++;
  }

  connectionCount(): number {
    return this.#local.connectionCount();
  }

  /** Takes a message from the primary. */
  receive(message: IpcRouteMessage): void {
    if (message.type !== "im.push") return;
    this.#received++;
    this.#local.deliver(message.userIds, message.push, message.exceptConnectionId);
  }

  stats(): { relayed: number; received: number; dropped: number; connections: number } {
    return { relayed: this.#relayed, received: this.#received, dropped: this.#dropped, connections: this.#local.connectionCount() };
  }

  /** Presence changes are never dropped (they are small and a lost one would misroute for good). */
  #send(message: IpcRouteMessage, always: boolean): boolean {
    if (!always && this.#sending >= this.#sendsMax) {
      this.#dropped++;
      return false;
    }
    this.#sending++;
    this.#port.send(message, (error) => {
      this.#sending--;
      if (error !== null && message.type === "im.deliver") this.#dropped++;
    });
    return true;
  }
}

/**
 * The primary's side of IpcDeliveryRouter: which workers hold which users, and forwarding of
 * each delivery to the workers (other than the sender) that hold any of its users, with only
 * those users.
 */
export class IpcPushRelay {
  readonly #workers = new Map<string, { port: IpcPort; sending: number }>();
  readonly #byUser = new Map<string, Set<string>>();
  readonly #sendsMax: number;
  #forwarded = 0;
  #dropped = 0;

  constructor(options: { sendsMax?: number } = {}) {
    this.#sendsMax = options.sendsMax ?? 10_000;
  }

  /** A worker (re)started: it holds no users yet. */
  addWorker(workerId: string, port: IpcPort): void {
    this.removeWorker(workerId);
    this.#workers.set(workerId, { port, sending: 0 });
  }

  /** A worker exited: forget its users. */
  removeWorker(workerId: string): void {
    if (!this.#workers.delete(workerId)) return;
    for (const [user, workers] of this.#byUser) {
      if (workers.delete(workerId) && workers.size === 0) this.#byUser.delete(user);
    }
  }

  /** Takes a message from worker `workerId`. */
  receive(workerId: string, message: IpcRouteMessage): void {
    if (!this.#workers.has(workerId)) return;
    if (message.type === "im.presence") {
      let workers = this.#byUser.get(message.userId);
      if (message.online) {
        if (workers === undefined) this.#byUser.set(message.userId, (workers = new Set()));
        workers.add(workerId);
      } else if (workers !== undefined && workers.delete(workerId) && workers.size === 0) {
        this.#byUser.delete(message.userId);
      }
      return;
    }
    if (message.type !== "im.deliver") return;
    const byWorker = new Map<string, string[]>();
    for (const user of message.userIds) {
      for (const target of this.#byUser.get(user) ?? []) {
        if (target === workerId) continue;
        let users = byWorker.get(target);
        if (users === undefined) byWorker.set(target, (users = []));
        users.push(user);
      }
    }
    for (const [target, userIds] of byWorker) {
      const worker = this.#workers.get(target)!;
      if (worker.sending >= this.#sendsMax) {
        this.#dropped++;
        continue;
      }
      worker.sending++;
      this.#forwarded++;
      worker.port.send({ type: "im.push", userIds, push: message.push, exceptConnectionId: message.exceptConnectionId }, () => worker.sending--);
    }
  }

  /** Workers holding `userId` (for tests and stats). */
  workersOf(userId: string): string[] {
    return [...(this.#byUser.get(userId) ?? [])];
  }

  stats(): { users: number; forwarded: number; dropped: number } {
    return { users: this.#byUser.size, forwarded: this.#forwarded, dropped: this.#dropped };
  }
}
