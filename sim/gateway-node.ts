import type { Logger } from "pino";
import type { Random } from "../server/core/clock.js";
import type { Limits } from "../server/core/limits.js";
import type { ConnectionLimits } from "../server/gateway/connection.js";
import type { RequestValidator } from "../server/gateway/request-validator.js";
import type { BrokerBus } from "./broker-bus.js";
import type { Checkers } from "./checkers.js";
import type { Faults } from "./fault-plan.js";
import type { StoreBackend, StoreBugs } from "./faulty-store.js";
import type { ClientFrame, Link, Network } from "./network.js";
import { NodeProcess } from "./node-process.js";
import type { Scheduler } from "./scheduler.js";
import type { Stats } from "./stats.js";
import type { Trace } from "./trace.js";

/** Gateway settings (the server's defaults: server/config.ts). */
export interface NodeConfig {
  /** Interval of the node's tick over its connections (gateway-server.ts's tickMs). */
  readonly tickMs: number;
  /** Interval of the routing timer (owner call deadlines; routing.ts's 100 ms). */
  readonly routingTickMs: number;
  /** The production Connection's bounds and timeouts. */
  readonly connection: ConnectionLimits;
  readonly connectionsPerUserMax: number;
  /** How long a call waits for its conversation's owner (OwnerCallsOptions.timeoutMs). */
  readonly ownerCallTimeoutMs: number;
  readonly drainTimeoutMs: number;
  readonly reconnectSpreadMs: number;
  readonly limits: Limits;
  /** Virtual time 0 as epoch milliseconds on the node clocks. */
  readonly epochMs: number;
}

/** What every node shares: the simulation's machinery, the bus and the one store. */
export interface NodeContext {
  readonly sched: Scheduler;
  readonly network: Network;
  readonly bus: BrokerBus;
  readonly faults: Faults;
  readonly stats: Stats;
  readonly trace: Trace;
  readonly checkers: Checkers;
  readonly backend: StoreBackend;
  readonly random: Random;
  readonly storeBugs: StoreBugs;
  readonly validator: RequestValidator;
  readonly logger: Logger;
  readonly config: NodeConfig;
  readonly bugs: GatewayBugs;
}

/** Deliberate gateway bugs, switched on by the simulator's `bug*` settings (not options of the production classes). */
export interface GatewayBugs {
  /** Run without conversation owners: every send runs where it arrives (GatewayOperations without ownership). */
  readonly noOwners?: boolean;
  /** Never write a push of a message to a connection of its sender. */
  readonly noPushToSender?: boolean;
}

/**
 * A simulated gateway node: the machine and its life (up, partitioned, crashed, draining,
 * restarted), the links its current process holds, and the process itself (NodeProcess,
 * the production gateway logic). Crashes lose the process (connections, hub, owner calls in
 * flight); the store stays. A drain is the production drain followed by the process's exit.
 */
export class GatewayNode {
  readonly index: number;
  /** The process id: the same for every life of the node, as a restarted worker keeps its id. */
  readonly id: string;
  alive = true;
  partitioned = false;
  generation = 1;
  readonly #ctx: NodeContext;
  readonly #links: Link[] = [];
  #process: NodeProcess;

