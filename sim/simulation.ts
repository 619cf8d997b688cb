import { createSeededRandom } from "../server/core/clock.js";
import { DEFAULT_LIMITS } from "../server/core/limits.js";
import { Checkers, type CheckerName, type CheckerReport, type Violation } from "./checkers.js";
import { Faults, planDiscreteFaults, Rng, type DiscreteFault } from "./fault-plan.js";
import { StoreBackend } from "./faulty-store.js";
import { GatewayNode, Presence, type NodeContext } from "./gateway-node.js";
import { Network } from "./network.js";
import type { ScenarioName, SimConfig, Size } from "./scenarios.js";
import { Scheduler, type RunEnd } from "./scheduler.js";
import { ClientDriver } from "./client-driver.js";
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
  const checkers = new Checkers(sched);
  const backend = new StoreBackend((message) => {
    stats.stored++;
    checkers.appended(message);
  });
  const network = new Network(sched, faults, stats);
  const presence = new Presence();
  const limits = { ...DEFAULT_LIMITS, syncMessagesDefault: config.syncMessagesDefault, syncSessionsDefault: config.syncSessionsDefault, fetchDefault: config.fetchDefault };
  const nodeContext: NodeContext = {
    sched, network, faults, stats, trace, checkers, backend, presence, random,
    storeBugs: { loseAckedWrite: config.bugLoseAckedWrite },
    config: { serverHeartbeatTimeoutMs: config.serverHeartbeatTimeoutMs, tickMs: config.tickMs, pushQueueMax: config.pushQueueMax, limits, epochMs: EPOCH_MS },
  };
  const nodes: GatewayNode[] = [];
  for (let i = 0; i < config.nodes; i++) nodes.push(new GatewayNode(i, nodeContext));
  const driver = new ClientDriver({
    sched, network, faults, stats, trace, checkers, nodes, config,
    bugs: { skipGapRepair: config.bugSkipGapRepair === 1, redeliverSeen: config.bugRedeliverSeen === 1, freshIdOnRetry: config.bugFreshIdOnRetry === 1 },
  });
  network.connect({
    atNode: (frame) => frame.link.node.atNode(frame),
    pingAtNode: (link) => link.node.pingAtNode(link),
    goneAtNode: (link) => link.node.gone(link),
    atClient: (frame) => driver.atClient(frame),
    pongAtClient: (link) => driver.pongAtClient(link),
    resetAtClient: (link) => driver.resetAtClient(link),
    refusedAtClient: (link) => driver.refusedAtClient(link),
  });
  const workload = new Workload({ config, sched, rng, driver, backend, epochMs: EPOCH_MS });
  await workload.setup();

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
      node.partitioned = true;
      sched.at(endAt, (n: GatewayNode) => (n.partitioned = false), node);
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
      node.partitioned = false;
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
        comparing = false;
        if (converged) stats.convergedAfterMs = sched.nowMs - config.healAtMs;
        if (converged || last) done = true;
      });
    }
    if (!last) sched.schedule(config.checkEveryMs, check, undefined);
  };
  sched.at(config.healAtMs + config.checkEveryMs, check, undefined);
  sched.at(deadline, check, undefined);

  /** Compares every device with the server; `final` reports the differences as violations. */
  async function compare(final: boolean): Promise<boolean> {
    let converged = true;
    if (final) {
      // Conversation-specific findings first: the first violation then has a conversation to trace.
      for (const gap of driver.gapsOpen()) {
        converged = false;
        checkers.report("liveness", gap.conversationId, gap.device.name, `gap open since ${gap.sinceMs} ms never repaired`);
      }
    }
    for (const device of driver.devices) {
      const sessions = await backend.inner.listSessions(device.userId, Number.MAX_SAFE_INTEGER);
      const cursors = new Map(device.core.cursors().map((c) => [c.conversationId, c]));
      for (const s of sessions) {
        const c = cursors.get(s.conversationId);
        if (c !== undefined && c.lastSeq === s.lastSeq && c.readSeq === s.readSeq) {
          if (final) checkers.checkEnd(device, s.conversationId, s.lastSeq);
          continue;
        }
        converged = false;
        if (!final) return false;
        const mine = c === undefined ? "no cursor" : `cursor seq ${c.lastSeq} read ${c.readSeq}`;
        checkers.report("liveness", s.conversationId, device.name, `${mine}; server seq ${s.lastSeq} read ${s.readSeq}, ${config.livenessBoundMs} ms after the heal`);
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
    return converged;
  }

  const end = await sched.run({
    untilMs: deadline + 1,
    maxEvents: Math.min(config.maxEvents, run.stopAtEvent ?? Number.MAX_SAFE_INTEGER),
    stop: () => done,
  });
  if (end === "max-events" && run.stopAtEvent === undefined) checkers.report("invariant", "", "", `event budget of ${config.maxEvents} exhausted`);
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
