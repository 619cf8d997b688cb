import { ClientCore, type ClientRestore, type Settled } from "../client/client-core.js";
import { clientSettings, type ClientSettings } from "../client/client-settings.js";
import type { ClientRequest, DisconnectKind, LinkCloseCause, PendingSend, RequestFailure, SendAck } from "../client/client-protocol.js";
import { SyncEngine } from "../client/sync-engine.js";
import { directConversationId } from "../server/core/conversation-id.js";
import type { SyncOutcome } from "../server/core/messaging.js";
import type { StoredMessage } from "../server/core/model.js";
import type { Checkers } from "./checkers.js";
import { breakEngine, type ClientBugs } from "./client-bugs.js";
import { Device, type ClientConfig, type DeviceDriver } from "./device.js";
import type { Faults } from "./fault-plan.js";
import type { GatewayNode } from "./gateway-node.js";
import type { DisconnectCause, Link, Network, ServerFrame } from "./network.js";
import type { Scheduler } from "./scheduler.js";
import type { Stats } from "./stats.js";
import type { Trace } from "./trace.js";

/** What the client driver shares with the rest of the simulation. */
export interface ClientContext {
  readonly sched: Scheduler;
  readonly network: Network;
  readonly faults: Faults;
  readonly stats: Stats;
  readonly trace: Trace;
  readonly checkers: Checkers;
  readonly nodes: readonly GatewayNode[];
  readonly config: ClientConfig;
  readonly bugs: ClientBugs;
}

/** The body of every simulated send (its bytes do not matter). */
const BODY = new Uint8Array(16);

/** A send acknowledgement that carries the stored message, so the core's own message is the store's object. */
interface SimAck extends SendAck {
  readonly message: StoredMessage;
}

/** A failure as the gateway reports it: retryable or not. */
const RETRYABLE: RequestFailure = { reason: "server", retryable: true, retryAfterMs: 0, unauthenticated: false, cause: undefined };
const REFUSED: RequestFailure = { reason: "server", retryable: false, retryAfterMs: 0, unauthenticated: false, cause: undefined };

/** The core's sync answer from the messaging core's outcome (the wire codec's job in the SDK). */
function toAnswer(outcome: SyncOutcome) {
  return {
    sessions: outcome.sessions.map((u) => ({
      conversationId: u.session.conversationId,
      lastSeq: u.session.lastSeq,
      readSeq: u.session.readSeq,
      messages: u.messages,
      hasMoreMessages: u.hasMoreMessages,
    })),
    removedConversationIds: outcome.removedConversationIds,
    hasMoreSessions: outcome.hasMoreSessions,
  };
}

function disconnectKind(cause: DisconnectCause): DisconnectKind {
  return cause === "slow-consumer" ? "slow-consumer" : cause === "heartbeat-timeout" ? "heartbeat-timeout" : "unspecified";
}

/**
 * Runs the production client core (client/client-core.ts, with its SyncEngine) on every
 * simulated device, on virtual time, through an in-process transport: the core's links are
 * the simulated network's links, its requests and answers are the network's frames, its clock
 * is the scheduler's, its randomness the run's PRNG, and its wake-up times are scheduler
 * events. The driver also keeps the simulation's books on the side (stats, gap tracking,
 * checkers) and plays the app (sends, markRead, going away and coming back).
 */
export class ClientDriver implements DeviceDriver {
  readonly devices: Device[] = [];
  readonly #ctx: ClientContext;
  readonly #settings: ClientSettings<StoredMessage>;
  /** A conversation is traced: only then are trace lines built. */
  readonly #tracing: boolean;
  #openGaps = 0;

