import { SyncEngine, type SyncEngineFaults, type SyncEngineOptions } from "../client/sync-engine.js";
import type { StoredMessage } from "../server/core/model.js";
import type { Link } from "./network.js";

/** Client settings (ImClient's defaults unless a scenario says otherwise). */
export interface ClientConfig {
  /** Ping interval, and the silence after which the client abandons a connection. */
  readonly heartbeatIntervalMs: number;
  readonly heartbeatTimeoutMs: number;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  /** Sends waiting for acknowledgement; beyond it the app's send is refused. */
  readonly outboxMax: number;
  /** Out-of-order messages each engine buffers per conversation (SyncEngineOptions.pendingMax). */
  readonly pendingMax: number;
  /** Probability that a delivery makes the app mark the conversation read up to its cursor. */
  readonly markReadProbability: number;
  /**
   * SDK fixes the simulator found necessary (ImClient does not have them yet; 0 = ImClient's
   * behaviour). idleResyncMs: a live, idle connection syncs this often, so a lost push at the
   * tail of a conversation (no later message reveals the gap) is repaired without a reconnect.
   */
  readonly idleResyncMs: number;
  /** 1: a send that failed retryably is retried on the live connection (with backoff); 0: only after a reconnect. */
  readonly retrySends: number;
  /** 1: a markRead answer moves the engine's read position; 0: it waits for the next sync. */
  readonly readAck: number;
}

/** Deliberate client bugs, test-only: the checkers must catch them. */
export interface ClientBugs extends SyncEngineFaults {
  /** Retry a send under a new clientMsgId (breaks idempotency). */
  readonly freshIdOnRetry?: boolean;
}

/** A send waiting for its acknowledgement. */
export interface OutboxEntry {
  readonly device: Device;
  /** The target: a conversation, or ("" there) the direct conversation with `toUserId`. */
  readonly conversationId: string;
  readonly toUserId: string;
  readonly clientMsgId: string;
  attempts: number;
}

/** Connection phases of a device, as ImClient's states: offline, syncing (connected, first sync running), live. */
export const OFFLINE = 0;
export const SYNCING = 1;
export const LIVE = 2;

/** One simulated device: the real SyncEngine plus what ImClient keeps around it. Plain fields. */
export class Device {
  readonly index: number;
  readonly userId: string;
  /** The device's number among its user's devices. */
  readonly k: number;
  readonly engine: SyncEngine<StoredMessage>;
  link: Link | undefined = undefined;
  phase = OFFLINE;
  /** Reconnect attempts since the last time the device was live. */
  attempt = 0;
  /** The app is closed (offline user or presence churn): no connection, no reconnect. */
  away = false;
  /** Reads pushes slowly while faults are on. */
  slow = false;
  heardAtMs = 0;
  sendCount = 0;
  outbox: Map<string, OutboxEntry> | undefined = undefined;
  /** Gaps being repaired, by conversation. */
  gaps: Map<string, Gap> | undefined = undefined;

  constructor(index: number, userId: string, k: number, engineOptions: SyncEngineOptions) {
    this.index = index;
    this.userId = userId;
    this.k = k;
    this.engine = new SyncEngine<StoredMessage>(engineOptions);
  }

  get name(): string {
    return `${this.userId}/${this.k}`;
  }

  /** Connected, synced, no gap open, nothing waiting to be acknowledged. */
  settled(): boolean {
    return this.phase === LIVE && this.engine.idle() && (this.outbox === undefined || this.outbox.size === 0);
  }

  get live(): boolean {
    return this.phase === LIVE;
  }
}

/** A gap being repaired: since when, and the seq that closes it. */
export interface Gap {
  readonly sinceMs: number;
  target: number;
}
