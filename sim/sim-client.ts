import { backoffDelayMs, type BackoffOptions } from "../client/backoff.js";
import type { SyncAnswer, SyncEffect, SyncEngineOptions } from "../client/sync-engine.js";
import { directConversationId } from "../server/core/conversation-id.js";
import type { SyncOutcome } from "../server/core/messaging.js";
import type { StoredMessage } from "../server/core/model.js";
import type { Checkers } from "./checkers.js";
import { Device, LIVE, OFFLINE, SYNCING, type ClientBugs, type ClientConfig, type OutboxEntry } from "./device.js";
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

/** The core's sync outcome as the engine takes it (the wire codec's job in ImClient). */
function toAnswer(outcome: SyncOutcome): SyncAnswer<StoredMessage> {
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

/**
 * Does for every simulated device what ImClient does around its SyncEngine, on virtual time:
 * connect to a node, sync first, transmit the outbox (same clientMsgId on every attempt),
 * carry out the engine's fetch and sync effects, ping and abandon a silent connection,
 * reconnect with client/backoff.ts (immediately after a slow-consumer disconnect), and drop the
 * connection when a sync or fetch fails. Plus the fixes in ClientConfig when switched on.
 */
export class ClientDriver {
  readonly devices: Device[] = [];
  readonly #ctx: ClientContext;
  readonly #backoff: BackoffOptions;
  readonly #float: () => number;
  /** A conversation is traced: only then are trace lines built. */
  readonly #tracing: boolean;
  #openGaps = 0;
  /** Shared by every engine: no options object per device. */
  readonly #engineOptions: SyncEngineOptions;

  constructor(ctx: ClientContext) {
    this.#ctx = ctx;
    this.#engineOptions = { faults: ctx.bugs, pendingMax: ctx.config.pendingMax };
    this.#tracing = ctx.trace.conversationId !== undefined;
    this.#backoff = { baseMs: ctx.config.backoffBaseMs, maxMs: ctx.config.backoffMaxMs };
    this.#float = () => ctx.faults.rng.float();
  }

  /** Adds a device of a user. */
  add(userId: string, k: number, slow: boolean): Device {
    const device = new Device(this.devices.length, userId, k, this.#engineOptions);
    device.slow = slow;
    this.devices.push(device);
    return device;
  }

  /** Gaps open right now, over every device. */
  openGaps(): number {
    return this.#openGaps;
  }

  /** The app opens (or comes back): connect now. */
  comeBack(device: Device): void {
    device.away = false;
    device.attempt = 0;
    this.#connect(device);
  }

  /** The app closes: the client closes its connection and stays away. */
  goAway(device: Device): void {
    device.away = true;
    const link = device.link;
    if (link === undefined) return;
    if (this.#tracing) this.#traceDevice(device, `${device.name} goes away`);
    device.link = undefined;
    this.#ctx.network.close(link);
    device.engine.disconnected();
    device.phase = OFFLINE;
  }

  /** The app sends a message to a conversation, or to the direct conversation with a user. */
  send(device: Device, conversationId: string, toUserId: string): void {
    const { stats, config, trace, sched } = this.#ctx;
    device.outbox ??= new Map();
    if (device.outbox.size >= config.outboxMax) {
      stats.sendsRejected++;
      return;
    }
    const entry: OutboxEntry = { device, conversationId, toUserId, clientMsgId: `${device.index}-${device.sendCount++}`, attempts: 0 };
    device.outbox.set(entry.clientMsgId, entry);
    stats.appSends++;
    if (trace.conversationId !== undefined && trace.wants(conversationId || directConversationId(device.userId, toUserId))) {
      trace.add(sched.nowMs, `${device.name} sends ${entry.clientMsgId}${device.phase === OFFLINE ? " (offline: queued)" : ""}`, device.index);
    }
    if (device.phase !== OFFLINE) this.#transmit(entry);
  }

  /** A frame from the node reached the device. */
  atClient(frame: ServerFrame): void {
    const link = frame.link;
    const device = link.device;
    if (device.link !== link) return;
    device.heardAtMs = this.#ctx.sched.nowMs;
    const engine = device.engine;
    switch (frame.kind) {
      case "push": {
        const push = frame.push;
        if (push.kind === "message") this.#apply(device, engine.receive(push.message));
        else this.#apply(device, engine.readPosition(push.conversationId, push.readSeq));
        break;
      }
      case "send":
        this.#answered(device, frame);
        break;
      case "sync":
        if (frame.outcome === undefined) this.#requestFailed(device);
        else this.#apply(device, engine.syncResult(toAnswer(frame.outcome)));
        break;
      case "fetch":
        if (frame.outcome === undefined) {
          engine.fetchFailed(frame.conversationId);
          this.#requestFailed(device);
        } else {
          if (this.#tracing) this.#traceConversation(device, frame.conversationId, `${device.name} fetch answer: ${frame.outcome.messages.length} messages, last seq ${frame.outcome.lastSeq}`);
          this.#apply(device, engine.fetchResult(frame.conversationId, frame.outcome.messages, frame.outcome.hasMore));
          if (device.gaps !== undefined) this.#gapProgress(device, frame.conversationId);
        }
        break;
      case "markRead":
        if (frame.readSeq !== undefined && this.#ctx.config.readAck === 1) this.#apply(device, engine.readPosition(frame.conversationId, frame.readSeq));
        break;
      case "disconnect":
        this.#lost(device, frame.cause);
        break;
    }
  }

  pongAtClient(link: Link): void {
    if (link.device.link === link) link.device.heardAtMs = this.#ctx.sched.nowMs;
  }

  resetAtClient(link: Link): void {
    if (link.device.link === link) this.#lost(link.device, "reset");
  }

  refusedAtClient(link: Link): void {
    if (link.device.link === link) this.#lost(link.device, "refused");
  }

  #connect(device: Device): void {
    if (device.away || device.link !== undefined) return;
    const { nodes, network, sched, stats, faults, config } = this.#ctx;
    const node = nodes[faults.rng.int(nodes.length)]!;
    const link = network.open(device, node);
    device.link = link;
    device.phase = SYNCING;
    device.heardAtMs = sched.nowMs;
    stats.connects++;
    if (this.#tracing) this.#traceDevice(device, `${device.name} connects to node ${node.index} (${link.connectionId})`);
    this.#apply(device, device.engine.connected());
    if (device.outbox !== undefined) for (const entry of device.outbox.values()) this.#transmit(entry);
    sched.schedule(config.heartbeatIntervalMs, this.#pingTimer, link);
    const dropMs = faults.dropAfterMs();
    if (dropMs !== undefined) sched.schedule(dropMs, this.#dropTimer, link);
    if (config.idleResyncMs > 0) sched.schedule(config.idleResyncMs, this.#resyncTimer, link);
  }

  /** The connection is gone (as the client sees it): disconnected engine, backoff, reconnect. */
  #lost(device: Device, cause: DisconnectCause): void {
    const link = device.link;
    if (link === undefined) return;
    const { network, sched } = this.#ctx;
    device.link = undefined;
    network.close(link);
    device.engine.disconnected();
    device.phase = OFFLINE;
    if (this.#tracing) this.#traceDevice(device, `${device.name} lost ${link.connectionId}: ${cause}`);
    if (device.away) return;
    const immediate = cause === "slow-consumer" && device.attempt === 0;
    const delayMs = immediate ? 0 : backoffDelayMs(device.attempt, this.#backoff, this.#float);
    device.attempt++;
    sched.schedule(delayMs, this.#reconnectTimer, device);
  }

  #requestFailed(device: Device): void {
    this.#ctx.stats.failedRequests++;
    this.#lost(device, "request-failed");
  }

  #answered(device: Device, frame: ServerFrame & { kind: "send" }): void {
    const { stats, checkers, config, sched } = this.#ctx;
    const entry = frame.entry;
    const outbox = device.outbox;
    if (outbox?.get(entry.clientMsgId) !== entry) return;
    const message = frame.message;
    if (message !== undefined) {
      outbox.delete(entry.clientMsgId);
      stats.acked++;
      if (this.#tracing) this.#traceConversation(device, message.conversationId, `${device.name} ack ${entry.clientMsgId}: seq ${message.seq} (prev ${message.prevSeq})`);
      checkers.acknowledged(device, message);
      this.#apply(device, device.engine.receive(message));
    } else if (frame.retryable) {
      if (config.retrySends === 1) sched.schedule(backoffDelayMs(entry.attempts - 1, this.#backoff, this.#float), this.#retryTimer, entry);
    } else {
      outbox.delete(entry.clientMsgId);
      stats.sendsFailed++;
    }
  }

  #transmit(entry: OutboxEntry): void {
    const device = entry.device;
    if (entry.attempts > 0) this.#ctx.stats.resends++;
    entry.attempts++;
    const clientMsgId = this.#ctx.bugs.freshIdOnRetry === true && entry.attempts > 1 ? `${entry.clientMsgId}~${entry.attempts}` : entry.clientMsgId;
    this.#ctx.network.toNode({ kind: "send", link: device.link!, entry, clientMsgId });
  }

  /** Carries out the engine's decisions (ImClient.#apply). */
  #apply(device: Device, effects: readonly SyncEffect<StoredMessage>[]): void {
    const { network, stats } = this.#ctx;
    for (const effect of effects) {
      switch (effect.type) {
        case "deliver":
          this.#delivered(device, effect.conversationId, effect.messages);
          break;
        case "sync":
          stats.syncs++;
          network.toNode({ kind: "sync", link: device.link!, cursors: effect.cursors });
          break;
        case "fetch":
          stats.fetches++;
          this.#gapFound(device, effect.conversationId, effect.upToSeq);
          if (this.#tracing) this.#traceConversation(device, effect.conversationId, `${device.name} fetches (${effect.afterSeq}, ${effect.upToSeq || "newest"}]`);
          network.toNode({ kind: "fetch", link: device.link!, conversationId: effect.conversationId, afterSeq: effect.afterSeq, upToSeq: effect.upToSeq });
          break;
        case "stuck":
          stats.stuck++;
          if (this.#tracing) this.#traceConversation(device, effect.conversationId, `${device.name} stuck at seq ${effect.lastSeq}`);
          break;
        default:
          break;
      }
    }
    if (device.phase === SYNCING && device.engine.idle()) {
      device.phase = LIVE;
      device.attempt = 0;
    }
  }

  #delivered(device: Device, conversationId: string, messages: readonly StoredMessage[]): void {
    const { checkers, stats, faults, config, network } = this.#ctx;
    for (const m of messages) checkers.delivered(device, m);
    stats.deliveries += messages.length;
    if (this.#tracing) this.#traceConversation(device, conversationId, `${device.name} delivers seq ${messages.map((m) => m.seq).join(",")}`);
    if (device.gaps !== undefined) this.#gapProgress(device, conversationId);
    if (device.phase === LIVE && faults.rng.chance(config.markReadProbability)) {
      stats.markReads++;
      network.toNode({ kind: "markRead", link: device.link!, conversationId, readSeq: device.engine.lastSeq(conversationId) });
    }
  }

  #gapFound(device: Device, conversationId: string, upToSeq: number): void {
    const target = upToSeq !== 0 ? upToSeq : this.#ctx.checkers.head(conversationId);
    // "Anything newer?" with nothing newer is not a gap.
    if (target <= device.engine.lastSeq(conversationId)) return;
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
    if (gap === undefined || device.engine.lastSeq(conversationId) < gap.target) return;
    device.gaps!.delete(conversationId);
    if (device.gaps!.size === 0) device.gaps = undefined;
    this.#openGaps--;
    const stats = this.#ctx.stats;
    stats.gapsRepaired++;
    stats.longestRepairMs = Math.max(stats.longestRepairMs, this.#ctx.sched.nowMs - gap.sinceMs);
  }

  /** Open gaps, for the liveness report. */
  gapsOpen(): Array<{ device: Device; conversationId: string; sinceMs: number }> {
    const out: Array<{ device: Device; conversationId: string; sinceMs: number }> = [];
    if (this.#openGaps === 0) return out;
    for (const device of this.devices) for (const [conversationId, gap] of device.gaps ?? []) out.push({ device, conversationId, sinceMs: gap.sinceMs });
    return out;
  }

  #traceConversation(device: Device, conversationId: string, text: string): void {
    const trace = this.#ctx.trace;
    if (trace.wants(conversationId)) trace.add(this.#ctx.sched.nowMs, text, device.index);
  }

  #traceDevice(device: Device, text: string): void {
    const trace = this.#ctx.trace;
    if (trace.wantsDevice(device.index)) trace.add(this.#ctx.sched.nowMs, text);
  }

  readonly #pingTimer = (link: Link): void => {
    const device = link.device;
    if (device.link !== link) return;
    const { sched, stats, network, config } = this.#ctx;
    if (sched.nowMs - device.heardAtMs > config.heartbeatTimeoutMs) {
      stats.clientTimeouts++;
      this.#lost(device, "heartbeat-timeout");
      return;
    }
    stats.pings++;
    network.ping(link);
    sched.schedule(config.heartbeatIntervalMs, this.#pingTimer, link);
  };

  readonly #dropTimer = (link: Link): void => {
    if (link.device.link === link && this.#ctx.faults.active) this.#ctx.network.drop(link, false);
  };

  readonly #resyncTimer = (link: Link): void => {
    const device = link.device;
    if (device.link !== link) return;
    const { stats, network, sched, config } = this.#ctx;
    if (device.phase === LIVE && device.engine.idle()) {
      stats.resyncs++;
      stats.syncs++;
      network.toNode({ kind: "sync", link, cursors: device.engine.cursors() });
    }
    sched.schedule(config.idleResyncMs, this.#resyncTimer, link);
  };

  readonly #reconnectTimer = (device: Device): void => {
    this.#connect(device);
  };

  readonly #retryTimer = (entry: OutboxEntry): void => {
    const device = entry.device;
    if (device.phase !== OFFLINE && device.outbox?.get(entry.clientMsgId) === entry) this.#transmit(entry);
  };
}