  constructor(ctx: ClientContext) {
    this.#ctx = ctx;
    this.#tracing = ctx.trace.conversationId !== undefined;
    const { config, bugs, sched, faults } = ctx;
    const broken = bugs.skipGapRepair === true || bugs.redeliverSeen === true;
    this.#settings = clientSettings<StoredMessage>({
      clock: { nowMs: () => sched.nowMs },
      random: () => faults.rng.float(),
      ownMessage: (ack) => (ack as SimAck).message,
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      heartbeatTimeoutMs: config.heartbeatTimeoutMs,
      backoff: { baseMs: config.backoffBaseMs, maxMs: config.backoffMaxMs },
      resyncIntervalMs: config.resyncIntervalMs,
      outboxMax: config.outboxMax,
      requestsInFlightMax: config.requestsInFlightMax,
      pendingMax: config.pendingMax,
      reorderWindowMs: config.reorderWindowMs,
      createEngine: broken ? (options) => breakEngine(new SyncEngine<StoredMessage>(options), bugs) : undefined,
    });
  }

  /** Adds a device of a user (its app not open yet). */
  add(userId: string, k: number, slow: boolean): Device {
    const device = new Device(this.devices.length, userId, k, this);
    device.slow = slow;
    device.core = new ClientCore(this.#settings, device);
    this.devices.push(device);
    return device;
  }

  /** Gaps open right now, over every device. */
  openGaps(): number {
    return this.#openGaps;
  }

  /** The app opens (or comes back): its client starts. */
  comeBack(device: Device): void {
    device.away = false;
    device.core.start();
    this.#arm(device);
  }

  /**
   * The app closes: its client is closed, and what the app stored (cursors, outbox) becomes
   * the next client's restore, as a ClientStore would hand it back after a restart.
   */
  goAway(device: Device): void {
    device.away = true;
    const core = device.core;
    if (core.state === "idle") return;
    if (this.#tracing) this.#traceDevice(device, `${device.name} goes away`);
    const restore: ClientRestore = { cursors: core.cursors(), outbox: core.outbox() };
    core.close();
    device.core = new ClientCore(this.#settings, device, restore);
    device.wakeAt = Infinity;
  }

  /** The app sends a message to a conversation, or to the direct conversation with a user. */
  send(device: Device, conversationId: string, toUserId: string): void {
    const { stats, trace, sched } = this.#ctx;
    stats.appSends++;
    const clientMsgId = `${device.index}-${device.sendCount++}`;
    const outcome = device.core.send({ clientMsgId, conversationId, toUserId, contentType: "text/plain", data: BODY });
    if (outcome !== "queued") {
      stats.sendsRejected++;
      return;
    }
    if (trace.conversationId !== undefined && trace.wants(conversationId || directConversationId(device.userId, toUserId))) {
      trace.add(sched.nowMs, `${device.name} sends ${clientMsgId}${device.link === undefined ? " (offline: queued)" : ""}`, device.index);
    }
    this.#arm(device);
  }

  /** A frame from the node reached the device. */
  atClient(frame: ServerFrame): void {
    const link = frame.link;
    const device = link.device;
    if (device.link !== link) return;
    const core = device.core;
    const id = device.coreLink;
    switch (frame.kind) {
      case "push": {
        const push = frame.push;
        if (push.kind === "message") core.push(id, push.message);
        else core.readPushed(id, push.conversationId, push.readSeq);
        break;
      }
      case "send": {
        const m = frame.message;
        if (m === undefined) core.failed(id, frame.requestId, frame.retryable ? RETRYABLE : REFUSED);
        else core.answered(id, frame.requestId, { kind: "send", ack: { conversationId: m.conversationId, seq: m.seq, prevSeq: m.prevSeq, messageId: m.messageId, sentAtMs: m.sentAtMs, clientMsgId: m.clientMsgId, duplicate: false, message: m } as SimAck });
        break;
      }
      case "sync":
        if (frame.outcome === undefined) core.failed(id, frame.requestId, RETRYABLE);
        else core.answered(id, frame.requestId, { kind: "sync", answer: toAnswer(frame.outcome) });
        break;
      case "fetch":
        if (frame.outcome === undefined) {
          core.failed(id, frame.requestId, RETRYABLE);
        } else {
          if (this.#tracing) this.#traceConversation(device, frame.conversationId, `${device.name} fetch answer: ${frame.outcome.messages.length} messages, last seq ${frame.outcome.lastSeq}`);
          core.answered(id, frame.requestId, { kind: "fetch", messages: frame.outcome.messages, hasMore: frame.outcome.hasMore });
          if (device.gaps !== undefined) this.#gapProgress(device, frame.conversationId);
        }
        break;
      case "markRead":
        if (frame.readSeq === undefined) core.failed(id, frame.requestId, REFUSED);
        else core.answered(id, frame.requestId, { kind: "markRead", readSeq: frame.readSeq });
        break;
      case "disconnect":
        core.serverDisconnect(id, disconnectKind(frame.cause), 0);
        break;
    }
    this.#arm(device);
  }

  pongAtClient(link: Link): void {
    const device = link.device;
    if (device.link !== link) return;
    device.core.heard(device.coreLink);
    this.#arm(device);
  }

  resetAtClient(link: Link): void {
    this.#lostAtClient(link, "reset");
  }

  refusedAtClient(link: Link): void {
    this.#lostAtClient(link, "refused");
  }

  // DeviceDriver: what the devices' cores ask for.

  openLink(device: Device, link: number): void {
    const { nodes, network, sched, stats, faults } = this.#ctx;
    const node = nodes[faults.rng.int(nodes.length)]!;
    const l = network.open(device, node);
    device.link = l;
    device.coreLink = link;
    stats.connects++;
    if (this.#tracing) this.#traceDevice(device, `${device.name} connects to node ${node.index} (${l.connectionId})`);
    const dropMs = faults.dropAfterMs();
    if (dropMs !== undefined) sched.schedule(dropMs, this.#dropTimer, l);
    // A stream carries requests at once.
    device.core.linkReady(link);
  }

  closeLink(device: Device, link: number, cause: LinkCloseCause): void {
    if (device.coreLink !== link || device.link === undefined) return;
    const { network, stats } = this.#ctx;
    const l = device.link;
    device.link = undefined;
    device.coreLink = 0;
    network.close(l);
    if (cause === "heartbeat-timeout") stats.clientTimeouts++;
    else if (cause === "request-failed") stats.failedRequests++;
    if (this.#tracing) this.#traceDevice(device, `${device.name} closes ${l.connectionId}: ${cause}`);
  }

  write(device: Device, requestId: number, request: ClientRequest): void {
    const link = device.link;
    if (link === undefined) return;
    const { network, stats, bugs } = this.#ctx;
    switch (request.kind) {
      case "send": {
        const s = request.send;
        if (request.attempt > 1) stats.resends++;
        const clientMsgId = bugs.freshIdOnRetry === true && request.attempt > 1 ? `${s.clientMsgId}~${request.attempt}` : s.clientMsgId;
        network.toNode({ kind: "send", link, requestId, conversationId: s.conversationId, toUserId: s.toUserId, clientMsgId });
        break;
      }
      case "sync":
        stats.syncs++;
        if (request.resync) stats.resyncs++;
        network.toNode({ kind: "sync", link, requestId, cursors: request.cursors });
        break;
      case "fetch":
        stats.fetches++;
        this.#gapFound(device, request.conversationId, request.upToSeq);
        if (this.#tracing) this.#traceConversation(device, request.conversationId, `${device.name} fetches (${request.afterSeq}, ${request.upToSeq || "newest"}]`);
        network.toNode({ kind: "fetch", link, requestId, conversationId: request.conversationId, afterSeq: request.afterSeq, upToSeq: request.upToSeq });
        break;
      case "markRead":
        stats.markReads++;
        network.toNode({ kind: "markRead", link, requestId, conversationId: request.conversationId, readSeq: request.readSeq });
        break;
      case "ping":
        stats.pings++;
        network.ping(link);
        break;
    }
  }

  deliver(device: Device, conversationId: string, messages: readonly StoredMessage[]): void {
    const { checkers, stats, faults, config } = this.#ctx;
    for (const m of messages) checkers.delivered(device, m);
    stats.deliveries += messages.length;
    if (this.#tracing) this.#traceConversation(device, conversationId, `${device.name} delivers seq ${messages.map((m) => m.seq).join(",")}`);
    if (device.gaps !== undefined) this.#gapProgress(device, conversationId);
    const core = device.core;
    if (core.state === "live" && faults.rng.chance(config.markReadProbability)) core.markRead(0, conversationId, core.lastSeq(conversationId));
  }

  stuck(device: Device, conversationId: string, lastSeq: number): void {
    this.#ctx.stats.stuck++;
    if (this.#tracing) this.#traceConversation(device, conversationId, `${device.name} stuck at seq ${lastSeq}`);
  }

  sendSettled(device: Device, send: PendingSend, outcome: Settled<SendAck>): void {
    const { stats, checkers } = this.#ctx;
    if (outcome.ok) {
      stats.acked++;
      const message = (outcome.value as SimAck).message;
      if (this.#tracing) this.#traceConversation(device, message.conversationId, `${device.name} ack ${send.clientMsgId}: seq ${message.seq} (prev ${message.prevSeq})`);
      checkers.acknowledged(device, message);
    } else if (outcome.failure.reason !== "closed") {
      // Closed: the app went away; the send resumes with its next client.
      stats.sendsFailed++;
    }
  }

  /** Open gaps, for the liveness report. */
  gapsOpen(): Array<{ device: Device; conversationId: string; sinceMs: number }> {
    const out: Array<{ device: Device; conversationId: string; sinceMs: number }> = [];
    if (this.#openGaps === 0) return out;
    for (const device of this.devices) for (const [conversationId, gap] of device.gaps ?? []) out.push({ device, conversationId, sinceMs: gap.sinceMs });
    return out;
  }

  #lostAtClient(link: Link, cause: DisconnectCause): void {
    const device = link.device;
    if (device.link !== link) return;
    const id = device.coreLink;
    device.link = undefined;
    device.coreLink = 0;
    this.#ctx.network.close(link);
    if (this.#tracing) this.#traceDevice(device, `${device.name} lost ${link.connectionId}: ${cause}`);
    device.core.linkLost(id);
    this.#arm(device);
  }

  /** Schedules the core's next wake-up, unless an earlier one is already scheduled. */
  #arm(device: Device): void {
    const at = device.core.nextWakeMs();
    if (at === undefined || at >= device.wakeAt) return;
    device.wakeAt = at;
    this.#ctx.sched.at(at, this.#wake, device);
  }

  readonly #wake = (device: Device): void => {
    const now = this.#ctx.sched.nowMs;
    // A wake-up that was overtaken by an earlier one (or by the device going away) is stale.
    if (device.wakeAt !== now) return;
    device.wakeAt = Infinity;
    device.core.tick();
    const at = device.core.nextWakeMs();
    if (at !== undefined && at <= now) {
      // The core keeps its deadlines moving; this only guards the scheduler against a stall.
      device.wakeAt = now + 1;
      this.#ctx.sched.at(now + 1, this.#wake, device);
      return;
    }
    this.#arm(device);
  };

  #gapFound(device: Device, conversationId: string, upToSeq: number): void {
    const target = upToSeq !== 0 ? upToSeq : this.#ctx.checkers.head(conversationId);
    // "Anything newer?" with nothing newer is not a gap.
    if (target <= device.core.lastSeq(conversationId)) return;
    device.gaps ??= new Map();
    const gap = device.gaps.get(conversationId);
    if (gap !== undefined) {
      gap.target = Math.max(gap.target, target);
      return;
    }
    device.gaps.set(conversationId, { sinceMs: this.#ctx.sched.nowMs, target });
    this.#openGaps++;
    this.#ctx.stats.gapsFound++;
  }

  #gapProgress(device: Device, conversationId: string): void {
    const gap = device.gaps!.get(conversationId);
    if (gap === undefined || device.core.lastSeq(conversationId) < gap.target) return;
    device.gaps!.delete(conversationId);
    if (device.gaps!.size === 0) device.gaps = undefined;
    this.#openGaps--;
    const stats = this.#ctx.stats;
    stats.gapsRepaired++;
    stats.longestRepairMs = Math.max(stats.longestRepairMs, this.#ctx.sched.nowMs - gap.sinceMs);
  }

  #traceConversation(device: Device, conversationId: string, text: string): void {
    const trace = this.#ctx.trace;
    if (trace.wants(conversationId)) trace.add(this.#ctx.sched.nowMs, text, device.index);
  }

  #traceDevice(device: Device, text: string): void {
    const trace = this.#ctx.trace;
    if (trace.wantsDevice(device.index)) trace.add(this.#ctx.sched.nowMs, text);
  }

  readonly #dropTimer = (link: Link): void => {
    if (link.device.link === link && this.#ctx.faults.active) this.#ctx.network.drop(link, false);
  };
}
