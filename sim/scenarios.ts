import { NO_FAULTS, type FaultConfig } from "./fault-plan.js";
import { CLIENT_DEFAULTS } from "../client/client-settings.js";
import type { ClientConfig } from "./device.js";

/** The scenarios of `npm run sim -- <scenario>`. */
export const SCENARIOS = ["million", "group-fanout", "offline-sync", "chaos"] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

/** `full`: the sizes of the issue; `small`: the sizes of `npm test` and of sweeps. */
export type Size = "full" | "small";

/**
 * Everything that defines a run besides its seed. Flat and numeric (flags 0/1) so that every
 * field can be overridden from the command line (`--pushLoss 0.1` or `--push-loss 0.1`).
 * Times are virtual milliseconds from the start of the run.
 */
export interface SimConfig extends FaultConfig, ClientConfig {
  /** Users `u0`..`u<users-1>`, each with 1..devicesPerUserMax devices (uniform). */
  users: number;
  devicesPerUserMax: number;
  /** Gateway nodes; each connection attempt picks one uniformly. */
  nodes: number;
  /** Groups: group 0 has groupSizeMax members, the others a log-uniform size in [groupSizeMin, groupSizeMax]. */
  groups: number;
  groupSizeMin: number;
  groupSizeMax: number;
  /** Users per group that send (its concurrent senders) and messages per burst (one per sender, same instant). */
  groupSenders: number;
  groupBurst: number;
  /** Messages over the traffic window [rampMs, trafficEndMs): direct (random pairs) and to groups (bursts). */
  directMessages: number;
  groupMessages: number;
  /** Devices that are online from the start connect uniformly over [0, rampMs). */
  rampMs: number;
  trafficEndMs: number;
  /** Faults stop here; the liveness phase starts. */
  healAtMs: number;
  /** After the heal every device must match the server (cursors, read positions, no gap, no pending send) within this bound. */
  livenessBoundMs: number;
  /** How often the liveness phase checks for convergence. */
  checkEveryMs: number;
  /** Share of users offline from the start; they come back at trafficEndMs, spread over offlineReturnSpreadMs (the reconnect storm). */
  offlineShare: number;
  offlineReturnSpreadMs: number;
  /** Presence churn: share of online devices that close once during traffic and reopen after uniform [churnMinMs, churnMaxMs]. */
  churnShare: number;
  churnMinMs: number;
  churnMaxMs: number;
  /** Server settings (server/config.ts defaults) and core limits. */
  serverHeartbeatTimeoutMs: number;
  tickMs: number;
  pushQueueMax: number;
  pushQueueBytesMax: number;
  inFlightMax: number;
  connectionsPerUserMax: number;
  drainTimeoutMs: number;
  reconnectSpreadMs: number;
  /** Routing: the owner-call timer, how long a call waits for its owner, how long a silent process stays in the owner directory. */
  routingTickMs: number;
  ownerCallTimeoutMs: number;
  presenceTtlMs: number;
  /** Bearer tokens minted while faults are on expire after this (0: never); the server ends a connection whose token expired. */
  tokenTtlMs: number;
  /** Adversarial clients, each probing a conversation it is not a member of every adversaryEveryMs during the traffic window. */
  adversaries: number;
  adversaryEveryMs: number;
  syncMessagesDefault: number;
  syncSessionsDefault: number;
  fetchDefault: number;
  /** Deliberate bugs (test-only switches), to show the checkers bite. 0 = off. */
  bugSkipGapRepair: number;
  bugRedeliverSeen: number;
  /** Probability per append. */
  bugLoseAckedWrite: number;
  bugFreshIdOnRetry: number;
  /** The client's transport asks every range fetch for one message (limit 1). */
  bugFetchOneAtATime: number;
  /** The client's transport hands its core every fetch answer empty. */
  bugDropFetchAnswers: number;
  /** The client's reorder buffer, once full, forgets the pushes that do not fit and fetches nothing for them. */
  bugOverflowForgets: number;
  /** The client fetches the rest of a range a fetch answered has_more for one reorder window late. */
  bugDelayPagedRest: number;
  /** The store says everyone is a member of every conversation. */
  bugEveryoneIsMember: number;
  /** The store's readRange starts at afterSeq instead of after it. */
  bugReadFromCursor: number;
  /** The gateways run without conversation owners: every send runs where it arrives. */
  bugNoOwners: number;
  /** The gateways never push a message to its sender's connections. */
  bugNoPushToSender: number;
  /** Event budget of the run. */
  maxEvents: number;
}

