import { CallState } from "../../gen/im/v1/call_pb.js";
import { CALL_MESSAGE_CONTENT_TYPE, DEFAULT_CALL_TIMEOUTS, type CallRecord, type CallTimeouts } from "../../server/core/call-model.js";
import { createSeededRandom, type Clock } from "../../server/core/clock.js";
import { MemoryMessageStore } from "../../server/store/memory-message-store.js";
import { Rng } from "../fault-plan.js";
import { Scheduler, type RunEnd } from "../scheduler.js";
import { checkCalls, traceCall, viewOfWireCall, type Answer, type CallsRunRecord, type CallsVerdict, type DeviceEvent, type DeviceView, type GlareStart, type StoredCallMessage } from "./call-checkers.js";
import { CallDevice } from "./call-device.js";
import type { CallNetContext } from "./call-link.js";
import { CallWorker, SimBroker } from "./call-worker.js";
import type { CallsConfig, CallsSize } from "./calls-config.js";
import { CallsStats } from "./calls-stats.js";
import { ObservedCallStore, type StoreClientContext } from "./sim-call-store.js";

/** What to run. */
export interface CallsRun {
  readonly size: CallsSize;
  readonly seed: number;
  readonly config: CallsConfig;
}

/** The outcome of a run: a function of the seed and the config only. */
export interface CallsResult {
  readonly scenario: "calls";
  readonly size: CallsSize;
  readonly seed: number;
  readonly events: number;
  readonly virtualMs: number;
  readonly healAtMs: number;
  readonly end: RunEnd;
  readonly calls: number;
  readonly stats: CallsStats;
  readonly verdict: CallsVerdict;
  /** What happened to the call of the first violation (empty when none). */
  readonly trace: string[];
  readonly ok: boolean;
}

/** The run's record as well, for tests that mutate it and check again. */
export interface CallsOutcome {
  readonly result: CallsResult;
  readonly record: CallsRunRecord;
  /** The devices at the end (for tests and debugging). */
  readonly devices: readonly CallDevice[];
}

const EPOCH_MS = 1_767_225_600_000;

/**
 * One calls run: `workers` worker processes, each with the production Calls core and
 * CallOperations edge, a Hub and the ChannelCallEventPublisher, over one shared memory
 * CallStore (and message store, for the two stored messages of each call); devices (two per
 * user) run the SDK's CallEngine over long connections with latency, lost, duplicated and
 * reordered pushes, drops and reconnects; workers are killed at random and right after a
 * StartCall reached them (mid-ring), and another worker's tick fires their deadlines. All on
 * virtual time from one seed.
 *
 * Phases: traffic and faults until healAtMs; then the heal (workers back, apps open, faults
 * off) and the liveness phase, which ends once every call has ended with its messages written
 * and every device agrees with the store, or at healAtMs + livenessBoundMs. The checkers
 * (call-checkers.ts) then judge the whole run.
 */
