import { CLIENT_DEFAULTS } from "../../client/client-settings.js";
import { DEFAULT_CALL_TIMEOUTS } from "../../server/core/call-model.js";

/** `full`: the scenario's size; `small`: the size of `npm test`. */
export type CallsSize = "full" | "small";

/**
 * Everything that defines a calls run besides its seed. Flat and numeric so that every field
 * is a flag (`--push-loss 0.1`). Times are virtual milliseconds from the start of the run.
 */
export interface CallsConfig {
  /** Users `u0`..; each has `devicesPerUser` devices (`u3/d1`). */
  users: number;
  devicesPerUser: number;
  /** Worker processes sharing one CallStore (and one message store). */
  workers: number;
  /** Calls started over [rampMs, trafficEndMs), each from a random user to another. */
  calls: number;
  /** Glare pairs: two users calling each other, the second start within glareSpreadMs of the first. */
  glarePairs: number;
  glareSpreadMs: number;
  rampMs: number;
  trafficEndMs: number;
  /** Faults stop here; the liveness phase starts. */
  healAtMs: number;
  /** After the heal every call must have ended and every device must agree with the store within this bound. */
  livenessBoundMs: number;
  checkEveryMs: number;
  /** Callee app: per ringing device, the probability it answers / declines (otherwise it lets it ring). */
  answerProbability: number;
  declineProbability: number;
  /** Answer (or decline) after uniform [answerMinMs, answerMaxMs]; the user's devices decide independently, so they race. */
  answerMinMs: number;
  answerMaxMs: number;
  /** Per answering device: probability it answers within 20 ms of answerMinMs, so that two devices of a user race. */
  quickAnswerProbability: number;
  /** Caller app: probability it cancels while ringing, after uniform [answerMinMs, cancelMaxMs]. */
  cancelProbability: number;
  cancelMaxMs: number;
  /** Answered calls last uniform [talkMinMs, talkMaxMs], then a holding device hangs up. */
  talkMinMs: number;
  talkMaxMs: number;
  /** Per answering device: probability its media never connects (the call ends ICE_FAILED). */
  mediaFailProbability: number;
  /** Per answering device: probability its app vanishes mid-call without hanging up (CONNECTION_LOST). */
  vanishProbability: number;
  /** Attempts of a StartCall whose answer never came (the same client_call_id each time). */
  startAttemptsMax: number;
  /** One-way device-worker latency: latencyMs + exponential jitter of mean jitterMs (capped at 10x). */
  latencyMs: number;
  jitterMs: number;
  /** Worker-worker (broker) one-way latency, same jitter. */
  brokerLatencyMs: number;
  /** Store round trip: storeLatencyMs + exponential jitter of mean storeJitterMs. */
  storeLatencyMs: number;
  storeJitterMs: number;
  /** Per push to a device: lost, duplicated, or held back uniform [0, reorderDelayMs]. */
  pushLoss: number;
  pushDuplicate: number;
  pushReorder: number;
  reorderDelayMs: number;
  /** Per call-store write: fails before it is applied / is applied and then reported as failed (StoreUnavailableError). */
  storeFailBeforeWrite: number;
  storeTimeoutAfterWrite: number;
  /** Connection drops per connection per virtual minute (Poisson); the device notices at once with resetProbability, else after uniform [0, dropNoticeMaxMs]. */
  dropsPerMinute: number;
  resetProbability: number;
  dropNoticeMaxMs: number;
  /** Devices that close their app once during traffic, for uniform [offlineMinMs, offlineMaxMs]. */
  churnShare: number;
  offlineMinMs: number;
  offlineMaxMs: number;
  /** Worker kills at uniform times of the safety phase; a killed worker restarts after uniform [downMinMs, downMaxMs]. */
  kills: number;
  /** Per StartCall a worker receives: probability the worker is killed uniform [0, killOnStartMaxMs] later (mid-ring). */
  killOnStart: number;
  killOnStartMaxMs: number;
  /** Per deadline claim a worker gets: probability the worker dies before it fires it (another takes it after the claim lease). */
  killOnClaim: number;
  downMinMs: number;
  downMaxMs: number;
  /** Server call settings (server/config.ts defaults, DEFAULT_CALL_TIMEOUTS). */
  ringTimeoutMs: number;
  connectTimeoutMs: number;
  keepaliveTimeoutMs: number;
  keepaliveIntervalMs: number;
  messageRetryMs: number;
  claimLeaseMs: number;
  /** The workers' deadline tick (calls-runtime.ts) and the devices' engine tick (CallClient). */
  workerTickMs: number;
  deviceTickMs: number;
  /** The engine's check of a live call not heard of (CallEngine's staleCheckMs; its default). */
  staleCheckMs: number;
  /** Deliberate app bug (1: on), to show the checkers bite: hang up without telling the engine (CallEngine.leave). */
  bugHangupWithoutLeave: number;
  /** The SDK's reconnect backoff. */
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Event budget of the run. */
  maxEvents: number;
}