/** The production client's defaults (one source: the simulator cannot drift from the SDK). */
const CLIENT_SETTINGS: ClientConfig = {
  heartbeatIntervalMs: CLIENT_DEFAULTS.heartbeatIntervalMs,
  heartbeatTimeoutMs: CLIENT_DEFAULTS.heartbeatTimeoutMs,
  backoffBaseMs: CLIENT_DEFAULTS.backoffBaseMs,
  backoffMaxMs: CLIENT_DEFAULTS.backoffMaxMs,
  resyncIntervalMs: CLIENT_DEFAULTS.resyncIntervalMs,
  outboxMax: CLIENT_DEFAULTS.outboxMax,
  requestsInFlightMax: CLIENT_DEFAULTS.requestsInFlightMax,
  pendingMax: CLIENT_DEFAULTS.pendingMax,
  reorderWindowMs: CLIENT_DEFAULTS.reorderWindowMs,
  markReadProbability: 0.1,
};

const BASE: SimConfig = {
  ...NO_FAULTS,
  ...CLIENT_SETTINGS,
  users: 1000,
  devicesPerUserMax: 1,
  nodes: 3,
  groups: 0,
  groupSizeMin: 3,
  groupSizeMax: 100,
  groupSenders: 3,
  groupBurst: 3,
  directMessages: 0,
  groupMessages: 0,
  rampMs: 5_000,
  trafficEndMs: 30_000,
  healAtMs: 30_000,
  // Detecting a half-open connection (45 s heartbeat timeout), the longest reconnect backoff
  // (30 s), one idle resync period (60 s, the client's), sync and repair round trips.
  livenessBoundMs: 180_000,
  checkEveryMs: 2_000,
  offlineShare: 0,
  offlineReturnSpreadMs: 1_000,
  churnShare: 0,
  churnMinMs: 1_000,
  churnMaxMs: 10_000,
  serverHeartbeatTimeoutMs: 90_000,
  tickMs: 1_000,
  pushQueueMax: 1024,
  pushQueueBytesMax: 8 * 1024 * 1024,
  inFlightMax: 64,
  connectionsPerUserMax: 16,
  drainTimeoutMs: 10_000,
  reconnectSpreadMs: 5_000,
  routingTickMs: 100,
  ownerCallTimeoutMs: 5_000,
  presenceTtlMs: 30_000,
  tokenTtlMs: 0,
  adversaries: 2,
  adversaryEveryMs: 1_000,
  syncMessagesDefault: 100,
  syncSessionsDefault: 200,
  fetchDefault: 200,
  bugSkipGapRepair: 0,
  bugRedeliverSeen: 0,
  bugLoseAckedWrite: 0,
  bugFreshIdOnRetry: 0,
  bugFetchOneAtATime: 0,
  bugDropFetchAnswers: 0,
  bugOverflowForgets: 0,
  bugDelayPagedRest: 0,
  bugEveryoneIsMember: 0,
  bugReadFromCursor: 0,
  bugNoOwners: 0,
  bugNoPushToSender: 0,
  maxEvents: 500_000_000,
};

/** Every fault on (chaos); sizes come from the scenario. */
const ALL_FAULTS: Partial<SimConfig> = {
  latencyMs: 5,
  jitterMs: 10,
  interNodeLatencyMs: 2,
  pushLoss: 0.02,
  pushDuplicate: 0.02,
  pushReorder: 0.05,
  reorderDelayMs: 300,
  dropsPerMinute: 1,
  resetProbability: 0.5,
  storms: 2,
  partitions: 3,
  partitionMinMs: 3_000,
  partitionMaxMs: 15_000,
  partitionStore: 1,
  crashes: 2,
  drains: 1,
  downMinMs: 2_000,
  downMaxMs: 10_000,
  storeTimeoutAfterWrite: 0.01,
  storeFailBeforeWrite: 0.01,
  storeReadFail: 0.005,
  storeSeqSkip: 0.02,
  storeLatencyMs: 2,
  storeJitterMs: 3,
  storeTimeoutMs: 1_000,
  slowShare: 0.05,
  slowPushMs: 1_000,
  pushQueueMax: 8,
  clockSkewMs: 5_000,
  tokenTtlMs: 15_000,
  presenceTtlMs: 5_000,
};

