import type { ClientCore, ClientHost, ClientState, Settled } from "../client/client-core.js";
import type { ClientMessage } from "../client/client-message.js";
import type { ClientRequest, LinkCloseCause, PendingSend, SendAck } from "../client/client-protocol.js";
import type { Link, LinkClient } from "./network.js";

/** Client settings: the production client's defaults (client/client-core.ts CLIENT_DEFAULTS) unless a scenario says otherwise. */
export interface ClientConfig {
  /** Ping after this long without writing, and abandon a link silent for heartbeatTimeoutMs. */
  readonly heartbeatIntervalMs: number;
  readonly heartbeatTimeoutMs: number;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  /** A live, idle client syncs this often (0: never). */
  readonly resyncIntervalMs: number;
  /** Sends waiting for acknowledgement; beyond it the app's send is refused. */
  readonly outboxMax: number;
  /** Requests in flight per link. */
  readonly requestsInFlightMax: number;
  /** Out-of-order messages each engine buffers per conversation (SyncEngineOptions.pendingMax). */
  readonly pendingMax: number;
  /** How long a gap a push revealed waits for a reordered push (SyncEngineOptions.reorderWindowMs). */
  readonly reorderWindowMs: number;
  /** Probability that a delivery makes the app mark the conversation read up to its cursor. */
  readonly markReadProbability: number;
}

/** The driver's side of a device: what the device's ClientHost calls end up in (sim/client-driver.ts). */
export interface DeviceDriver {
  fetchToken(device: Device, attempt: number): void;
  openLink(device: Device, link: number, attempt: number, token: string): void;
  closeLink(device: Device, link: number, cause: LinkCloseCause): void;
  write(device: Device, requestId: number, request: ClientRequest): void;
  deliver(device: Device, conversationId: string, messages: readonly ClientMessage[]): void;
  stuck(device: Device, conversationId: string, lastSeq: number): void;
  readMoved(device: Device, conversationId: string, readSeq: number): void;
  sendSettled(device: Device, send: PendingSend, outcome: Settled<SendAck>): void;
}

/**
 * One simulated device: the production ClientCore (with its SyncEngine) plus what the
 * simulation keeps about it. The device is the core's ClientHost; its methods hand everything
 * to the driver. Plain fields and prototype methods: a million of these must stay small.
 */
export class Device implements ClientHost<ClientMessage>, LinkClient {
  readonly index: number;
  readonly userId: string;
  /** The device's number among its user's devices. */
  readonly k: number;
  readonly driver: DeviceDriver;
  /** Set by the driver right after construction (the core needs its host first). */
  core!: ClientCore<ClientMessage>;
  /** The network link of the core's current link, and the core's id for it. */
  link: Link | undefined = undefined;
  coreLink = 0;
  /** The app is closed (offline user or presence churn): no core running. */
  away = false;
  /** Reads pushes slowly while faults are on. */
  slow = false;
  readonly adversary = false;
  sendCount = 0;
  /** The virtual time of the wake event scheduled for the core (Infinity: none). */
  wakeAt = Infinity;
  /** Gaps being repaired, by conversation. */
  gaps: Map<string, Gap> | undefined = undefined;

  constructor(index: number, userId: string, k: number, driver: DeviceDriver) {
    this.index = index;
    this.userId = userId;
    this.k = k;
    this.driver = driver;
  }

  get name(): string {
    return `${this.userId}/${this.k}`;
  }

  /** Connected, synced, no gap open, nothing waiting to be acknowledged. */
  settled(): boolean {
    return this.core.idle();
  }

  get live(): boolean {
    return this.core.state === "live";
  }

  fetchToken(attempt: number): void {
    this.driver.fetchToken(this, attempt);
  }

  openLink(link: number, attempt: number, token: string): void {
    this.driver.openLink(this, link, attempt, token);
  }

  closeLink(link: number, cause: LinkCloseCause): void {
    this.driver.closeLink(this, link, cause);
  }

  write(_link: number, requestId: number, request: ClientRequest): void {
    this.driver.write(this, requestId, request);
  }

  stateChanged(_state: ClientState): void {}

  deliver(conversationId: string, messages: readonly ClientMessage[]): void {
    this.driver.deliver(this, conversationId, messages);
  }

  readMoved(conversationId: string, readSeq: number): void {
    this.driver.readMoved(this, conversationId, readSeq);
  }

  removed(): void {}

  stuck(conversationId: string, lastSeq: number): void {
    this.driver.stuck(this, conversationId, lastSeq);
  }

  sendSettled(send: PendingSend, outcome: Settled<SendAck>): void {
    this.driver.sendSettled(this, send, outcome);
  }

  markReadSettled(): void {}

  error(): void {}
}

/** A gap being repaired: since when, from which seq, the seq that closes it, and what its repair took. */
export interface Gap {
  readonly sinceMs: number;
  readonly fromSeq: number;
  target: number;
  fetches: number;
  linksLost: number;
}
