import type { BackoffOptions } from "./backoff.js";
import type { Clock } from "./clock.js";
import type { PendingSend, SendAck } from "./client-protocol.js";
import { REORDER_WINDOW_MS_DEFAULT, SyncEngine, type ChainMessage, type SyncEngineOptions, type SyncLogic } from "./sync-engine.js";

/** Client settings; every field but the ports has a default (CLIENT_DEFAULTS). */
export interface ClientCoreOptions<M extends ChainMessage> {
  readonly clock: Clock;
  /** [0, 1) randomness for the backoff jitter. */
  readonly random: () => number;
  /** Builds the client's own message from the server's acknowledgement of its send. */
  readonly ownMessage: (ack: SendAck, send: PendingSend) => M;
  /** "stream": one bidirectional stream. "browser": a push stream plus unary calls (no pings: the server sends heartbeats). */
  readonly mode?: "stream" | "browser";
  /** Ping after this long without writing anything; 0: no application pings (the transport's HTTP/2 PING keeps the link alive). */
  readonly heartbeatIntervalMs?: number;
  /** Abandon a link silent for this long; 0: never. Default 45 s with pings or in browser mode, 0 without pings. */
  readonly heartbeatTimeoutMs?: number;
  readonly backoff?: BackoffOptions;
  /** A live, idle client syncs this often (a push lost at the tail of a conversation shows no gap otherwise); 0: never. */
  readonly resyncIntervalMs?: number;
  /** Most sends waiting for acknowledgement. */
  readonly outboxMax?: number;
  /** Most requests in flight on one link (the server disconnects above its own bound, 64 by default). */
  readonly requestsInFlightMax?: number;
  /** SyncEngineOptions.pendingMax. */
  readonly pendingMax?: number;
  /** SyncEngineOptions.reorderWindowMs. */
  readonly reorderWindowMs?: number;
  /** Builds the sync engine (default: SyncEngine); the simulator wraps it to break it on purpose. */
  readonly createEngine?: (options: SyncEngineOptions) => SyncLogic<M>;
}

/** The defaults of ClientCoreOptions, shared with the simulator so the two cannot drift. */
export const CLIENT_DEFAULTS = {
  heartbeatIntervalMs: 15_000,
  heartbeatTimeoutMs: 45_000,
  backoffBaseMs: 250,
  backoffMaxMs: 30_000,
  resyncIntervalMs: 60_000,
  outboxMax: 1000,
  requestsInFlightMax: 32,
  pendingMax: 1024,
  reorderWindowMs: REORDER_WINDOW_MS_DEFAULT,
} as const;

/** Options with the defaults applied; build once and share between many cores. */
export interface ClientSettings<M extends ChainMessage> {
  readonly clock: Clock;
  readonly random: () => number;
  readonly ownMessage: (ack: SendAck, send: PendingSend) => M;
  readonly pings: boolean;
  readonly heartbeatIntervalMs: number;
  readonly heartbeatTimeoutMs: number;
  readonly backoff: BackoffOptions;
  readonly resyncIntervalMs: number;
  readonly outboxMax: number;
  readonly requestsInFlightMax: number;
  readonly pendingMax: number;
  readonly reorderWindowMs: number;
  readonly createEngine: (options: SyncEngineOptions) => SyncLogic<M>;
}

/** Applies the defaults. */
export function clientSettings<M extends ChainMessage>(options: ClientCoreOptions<M>): ClientSettings<M> {
  const browser = options.mode === "browser";
  const heartbeatIntervalMs = options.heartbeatIntervalMs ?? CLIENT_DEFAULTS.heartbeatIntervalMs;
  const pings = !browser && heartbeatIntervalMs > 0;
  return {
    clock: options.clock,
    random: options.random,
    ownMessage: options.ownMessage,
    pings,
    heartbeatIntervalMs: pings ? heartbeatIntervalMs : 0,
    heartbeatTimeoutMs: options.heartbeatTimeoutMs ?? (pings || browser ? CLIENT_DEFAULTS.heartbeatTimeoutMs : 0),
    backoff: options.backoff ?? { baseMs: CLIENT_DEFAULTS.backoffBaseMs, maxMs: CLIENT_DEFAULTS.backoffMaxMs },
    resyncIntervalMs: options.resyncIntervalMs ?? CLIENT_DEFAULTS.resyncIntervalMs,
    outboxMax: options.outboxMax ?? CLIENT_DEFAULTS.outboxMax,
    requestsInFlightMax: Math.max(1, options.requestsInFlightMax ?? CLIENT_DEFAULTS.requestsInFlightMax),
    pendingMax: options.pendingMax ?? CLIENT_DEFAULTS.pendingMax,
    reorderWindowMs: options.reorderWindowMs ?? CLIENT_DEFAULTS.reorderWindowMs,
    createEngine: options.createEngine ?? ((o) => new SyncEngine<M>(o)),
  };
}
