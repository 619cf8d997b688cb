import type { CallEvent } from "../../gen/im/v1/call_pb.js";
import type { ConnectRequest } from "../../gen/im/v1/gateway_pb.js";
import type { Subscriber } from "../../server/route/hub.js";
import type { Publication } from "../../server/route/publication.js";
import type { Rng } from "../fault-plan.js";
import type { Scheduler } from "../scheduler.js";
import type { CallsConfig } from "./calls-config.js";
import type { CallsStats } from "./calls-stats.js";
import type { CallWorker, Reply, WorkerLife } from "./call-worker.js";

/** The device end of a link. */
export interface LinkDevice {
  readonly userId: string;
  linkUp(link: CallLink): void;
  /** The connection was refused (the worker is down) or is gone. */
  linkDown(link: CallLink): void;
  linkReply(link: CallLink, requestId: number, reply: Reply): void;
  linkPush(link: CallLink, event: CallEvent): void;
}

/** The network between devices and workers: latencies, push faults, drops. */
export interface CallNetContext {
  readonly sched: Scheduler;
  readonly rng: Rng;
  readonly config: CallsConfig;
  readonly stats: CallsStats;
  readonly faults: { readonly active: boolean };
  /** A StartCall frame reached a worker life (for kills mid-ring). */
  readonly startArrived: (worker: CallWorker) => void;
  /** A fresh connection id, unique in the run. */
  readonly nextLinkId: () => string;
}

/**
 * One long connection between a device and a worker life: frames in each direction arrive in
 * order after a latency; pushes (the hub's deliveries) may be lost, duplicated or held back
 * out of order. Each end learns of a close on its own schedule: a killed worker's sockets reset
 * at once; a network drop reaches the device at once or only after a while.
 */
export class CallLink {
  readonly id: string;
  readonly device: LinkDevice;
  readonly worker: CallWorker;
  life: WorkerLife | undefined;
  serverOpen = false;
  clientOpen = true;
  readonly #ctx: CallNetContext;
  #upAt = 0;
  #downAt = 0;
  #chain: Promise<unknown> = Promise.resolve();
  readonly #subscriber: Subscriber;

  constructor(ctx: CallNetContext, device: LinkDevice, worker: CallWorker) {
    this.#ctx = ctx;
    this.id = ctx.nextLinkId();
    this.device = device;
    this.worker = worker;
    this.#subscriber = { connectionId: this.id, userId: device.userId, deliver: (p) => this.#push(p) };
    this.#toServer(() => this.#arrive());
  }

  /** A request frame; its reply comes back through `linkReply` unless the link dies first. */
  request(requestId: number, frame: ConnectRequest["frame"]): void {
    this.#toServer(() => {
      const life = this.life;
      if (life === undefined || !this.serverOpen) return;
      if (frame.case === "startCall") this.#ctx.startArrived(this.worker);
      this.#ctx.sched.touch();
      const userId = this.device.userId;
      this.#chain = this.#chain.then(() => this.worker.answer(life, userId, frame)).then((reply) => {
        if (this.serverOpen) this.#toDevice(() => this.device.linkReply(this, requestId, reply));
      });
    });
  }

  /** The device closes the connection (app closed, or it gave up on the link). */
  clientClose(): void {
    if (!this.clientOpen) return;
    this.clientOpen = false;
    this.#toServer(() => this.#serverClose());
  }

  /** The worker's process died: its sockets reset, the device learns at once. */
  serverReset(): void {
    this.serverOpen = false;
    this.life?.links.delete(this);
    this.#toDevice(() => this.#clientDown(), true);
  }

  #arrive(): void {
    const { sched, stats, config, faults, rng } = this.#ctx;
    if (!this.clientOpen) return;
    const life = this.worker.life;
    if (life === undefined) {
      stats.refused++;
      this.#toDevice(() => this.#clientDown(), true);
      return;
    }
    this.life = life;
    this.serverOpen = true;
    life.links.add(this);
    sched.touch();
    void life.hub.attach(this.#subscriber).then(() => {
      if (this.serverOpen && life.alive) this.#toDevice(() => this.device.linkUp(this));
    });
    if (faults.active && config.dropsPerMinute > 0) {
      const after = 1 + Math.floor(-Math.log(1 - rng.float()) * (60_000 / config.dropsPerMinute));
      sched.schedule(after, () => this.#drop(), undefined);
    }
  }

  #drop(): void {
    const { stats, rng, config, sched, faults } = this.#ctx;
    if (!faults.active || !this.serverOpen || !this.clientOpen) return;
    stats.drops++;
    this.#serverClose();
    if (rng.chance(config.resetProbability)) this.#toDevice(() => this.#clientDown(), true);
    else sched.schedule(rng.between(0, config.dropNoticeMaxMs), () => this.#clientDown(), undefined);
  }

  #serverClose(): void {
    if (!this.serverOpen) return;
    this.serverOpen = false;
    const life = this.life;
    if (life === undefined) return;
    life.links.delete(this);
    if (life.alive) life.hub.detach(this.#subscriber);
  }

  #clientDown(): void {
    if (!this.clientOpen) return;
    this.clientOpen = false;
    this.device.linkDown(this);
  }

  #push(publication: Publication): void {
    const { stats, rng, config, faults, sched } = this.#ctx;
    if (!this.serverOpen) return;
    stats.pushes++;
    const frame = publication.connectResponse().frame;
    if (frame.case !== "callEvent") return;
    const event = frame.value;
    const deliver = (): void => this.device.linkPush(this, event);
    if (faults.active && rng.chance(config.pushLoss)) {
      stats.pushesLost++;
      return;
    }
    if (faults.active && rng.chance(config.pushDuplicate)) {
      stats.pushesDuplicated++;
      this.#toDevice(deliver);
    }
    if (faults.active && rng.chance(config.pushReorder)) {
      stats.pushesReordered++;
      sched.schedule(this.#latency() + rng.between(0, config.reorderDelayMs), () => {
        if (this.clientOpen) deliver();
      }, undefined);
      return;
    }
    this.#toDevice(deliver);
  }

  #latency(): number {
    const { config, rng } = this.#ctx;
    return 1 + Math.floor(config.latencyMs + rng.exponential(config.jitterMs));
  }

  #toServer(fn: () => void): void {
    const at = Math.max(this.#ctx.sched.nowMs + this.#latency(), this.#upAt);
    this.#upAt = at;
    this.#ctx.sched.at(at, fn, undefined);
  }

  /** In order behind everything sent to the device before; `always` runs it even when the device closed its end. */
  #toDevice(fn: () => void, always = false): void {
    const at = Math.max(this.#ctx.sched.nowMs + this.#latency(), this.#downAt);
    this.#downAt = at;
    this.#ctx.sched.at(at, () => {
      if (always || this.clientOpen) fn();
    }, undefined);
  }
}
