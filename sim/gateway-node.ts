import type { Random } from "../server/core/clock.js";
import type { Limits } from "../server/core/limits.js";
import type { Checkers } from "./checkers.js";
import type { Faults } from "./fault-plan.js";
import type { StoreBackend, StoreBugs } from "./faulty-store.js";
import type { ClientFrame, DisconnectCause, Link, Network, Push } from "./network.js";
import { NodeIncarnation } from "./node-incarnation.js";
import type { Scheduler } from "./scheduler.js";
import type { Stats } from "./stats.js";
import type { Trace } from "./trace.js";

/** Gateway settings (the server's defaults: server/config.ts). */
export interface NodeConfig {
  /** Silence after which the node closes a connection (HEARTBEAT_TIMEOUT). */
  readonly serverHeartbeatTimeoutMs: number;
  /** Interval of the node's tick over its connections. */
  readonly tickMs: number;
  /** Pushes on their way to one client before a SLOW_CONSUMER disconnect. */
  readonly pushQueueMax: number;
  readonly limits: Limits;
  /** Virtual time 0 as epoch milliseconds on the node clocks. */
  readonly epochMs: number;
}

/** What every node shares: the simulation's machinery and the one store. */
export interface NodeContext {
  readonly sched: Scheduler;
  readonly network: Network;
  readonly faults: Faults;
  readonly stats: Stats;
  readonly trace: Trace;
  readonly checkers: Checkers;
  readonly backend: StoreBackend;
  readonly presence: Presence;
  readonly random: Random;
  readonly storeBugs: StoreBugs;
  readonly config: NodeConfig;
}

/** The simulated user ids are `u<index>`; routing looks users up by index. */
export function userIndexOf(userId: string): number {
  return Number(userId.slice(1));
}

/**
 * Presence across the cluster (the role Redis plays in production): which connections each
 * user has, on whichever node. Dense arrays by user index: a million users stay cheap.
 */
export class Presence {
  readonly #byUser: (Link[] | undefined)[] = [];

  add(link: Link): void {
    const i = userIndexOf(link.userId);
    const links = this.#byUser[i];
    if (links === undefined) this.#byUser[i] = [link];
    else links.push(link);
  }

  remove(link: Link): void {
    const links = this.#byUser[userIndexOf(link.userId)];
    const at = links?.indexOf(link) ?? -1;
    if (at < 0) return;
    links![at] = links![links!.length - 1]!;
    links!.pop();
  }

  of(userId: string): readonly Link[] | undefined {
    return this.#byUser[userIndexOf(userId)];
  }
}


function arriveFromNode(arg: { readonly link: Link; readonly push: Push }): void {
  arg.link.node.arriveFromNode(arg.link, arg.push);
}

/**
 * A simulated gateway node: its connections (links), heartbeat tick, push queue bounds, and
 * routing to connections on other nodes over the simulated routing layer. Crashes lose the
 * incarnation (connections, fan-out chains); the store stays.
 */
export class GatewayNode {
  readonly index: number;
  alive = true;
  partitioned = false;
  generation = 1;
  readonly #ctx: NodeContext;
  readonly #links: Link[] = [];
  #current: NodeIncarnation;