const PRESETS: Record<ScenarioName, Record<Size, Partial<SimConfig>>> = {
  million: {
    full: { users: 1_000_000, nodes: 4, directMessages: 100_000, rampMs: 10_000, trafficEndMs: 30_000, healAtMs: 30_000, churnShare: 0.1, tickMs: 5_000, checkEveryMs: 5_000 },
    small: { users: 20_000, nodes: 4, directMessages: 2_000, rampMs: 2_000, trafficEndMs: 10_000, healAtMs: 10_000, churnShare: 0.1, churnMaxMs: 5_000 },
  },
  "group-fanout": {
    full: { users: 100_000, devicesPerUserMax: 2, nodes: 4, groups: 40, groupSizeMax: 100_000, groupSenders: 4, groupBurst: 4, groupMessages: 400, rampMs: 10_000, trafficEndMs: 40_000, healAtMs: 40_000, storeLatencyMs: 1, storeJitterMs: 1, slowShare: 0.01, slowPushMs: 20, tickMs: 5_000, checkEveryMs: 5_000 },
    small: { users: 3_000, devicesPerUserMax: 2, nodes: 3, groups: 10, groupSizeMax: 2_000, groupSenders: 4, groupBurst: 4, groupMessages: 80, rampMs: 2_000, trafficEndMs: 12_000, healAtMs: 12_000, storeLatencyMs: 1, storeJitterMs: 1, slowShare: 0.02, slowPushMs: 20 },
  },
  "offline-sync": {
    full: { users: 20_000, devicesPerUserMax: 2, nodes: 3, groups: 100, groupSizeMax: 2_000, groupMessages: 20_000, directMessages: 20_000, offlineShare: 0.6, offlineReturnSpreadMs: 2_000, rampMs: 5_000, trafficEndMs: 60_000, healAtMs: 70_000, dropsPerMinute: 0.2, resetProbability: 0.5, storeTimeoutAfterWrite: 0.001, storeFailBeforeWrite: 0.001, pushLoss: 0.001, storeLatencyMs: 1, storeJitterMs: 1 },
    small: { users: 400, devicesPerUserMax: 2, nodes: 3, groups: 10, groupSizeMax: 100, groupMessages: 600, directMessages: 400, offlineShare: 0.6, offlineReturnSpreadMs: 1_000, rampMs: 2_000, trafficEndMs: 20_000, healAtMs: 25_000, dropsPerMinute: 0.5, resetProbability: 0.5, storeTimeoutAfterWrite: 0.005, storeFailBeforeWrite: 0.005, pushLoss: 0.005, storeLatencyMs: 1, storeJitterMs: 1, syncMessagesDefault: 20, syncSessionsDefault: 5, fetchDefault: 15 },
  },
  chaos: {
    full: { ...ALL_FAULTS, users: 2_000, devicesPerUserMax: 3, nodes: 3, groups: 30, groupSizeMax: 500, groupMessages: 3_000, directMessages: 5_000, offlineShare: 0.2, churnShare: 0.3, rampMs: 5_000, trafficEndMs: 60_000, healAtMs: 60_000, syncMessagesDefault: 20, syncSessionsDefault: 10, fetchDefault: 15 },
    small: { ...ALL_FAULTS, users: 150, devicesPerUserMax: 3, nodes: 3, groups: 6, groupSizeMax: 60, groupMessages: 300, directMessages: 300, offlineShare: 0.2, churnShare: 0.3, rampMs: 2_000, trafficEndMs: 30_000, healAtMs: 30_000, syncMessagesDefault: 5, syncSessionsDefault: 3, fetchDefault: 4 },
  },
};

/** The configuration of a scenario at a size, with overrides applied. */
export function scenarioConfig(scenario: ScenarioName, size: Size, overrides: Partial<SimConfig> = {}): SimConfig {
  const config: SimConfig = { ...BASE, ...PRESETS[scenario][size], ...overrides };
  if (config.healAtMs < config.trafficEndMs) throw new Error("healAtMs must not be before trafficEndMs");
  if (config.users < 2) throw new Error("users must be at least 2");
  if (config.nodes < 1) throw new Error("nodes must be at least 1");
  return config;
}

/** Whether `key` names a SimConfig field. */
export function isConfigKey(key: string): key is keyof SimConfig {
  return Object.hasOwn(BASE, key);
}

/** The config fields whose values differ from the scenario's defaults at that size (for the report). */
export function configOverrides(scenario: ScenarioName, size: Size, config: SimConfig): Partial<SimConfig> {
  const defaults = scenarioConfig(scenario, size);
  const out: Partial<Record<keyof SimConfig, number>> = {};
  for (const key of Object.keys(BASE) as (keyof SimConfig)[]) if (config[key] !== defaults[key]) out[key] = config[key];
  return out as Partial<SimConfig>;
}
