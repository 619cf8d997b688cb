import type { Logger } from "pino";
import { createSeededRandom } from "../server/core/clock.js";
import { DEFAULT_LIMITS } from "../server/core/limits.js";
import { StoreUnavailableError } from "../server/core/result.js";
import { createRequestValidator } from "../server/gateway/request-validator.js";
import { Adversaries } from "./adversary.js";
import { BrokerBus } from "./broker-bus.js";
import { Checkers, type CheckerName, type CheckerReport, type Violation } from "./checkers.js";
import { ClientDriver } from "./client-driver.js";
import type { Device } from "./device.js";
import { Faults, planDiscreteFaults, Rng, type DiscreteFault } from "./fault-plan.js";
import { StoreBackend } from "./faulty-store.js";
import { GatewayNode, type NodeContext } from "./gateway-node.js";
import { Network } from "./network.js";
import type { ScenarioName, SimConfig, Size } from "./scenarios.js";
import { Scheduler, type RunEnd } from "./scheduler.js";
import { Stats } from "./stats.js";
import { Trace } from "./trace.js";
import { Workload } from "./workload.js";

/** What to run. */
export interface SimRun {
  readonly scenario: ScenarioName;
  readonly size: Size;
  readonly seed: number;
  readonly config: SimConfig;
  /** Trace this conversation (the replay after a violation). */
  readonly traceConversationId?: string;
  /** Stop after this many events (the replay stops where the violation was found). */
  readonly stopAtEvent?: number;
}

/** No fault of the run reorders or repeats a push, or moves a conversation's owner while it publishes. */
function pushesKeepOrder(c: SimConfig): boolean {
  return c.pushReorder === 0 && c.pushDuplicate === 0 && c.partitions === 0 && c.crashes === 0 && c.drains === 0;
}

/**
 * No fault of the run loses a push to a live connection: none on the hop between processes,
 * no partition, no process dying between an append and its publication, no append that is
 * stored and reported failed (its message is never published).
 */
function pushesArriveAll(c: SimConfig): boolean {
  return c.pushLoss === 0 && c.partitions === 0 && c.crashes === 0 && c.drains === 0 && c.storeTimeoutAfterWrite === 0 && pushesKeepOrder(c);
}

/**
 * The gateway's logger: a request that failed for any reason but a store outage is a broken
 * invariant (RequestLoop logs the cause of every INTERNAL answer); everything else is quiet.
 */
function reportingLogger(report: (text: string) => void): Logger {
  const failed = (obj: unknown, message?: string): void => {
    const err = (obj as { err?: unknown } | null)?.err;
    if (err instanceof StoreUnavailableError) return;
    const text = err instanceof Error ? (err.stack ?? err.message) : String(err);
    report(`${message ?? "gateway"}: ${text}`);
  };
  const quiet = (): void => {};
  const logger = { level: "warn", warn: failed, error: failed, fatal: failed, info: quiet, debug: quiet, trace: quiet, child: () => logger };
  return logger as unknown as Logger;
}

/** The outcome of a run: a function of the seed and the config only. */
export interface SimResult {
  readonly scenario: ScenarioName;
  readonly size: Size;
  readonly seed: number;
  readonly events: number;
  readonly virtualMs: number;
  readonly healAtMs: number;
  readonly end: RunEnd;
  readonly stats: Stats;
  readonly checkers: Record<CheckerName, CheckerReport>;
  readonly first: Violation | undefined;
  /** The trace of the traced conversation (empty unless one was named). */
  readonly trace: string[];
  readonly ok: boolean;
}

const EPOCH_MS = 1_767_225_600_000;

/**
 * One simulation run: the real Messaging core on every gateway node over one in-memory store,
 * the real SyncEngine on every device, the simulated network between them, and the fault plan,
 * all on virtual time from one seed.
 *
 * Phases: safety (traffic and faults until healAtMs; the order, duplicate and loss checkers run
 * on every append, ack and delivery), then liveness (faults off, everyone back online; every
 * checkEveryMs the run checks whether every device matches the server, and stops when it does;
 * at healAtMs + livenessBoundMs whatever does not match is a liveness violation).
 */