const BASE: CallsConfig = {
  users: 20,
  devicesPerUser: 2,
  workers: 3,
  calls: 100,
  glarePairs: 20,
  glareSpreadMs: 20,
  rampMs: 2_000,
  trafficEndMs: 90_000,
  healAtMs: 100_000,
  // The longest chain after the heal: a ring timeout (45 s), a claim lease of a killed worker
  // (10 s), the connecting deadline (30 s) or a keepalive timeout (30 s), message retries.
  livenessBoundMs: 180_000,
  checkEveryMs: 2_000,
  answerProbability: 0.5,
  declineProbability: 0.1,
  answerMinMs: 300,
  answerMaxMs: 8_000,
  quickAnswerProbability: 0.5,
  cancelProbability: 0.1,
  cancelMaxMs: 20_000,
  talkMinMs: 1_000,
  talkMaxMs: 20_000,
  mediaFailProbability: 0.05,
  vanishProbability: 0.05,
  startAttemptsMax: 3,
  latencyMs: 5,
  jitterMs: 10,
  brokerLatencyMs: 1,
  storeLatencyMs: 1,
  storeJitterMs: 2,
  pushLoss: 0.05,
  pushDuplicate: 0.02,
  pushReorder: 0.05,
  reorderDelayMs: 300,
  storeFailBeforeWrite: 0.005,
  storeTimeoutAfterWrite: 0.005,
  dropsPerMinute: 1,
  resetProbability: 0.5,
  dropNoticeMaxMs: 15_000,
  churnShare: 0.2,
  offlineMinMs: 1_000,
  offlineMaxMs: 20_000,
  kills: 3,
  killOnStart: 0.03,
  killOnStartMaxMs: 40,
  killOnClaim: 0.25,
  downMinMs: 2_000,
  downMaxMs: 15_000,
  ringTimeoutMs: DEFAULT_CALL_TIMEOUTS.ringTimeoutMs,
  connectTimeoutMs: DEFAULT_CALL_TIMEOUTS.connectTimeoutMs,
  keepaliveTimeoutMs: DEFAULT_CALL_TIMEOUTS.keepaliveTimeoutMs,
  keepaliveIntervalMs: DEFAULT_CALL_TIMEOUTS.keepaliveIntervalMs,
  messageRetryMs: DEFAULT_CALL_TIMEOUTS.messageRetryMs,
  claimLeaseMs: 10_000,
  workerTickMs: 250,
  deviceTickMs: 500,
  staleCheckMs: 15_000,
  bugHangupWithoutLeave: 0,
  backoffBaseMs: CLIENT_DEFAULTS.backoffBaseMs,
  backoffMaxMs: CLIENT_DEFAULTS.backoffMaxMs,
  maxEvents: 50_000_000,
};

const PRESETS: Record<CallsSize, Partial<CallsConfig>> = {
  full: { users: 40, calls: 600, glarePairs: 60, workers: 4, trafficEndMs: 240_000, healAtMs: 250_000, kills: 8 },
  small: {},
};

/** The configuration at a size, with overrides applied. */
export function callsConfig(size: CallsSize, overrides: Partial<CallsConfig> = {}): CallsConfig {
  const config: CallsConfig = { ...BASE, ...PRESETS[size], ...overrides };
  if (config.users < 2) throw new Error("users must be at least 2");
  if (config.workers < 1) throw new Error("workers must be at least 1");
  if (config.devicesPerUser < 1) throw new Error("devicesPerUser must be at least 1");
  if (config.healAtMs < config.trafficEndMs) throw new Error("healAtMs must not be before trafficEndMs");
  return config;
}

/** Whether `key` names a CallsConfig field. */
export function isCallsConfigKey(key: string): key is keyof CallsConfig {
  return Object.hasOwn(BASE, key);
}

/** The fields whose values differ from the size's defaults (for the reproduce line). */
export function callsOverrides(size: CallsSize, config: CallsConfig): Partial<CallsConfig> {
  const defaults = callsConfig(size);
  const out: Partial<Record<keyof CallsConfig, number>> = {};
  for (const key of Object.keys(BASE) as (keyof CallsConfig)[]) if (config[key] !== defaults[key]) out[key] = config[key];
  return out as Partial<CallsConfig>;
}