export async function runCallsSimulation(run: CallsRun): Promise<CallsOutcome> {
  const { config, seed } = run;
  const rng = new Rng(createSeededRandom(seed));
  const sched = new Scheduler();
  const stats = new CallsStats();
  const clock: Clock = { nowMs: () => EPOCH_MS + sched.nowMs };
  const timeouts: CallTimeouts = {
    ...DEFAULT_CALL_TIMEOUTS,
    ringTimeoutMs: config.ringTimeoutMs,
    connectTimeoutMs: config.connectTimeoutMs,
    keepaliveTimeoutMs: config.keepaliveTimeoutMs,
    keepaliveIntervalMs: config.keepaliveIntervalMs,
    messageRetryMs: config.messageRetryMs,
    // Kept past the run, so the final state of every call is there to compare.
    retentionMs: 24 * 3600_000,
  };
  const faults = { active: true, latencyMs: config.storeLatencyMs, jitterMs: config.storeJitterMs, failBeforeWrite: config.storeFailBeforeWrite, timeoutAfterWrite: config.storeTimeoutAfterWrite };
  const errors: { atMs: number; detail: string }[] = [];
  const unexpected = (detail: string): void => void errors.push({ atMs: sched.nowMs, detail });
  const shared = new ObservedCallStore(sched);
  const messages = new MemoryMessageStore();
  const lives = new Map<string, { readonly alive: boolean }>();
  /** Calls counted in claimsOfDeadCreators. */
  const creators = new Set<string>();
  const lastClaim = new Map<string, { claimer: string; version: number }>();
  const storeCtx: StoreClientContext = {
    sched, rng, shared, faults,
    claimed: (claimer, calls) => {
      if (calls.length > 0 && faults.active && rng.chance(config.killOnClaim)) {
        // Dies while it works on its claims: they stay claimed until the lease runs out.
        const worker = workers.find((w) => w.life?.id === claimer);
        if (worker !== undefined) {
          stats.killsOnClaim++;
          worker.kill();
          restartLater(worker);
        }
      }
      for (const call of calls) {
        stats.claims++;
        const creator = shared.creators.get(call.callId);
        if (creator !== undefined && creator !== claimer && lives.get(creator)?.alive === false && !creators.has(call.callId)) {
          stats.claimsOfDeadCreators++;
          creators.add(call.callId);
        }
        const before = lastClaim.get(call.callId);
        if (before !== undefined && before.version === call.version && before.claimer !== claimer && lives.get(before.claimer)?.alive === false) stats.claimsTakenOver++;
        lastClaim.set(call.callId, { claimer, version: call.version });
      }
    },
  };
  const broker = new SimBroker(sched, () => 1 + Math.floor(config.brokerLatencyMs + rng.exponential(config.jitterMs / 2)));
  const workers: CallWorker[] = [];
  const workerCtx = { sched, rng, stats, store: storeCtx, messages, broker, clock, timeouts, claimLeaseMs: config.claimLeaseMs, tickMs: config.workerTickMs, unexpected };
  for (let i = 0; i < config.workers; i++) workers.push(new CallWorker(i, workerCtx));
  const trackLives = (): void => {
    for (const w of workers) if (w.life !== undefined) lives.set(w.life.id, w.life);
  };
  trackLives();

  let linkIds = 0;
  const restartLater = (worker: CallWorker): void => {
    const back = Math.min(config.healAtMs, sched.nowMs + rng.between(config.downMinMs, config.downMaxMs));
    sched.at(back, () => {
      worker.start();
      trackLives();
    }, undefined);
  };
  const net: CallNetContext = {
    sched, rng, config, stats, faults,
    startArrived: (worker) => {
      if (!faults.active || !rng.chance(config.killOnStart)) return;
      sched.schedule(rng.between(0, config.killOnStartMaxMs), () => {
        if (!faults.active || !worker.up) return;
        stats.killsOnStart++;
        worker.kill();
        restartLater(worker);
      }, undefined);
    },
    nextLinkId: () => `l${++linkIds}`,
  };
  const answers: Answer[] = [];
  const events: DeviceEvent[] = [];
  const glare: GlareStart[] = [];
  const deviceCtx = { sched, rng, clock, config, stats, net, workers, answers, events, glare };
  const users: string[] = [];
  const devices: CallDevice[] = [];
  const byUser = new Map<string, CallDevice[]>();
  for (let u = 0; u < config.users; u++) {
    const userId = `u${u}`;
    users.push(userId);
    const mine: CallDevice[] = [];
    for (let d = 0; d < config.devicesPerUser; d++) {
      const device = new CallDevice(deviceCtx, userId, d);
      mine.push(device);
      devices.push(device);
      sched.at(rng.between(0, config.rampMs), () => device.openApp(), undefined);
    }
    byUser.set(userId, mine);
  }

  const pickDevice = (userId: string): CallDevice => {
    const mine = byUser.get(userId)!;
    return mine[rng.int(mine.length)]!;
  };
  const otherUser = (userId: string): string => {
    const i = users.indexOf(userId);
    return users[(i + 1 + rng.int(users.length - 1)) % users.length]!;
  };
  for (let i = 0; i < config.calls; i++) {
    sched.at(rng.between(config.rampMs, config.trafficEndMs), () => {
      const from = users[rng.int(users.length)]!;
      pickDevice(from).startCall(otherUser(from));
    }, undefined);
  }
  for (let pair = 0; pair < config.glarePairs; pair++) {
    const at = rng.between(config.rampMs, config.trafficEndMs);
    const a = users[rng.int(users.length)]!;
    const b = otherUser(a);
    sched.at(at, () => pickDevice(a).startCall(b, { pair }), undefined);
    sched.at(at + rng.between(0, config.glareSpreadMs), () => pickDevice(b).startCall(a, { pair }), undefined);
  }
  for (const device of devices) {
    if (!rng.chance(config.churnShare)) continue;
    const at = rng.between(config.rampMs, config.trafficEndMs);
    sched.at(at, () => {
      if (!faults.active) return;
      device.closeApp();
      sched.schedule(rng.between(config.offlineMinMs, config.offlineMaxMs), () => device.openApp(), undefined);
    }, undefined);
  }
  for (let k = 0; k < config.kills; k++) {
    const worker = workers[rng.int(workers.length)]!;
    sched.at(rng.between(config.rampMs, config.healAtMs), () => {
      if (!faults.active || !worker.up) return;
      worker.kill();
      restartLater(worker);
    }, undefined);
  }
  sched.at(config.healAtMs, () => {
    faults.active = false;
    for (const w of workers) w.start();
    trackLives();
    for (const d of devices) d.openApp();
  }, undefined);

  let done = false;
  const deadline = config.healAtMs + config.livenessBoundMs;
  const converged = async (): Promise<boolean> => {
    const latest = new Map<string, CallRecord>();
    for (const w of shared.history) latest.set(w.call.callId, w.call);
    for (const call of latest.values()) if (call.state !== "ended" || call.messagesPending.length > 0) return false;
    for (const d of devices) {
      if (!d.live || d.engine.liveCalls().length > 0) return false;
      for (const id of d.known) {
        const mine = d.engine.call(id);
        const truth = latest.get(id);
        if (mine === undefined || truth === undefined) continue;
        if (mine.state !== CallState.ENDED) return false;
      }
    }
    return true;
  };
  const check = (): void => {
    if (done) return;
    sched.touch();
    void converged().then((ok) => {
      if (ok) {
        stats.convergedAfterMs = sched.nowMs - config.healAtMs;
        done = true;
      }
    });
    if (sched.nowMs < deadline) sched.schedule(config.checkEveryMs, check, undefined);
  };
  sched.at(config.healAtMs + config.checkEveryMs, check, undefined);

  const end = await sched.run({ untilMs: deadline, maxEvents: config.maxEvents, stop: () => done });
  if (end === "max-events") unexpected(`event budget of ${config.maxEvents} exhausted`);

  const record: CallsRunRecord = {
    timeouts,
    history: shared.history,
    answers,
    deviceEvents: events,
    glare,
    views: devices.map((d): DeviceView => ({
      device: d.lifeName,
      calls: [...d.known].flatMap((id) => {
        const call = d.engine.call(id);
        return call === undefined ? [] : [viewOfWireCall(call)];
      }),
    })),
    messages: await storedCallMessages(messages, shared.history.map((w) => w.call.conversationId)),
    errors,
  };
  const verdict = checkCalls(record);
  const calls = new Set(shared.history.map((w) => w.call.callId)).size;
  return {
    devices,
    result: { scenario: "calls", size: run.size, seed, events: sched.events, virtualMs: sched.nowMs, healAtMs: config.healAtMs, end, calls, stats, verdict, trace: verdict.first === undefined || verdict.first.callId === "" ? [] : traceCall(record, verdict.first.callId), ok: verdict.total === 0 },
    record,
  };
}

/** The call messages of the conversations named, in log order. */
async function storedCallMessages(store: MemoryMessageStore, conversationIds: readonly string[]): Promise<StoredCallMessage[]> {
  const out: StoredCallMessage[] = [];
  for (const conversationId of [...new Set(conversationIds)].sort()) {
    for (let after = 0; ; ) {
      const page = await store.readRange(conversationId, after, undefined, 500);
      for (const m of page) {
        if (m.contentType !== CALL_MESSAGE_CONTENT_TYPE) continue;
        const body = JSON.parse(new TextDecoder().decode(m.data)) as { call_id: string; event: string; reason?: string };
        out.push({ conversationId, callId: body.call_id, event: body.event, ...(body.reason === undefined ? {} : { reason: body.reason }) });
      }
      if (page.length < 500) break;
      after = page[page.length - 1]!.seq;
    }
  }
  return out;
}