export async function runSimulation(run: SimRun): Promise<SimResult> {
  const { config, seed } = run;
  const random = createSeededRandom(seed);
  const rng = new Rng(random);
  const sched = new Scheduler();
  const faults = new Faults(config, rng);
  const stats = new Stats();
  const trace = new Trace(run.traceConversationId);
  let workload: Workload | undefined;
  let devices: readonly Device[] = [];
  const checkers = new Checkers(sched, {
    pushOrder: pushesKeepOrder(config),
    pushMissing: pushesArriveAll(config),
    fetchPage: config.fetchDefault,
    isMember: (userId, conversationId) => workload!.isMember(userId, conversationId),
    shown: config,
    sessionsOf: (device) => devices[device.index]!.core.cursors().length,
    requestsInFlightMax: config.requestsInFlightMax,
  });
  const backend = new StoreBackend(
    (message) => {
      stats.stored++;
      checkers.appended(message);
    },
    config.storeSeqSkip > 0 ? () => faults.active && rng.chance(config.storeSeqSkip) : undefined,
  );
  const network = new Network(sched, faults, stats);
  const bus = new BrokerBus(sched, faults, stats, { presenceTtlMs: config.presenceTtlMs });
  const limits = { ...DEFAULT_LIMITS, syncMessagesDefault: config.syncMessagesDefault, syncSessionsDefault: config.syncSessionsDefault, fetchDefault: config.fetchDefault };
  const nodeContext: NodeContext = {
    sched, network, bus, faults, stats, trace, checkers, backend, random,
    storeBugs: { loseAckedWrite: config.bugLoseAckedWrite, everyoneIsMember: config.bugEveryoneIsMember === 1, readFromCursor: config.bugReadFromCursor === 1 },
    bugs: { noOwners: config.bugNoOwners === 1, noPushToSender: config.bugNoPushToSender === 1 },
    validator: createRequestValidator(),
    logger: reportingLogger((text) => checkers.report("invariant", "", "", text)),
    config: {
      tickMs: config.tickMs,
      routingTickMs: config.routingTickMs,
      connection: {
        pushQueueMax: config.pushQueueMax,
        pushQueueBytesMax: config.pushQueueBytesMax,
        inFlightMax: config.inFlightMax,
        heartbeatTimeoutMs: config.serverHeartbeatTimeoutMs,
        heartbeatIntervalMs: 30_000,
      },
      connectionsPerUserMax: config.connectionsPerUserMax,
      ownerCallTimeoutMs: config.ownerCallTimeoutMs,
      drainTimeoutMs: config.drainTimeoutMs,
      reconnectSpreadMs: config.reconnectSpreadMs,
      limits,
      epochMs: EPOCH_MS,
    },
  };
  const nodes: GatewayNode[] = [];
  for (let i = 0; i < config.nodes; i++) nodes.push(new GatewayNode(i, nodeContext));
  const driver = new ClientDriver({
    sched, network, faults, stats, trace, checkers, nodes, config, epochMs: EPOCH_MS,
    bugs: {
      skipGapRepair: config.bugSkipGapRepair === 1,
      redeliverSeen: config.bugRedeliverSeen === 1,
      freshIdOnRetry: config.bugFreshIdOnRetry === 1,
      fetchOneAtATime: config.bugFetchOneAtATime === 1,
      dropFetchAnswers: config.bugDropFetchAnswers === 1,
      overflowForgets: config.bugOverflowForgets === 1,
      delayPagedRest: config.bugDelayPagedRest === 1,
    },
  });
  devices = driver.devices;
  const adversaries = new Adversaries({ sched, network, faults, stats, checkers, nodes, config });
  driver.adversaries = adversaries;
  network.connect({
    atNode: (frame) => frame.link.node.atNode(frame),
    goneAtNode: (link) => link.node.gone(link),
    atClient: (frame) => driver.atClient(frame),
    resetAtClient: (link) => driver.resetAtClient(link),
    refusedAtClient: (link) => driver.refusedAtClient(link),
  });
  workload = new Workload({ config, sched, rng, driver, backend, epochMs: EPOCH_MS });
  await workload.setup();
  adversaries.start();

  for (const fault of planDiscreteFaults(config, config.nodes, config.rampMs, config.healAtMs, rng)) {
    sched.at(fault.atMs, (f: DiscreteFault) => startFault(f, nodes[f.node]!), fault);
  }
  function startFault(fault: DiscreteFault, node: GatewayNode): void {
    const endAt = Math.min(config.healAtMs, fault.atMs + fault.durationMs);
    if (fault.kind === "storm") {
      stats.storms++;
      node.resetAll();
    } else if (fault.kind === "partition") {
      if (node.partitioned) return;
      stats.partitions++;
      node.partition();
      sched.at(endAt, (n: GatewayNode) => n.heal(), node);
    } else if (fault.kind === "drain") {
      node.drain(endAt);
    } else {
      node.crash();
      sched.at(endAt, (n: GatewayNode) => n.restart(), node);
    }
  }

  let done = false;
  let comparing = false;
  sched.at(config.healAtMs, () => {
    faults.active = false;
    for (const node of nodes) {
      node.heal();
      node.restart();
    }
    workload.everyoneBack();
  }, undefined);
  const deadline = config.healAtMs + config.livenessBoundMs;
  const check = (): void => {
    if (done || comparing) return;
    const last = sched.nowMs >= deadline;
    if (last || (driver.openGaps() === 0 && driver.devices.every((d) => d.settled()))) {
      comparing = true;
      sched.touch();
      void compare(last).then((converged) => {
        if (converged) stats.convergedAfterMs = sched.nowMs - config.healAtMs;
        if (converged || last) done = true;
        comparing = false;
      });
    }
    if (!last) sched.schedule(config.checkEveryMs, check, undefined);
  };
  sched.at(config.healAtMs + config.checkEveryMs, check, undefined);
  sched.at(deadline, check, undefined);

  /**
   * Compares every device with the server; `final` reports the differences as violations.
   * A pass that finds everyone converged (or the final one) also runs the end-of-run checks:
   * what each device delivered of the conversations it caught up with, and what its live
   * connection was pushed of them.
   */
  async function compare(final: boolean): Promise<boolean> {
    let converged = true;
    if (final) {
      // Conversation-specific findings first: the first violation then has a conversation to trace.
      for (const gap of driver.gapsOpen()) {
        converged = false;
        checkers.report("liveness", gap.conversationId, gap.device.name, `gap open since ${gap.sinceMs} ms never repaired`);
      }
    }
    const caughtUp: { device: Device; conversationIds: string[]; heads: number[] }[] = [];
    for (const device of driver.devices) {
      const sessions = await backend.inner.listSessions(device.userId, Number.MAX_SAFE_INTEGER);
      let mine: { device: Device; conversationIds: string[]; heads: number[] } | undefined;
      for (const s of sessions) {
        const c = device.core.cursor(s.conversationId);
        if (c.lastSeq === s.lastSeq && c.readSeq === s.readSeq && (s.lastSeq > 0 || device.core.cursors().some((x) => x.conversationId === s.conversationId))) {
          if (mine === undefined) caughtUp.push((mine = { device, conversationIds: [], heads: [] }));
          mine.conversationIds.push(s.conversationId);
          mine.heads.push(s.lastSeq);
          continue;
        }
        converged = false;
        if (!final) return false;
        const known = device.core.cursors().some((x) => x.conversationId === s.conversationId);
        const what = !known ? "no cursor" : `cursor seq ${c.lastSeq} read ${c.readSeq}`;
        checkers.report("liveness", s.conversationId, device.name, `${what}; server seq ${s.lastSeq} read ${s.readSeq}, ${config.livenessBoundMs} ms after the heal`);
      }
      if (!final) continue;
      if (!device.live) {
        converged = false;
        checkers.report("liveness", "", device.name, `not connected and synced ${config.livenessBoundMs} ms after the heal`);
      }
      const waiting = device.core.outboxSize;
      if (waiting > 0) {
        converged = false;
        const first = device.core.outbox()[0]!;
        checkers.report("liveness", first.conversationId || `to ${first.toUserId}`, device.name, `${waiting} sends never acknowledged (first: ${first.clientMsgId})`);
      }
    }
    for (const { device, conversationIds, heads } of caughtUp) {
      for (let i = 0; i < conversationIds.length; i++) checkers.checkEnd(device, conversationIds[i]!, heads[i]!);
      if (device.link !== undefined && device.live) checkers.checkEndPushes(device.link, conversationIds);
    }
    return converged;
  }

  const end = await sched.run({
    untilMs: deadline + 1,
    maxEvents: Math.min(config.maxEvents, run.stopAtEvent ?? Number.MAX_SAFE_INTEGER),
    stop: () => done,
  });
  if (end === "max-events" && run.stopAtEvent === undefined) checkers.report("invariant", "", "", `event budget of ${config.maxEvents} exhausted`);
  for (const device of driver.devices) if (device.link !== undefined) checkers.checkEndShown(device, device.link);
  stats.longestShownMs = checkers.longestShownMs;
  stats.pagedRestOwed = checkers.pagedRestOwed;
  return {
    scenario: run.scenario,
    size: run.size,
    seed,
    events: sched.events,
    virtualMs: sched.nowMs,
    healAtMs: config.healAtMs,
    end,
    stats,
    checkers: checkers.reports(),
    first: checkers.first,
    trace: trace.lines(),
    ok: checkers.total() === 0,
  };
}