  constructor(index: number, ctx: NodeContext) {
    this.index = index;
    this.id = `n${index}`;
    this.#ctx = ctx;
    this.#process = new NodeProcess(this, ctx, this.generation, this.#drawSkew());
    ctx.sched.schedule(ctx.config.tickMs, this.#tick, undefined);
    ctx.sched.schedule(ctx.config.routingTickMs, this.#routingTick, undefined);
  }

  /** The current process. */
  get process(): NodeProcess {
    return this.#process;
  }

  connectionCount(): number {
    return this.#links.length;
  }

  /** A client frame arrived on a link that is up. */
  atNode(frame: ClientFrame): void {
    const link = frame.link;
    const { stats, sched, network } = this.#ctx;
    if (frame.kind === "open") {
      if (!this.alive || this.#process.draining) {
        stats.refused++;
        network.refuse(link);
        return;
      }
      this.#hold(link);
      this.#process.open(link, frame.token);
    } else {
      if (link.generation !== this.generation || !this.alive) {
        stats.framesLost++;
        return;
      }
      this.#process.request(link, frame.request);
    }
    sched.touch();
  }

  /** The client closed the link, or the node noticed a reset. */
  gone(link: Link): void {
    if (link.generation !== this.generation || link.slot < 0) return;
    this.#release(link);
    if (this.alive) this.#process.closed(link);
    this.#ctx.sched.touch();
  }

  /** The process dies: connections and in-memory state are gone; the store keeps what it got. */
  crash(): void {
    if (!this.alive) return;
    this.#ctx.stats.crashes++;
    this.#stop(false);
  }

  /** A new process starts with empty memory and a freshly skewed clock. */
  restart(): void {
    if (this.alive) return;
    this.generation++;
    this.alive = true;
    this.#process = new NodeProcess(this, this.#ctx, this.generation, this.#drawSkew());
  }

  /** A graceful shutdown (SIGTERM): the production drain, then the process exits; `restartAtMs` brings it back. */
  drain(restartAtMs: number): void {
    if (!this.alive || this.#process.draining) return;
    const process = this.#process;
    this.#ctx.stats.drains++;
    this.#ctx.sched.touch();
    void process.drain().then((drained) => {
      if (!drained) this.#ctx.stats.drainsTimedOut++;
      if (this.#process !== process || !this.alive) return;
      this.#stop(true);
      this.#ctx.sched.at(restartAtMs, this.#restartLater, process.generation);
    });
  }

  /** Cuts the node off from the other nodes and the bus (and, with partitionStore, the store). */
  partition(): void {
    if (this.partitioned) return;
    this.partitioned = true;
    if (this.alive) this.#process.broker.partitionStarted();
  }

  heal(): void {
    if (!this.partitioned) return;
    this.partitioned = false;
    if (this.alive) this.#process.broker.partitionEnded();
  }

  /** A reconnect storm: every connection reset at once (e.g. a load balancer restart). */
  resetAll(): void {
    for (const link of [...this.#links]) this.#ctx.network.drop(link, true);
  }

  #stop(clean: boolean): void {
    this.alive = false;
    this.#ctx.bus.gone(this.#process.broker, clean);
    for (const link of this.#links) {
      link.slot = -1;
      // A clean exit closes its sockets (the clients see a reset); a crash leaves them to time out or reset.
      this.#ctx.network.drop(link, clean);
    }
    this.#links.length = 0;
  }

  #hold(link: Link): void {
    link.generation = this.generation;
    link.slot = this.#links.length;
    this.#links.push(link);
  }

  #release(link: Link): void {
    const last = this.#links.pop()!;
    if (last !== link) {
      this.#links[link.slot] = last;
      last.slot = link.slot;
    }
    link.slot = -1;
  }

  #drawSkew(): number {
    const skew = this.#ctx.faults.config.clockSkewMs;
    return skew > 0 ? Math.floor(this.#ctx.faults.rng.between(-skew, skew)) : 0;
  }

  readonly #restartLater = (generation: number): void => {
    if (this.generation === generation) this.restart();
  };

  /** Connection deadlines are data, advanced by one tick per node (gateway-server.ts's ticker). */
  readonly #tick = (): void => {
    if (this.alive) this.#process.tick();
    this.#ctx.sched.schedule(this.#ctx.config.tickMs, this.#tick, undefined);
  };

  readonly #routingTick = (): void => {
    if (this.alive) {
      this.#process.routingTick();
      this.#ctx.sched.touch();
    }
    this.#ctx.sched.schedule(this.#ctx.config.routingTickMs, this.#routingTick, undefined);
  };
}