  constructor(index: number, ctx: NodeContext) {
    this.index = index;
    this.#ctx = ctx;
    this.#current = new NodeIncarnation(this, ctx, this.generation, this.#drawSkew());
    ctx.sched.schedule(ctx.config.tickMs, this.#tick, undefined);
  }

  connectionCount(): number {
    return this.#links.length;
  }

  /** A request frame arrived on a link that is up. */
  atNode(frame: ClientFrame): void {
    if (this.#admit(frame.link)) this.#current.handle(frame);
  }

  /** A ping arrived on a link that is up. */
  pingAtNode(link: Link): void {
    if (this.#admit(link)) this.#ctx.network.pong(link);
  }

  /** The client closed the link, or the node noticed a reset. */
  gone(link: Link): void {
    if (link.generation === this.generation) this.detach(link);
  }

  attach(link: Link): void {
    if (link.attached) return;
    link.attached = true;
    link.generation = this.generation;
    link.slot = this.#links.length;
    this.#links.push(link);
    this.#ctx.presence.add(link);
  }

  detach(link: Link): void {
    if (!link.attached) return;
    link.attached = false;
    const last = this.#links.pop()!;
    if (last !== link) {
      this.#links[link.slot] = last;
      last.slot = link.slot;
    }
    link.slot = -1;
    this.#ctx.presence.remove(link);
  }

  /** Pushes to the connections of `userIds`: local ones directly, remote ones over the routing layer. */
  route(userIds: readonly string[], push: Push, exceptConnectionId: string | undefined): void {
    const { presence, stats, network, trace, sched } = this.#ctx;
    for (const userId of userIds) {
      const links = presence.of(userId);
      if (links === undefined) continue;
      for (let i = 0; i < links.length; i++) {
        const link = links[i]!;
        if (link.connectionId === exceptConnectionId) continue;
        if (link.node === this) {
          this.pushTo(link, push);
        } else if (this.partitioned || link.node.partitioned) {
          stats.pushesPartitioned++;
          if (push.kind === "message" && trace.wants(push.message.conversationId)) {
            trace.add(sched.nowMs, `push seq ${push.message.seq} to ${link.device.name} lost: node ${this.index} and node ${link.node.index} partitioned`);
          }
        } else {
          network.betweenNodes(arriveFromNode, { link, push });
        }
      }
    }
  }

  /** A push routed from another node reached this one. */
  arriveFromNode(link: Link, push: Push): void {
    if (this.partitioned) this.#ctx.stats.pushesPartitioned++;
    else this.pushTo(link, push);
  }

  /** Hands a push to a local connection: queue bound, push faults, slow consumers. */
  pushTo(link: Link, push: Push): void {
    if (!link.attached || link.ending) return;
    const { stats, faults, trace, sched, network } = this.#ctx;
    stats.pushes++;
    if (link.queued >= this.#ctx.config.pushQueueMax) {
      stats.slowConsumerDisconnects++;
      this.disconnect(link, "slow-consumer");
      return;
    }
    const fate = faults.pushFate();
    if (push.kind === "message" && trace.wants(push.message.conversationId)) {
      trace.add(sched.nowMs, `push seq ${push.message.seq} (prev ${push.message.prevSeq}) to ${link.device.name} via ${link.connectionId}: ${fate}`, link.device.index);
    }
    if (fate === "lost") {
      stats.pushesLost++;
      return;
    }
    if (fate === "duplicated") stats.pushesDuplicated++;
    else if (fate === "reordered") stats.pushesReordered++;
    network.push(link, push, fate, link.device.slow && faults.active ? faults.config.slowPushMs : 0);
  }

  /** Queues the final frame of a connection and lets it go. */
  disconnect(link: Link, cause: DisconnectCause): void {
    if (link.ending || !link.attached) return;
    link.ending = true;
    this.#ctx.network.toClient({ kind: "disconnect", link, cause });
    // Not now: the router may be iterating the user's connections.
    this.#ctx.sched.schedule(0, this.#detachLater, link);
  }

  /** The process dies: connections and in-memory state are gone; the store keeps what it got. */
  crash(): void {
    if (!this.alive) return;
    this.alive = false;
    this.#ctx.stats.crashes++;
    for (const link of this.#links) {
      link.attached = false;
      link.slot = -1;
      this.#ctx.presence.remove(link);
      this.#ctx.network.drop(link, false);
    }
    this.#links.length = 0;
  }

  /** A new process starts with empty memory and a freshly skewed clock. */
  restart(): void {
    if (this.alive) return;
    this.generation++;
    this.alive = true;
    this.#current = new NodeIncarnation(this, this.#ctx, this.generation, this.#drawSkew());
  }

  /** A reconnect storm: every connection reset at once (e.g. a load balancer restart). */
  resetAll(): void {
    for (const link of [...this.#links]) this.#ctx.network.drop(link, true);
  }

  /** Admits a frame: registers a new link, refuses it when down, drops it when closed. */
  #admit(link: Link): boolean {
    const { stats, sched } = this.#ctx;
    if (link.ending || (!link.attached && link.generation !== 0)) {
      stats.framesLost++;
      return false;
    }
    if (!link.attached) {
      if (!this.alive) {
        stats.refused++;
        this.#ctx.network.refuse(link);
        return false;
      }
      this.attach(link);
    }
    link.heardAtMs = sched.nowMs;
    return true;
  }

  #drawSkew(): number {
    const skew = this.#ctx.faults.config.clockSkewMs;
    return skew > 0 ? Math.floor(this.#ctx.faults.rng.between(-skew, skew)) : 0;
  }

  readonly #detachLater = (link: Link): void => {
    this.detach(link);
  };

  /** Heartbeat deadlines are data, advanced by one tick per node (connection.ts). */
  readonly #tick = (): void => {
    const { sched, stats, config } = this.#ctx;
    if (this.alive) {
      const deadline = sched.nowMs - config.serverHeartbeatTimeoutMs;
      for (let i = this.#links.length - 1; i >= 0; i--) {
        const link = this.#links[i]!;
        if (link.heardAtMs <= deadline && !link.ending) {
          stats.serverTimeouts++;
          this.disconnect(link, "heartbeat-timeout");
        }
      }
    }
    sched.schedule(config.tickMs, this.#tick, undefined);
  };
}
