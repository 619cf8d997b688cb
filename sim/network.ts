import type { FetchOutcome, SyncOutcome } from "../server/core/messaging.js";
import type { StoredMessage } from "../server/core/model.js";
import type { ClientCursor } from "../client/sync-engine.js";
import type { Faults, PushFate } from "./fault-plan.js";
import type { GatewayNode } from "./gateway-node.js";
import type { Scheduler } from "./scheduler.js";
import type { Device } from "./device.js";
import type { Stats } from "./stats.js";

/** Something delivered to a device's connections: a message, or a read position. */
export type Push =
  | { readonly kind: "message"; readonly message: StoredMessage }
  | { readonly kind: "read"; readonly conversationId: string; readonly readSeq: number };

/** Why a connection ended, as the client learns it (the sim's DisconnectReason plus network causes). */
export type DisconnectCause = "slow-consumer" | "heartbeat-timeout" | "reset" | "refused" | "request-failed";

/** A frame from a client to its gateway node; `requestId` comes back in the answer. */
export type ClientFrame =
  | { readonly kind: "send"; readonly link: Link; readonly requestId: number; readonly conversationId: string; readonly toUserId: string; readonly clientMsgId: string }
  | { readonly kind: "sync"; readonly link: Link; readonly requestId: number; readonly cursors: readonly ClientCursor[] }
  | { readonly kind: "fetch"; readonly link: Link; readonly requestId: number; readonly conversationId: string; readonly afterSeq: number; readonly upToSeq: number }
  | { readonly kind: "markRead"; readonly link: Link; readonly requestId: number; readonly conversationId: string; readonly readSeq: number };

/** A frame from a gateway node to a client. `undefined` outcomes are errors. */
export type ServerFrame =
  | { readonly kind: "send"; readonly link: Link; readonly requestId: number; readonly message: StoredMessage | undefined; readonly retryable: boolean }
  | { readonly kind: "sync"; readonly link: Link; readonly requestId: number; readonly outcome: SyncOutcome | undefined }
  | { readonly kind: "fetch"; readonly link: Link; readonly requestId: number; readonly conversationId: string; readonly outcome: FetchOutcome | undefined }
  | { readonly kind: "markRead"; readonly link: Link; readonly requestId: number; readonly conversationId: string; readonly readSeq: number | undefined }
  | { readonly kind: "push"; readonly link: Link; readonly push: Push }
  | { readonly kind: "disconnect"; readonly link: Link; readonly cause: DisconnectCause };

/**
 * One long connection: the client's stream and, once the node has seen its first frame, the
 * node's registered connection (the PushTarget). Frames in each direction arrive in the order
 * they were sent (a TCP stream), each after a drawn latency; a dropped or closed link loses
 * every frame still in flight. Plain fields only: a million of these must stay small.
 */
export class Link {
  readonly connectionId: string;
  readonly device: Device;
  readonly node: GatewayNode;
  /** The stream exists; false once it was dropped, refused or closed by either side. */
  up = true;
  /** Registered at the node (attached to the router). */
  attached = false;
  /** The node queued its final frame (a disconnect): it sends nothing more. */
  ending = false;
  /** The node incarnation that attached it (0: not attached yet). */
  generation = 0;
  /** Index in the node's connection array while attached. */
  slot = -1;
  /** Earliest arrival of the next frame towards the node / towards the client (FIFO). */
  upAt = 0;
  downAt = 0;
  /** When the node last heard from the client. */
  heardAtMs = 0;
  /** Pushes on their way to the client (the node's queue bound counts these). */
  queued = 0;
  /** Sends of this connection, applied in the order written (as the gateway does). */
  sendChain: Promise<void> | undefined = undefined;

  constructor(id: number, device: Device, node: GatewayNode) {
    this.connectionId = `c${id}`;
    this.device = device;
    this.node = node;
  }

  get userId(): string {
    return this.device.userId;
  }

  push(push: Push): void {
    this.node.pushTo(this, push);
  }
}

/** Who receives frames: the gateway nodes and the client driver. */
export interface NetworkEndpoints {
  /** A client frame reached its node (the link was up). */
  atNode(frame: ClientFrame): void;
  /** A ping reached the node. */
  pingAtNode(link: Link): void;
  /** A server frame reached the client (the link was up). */
  atClient(frame: ServerFrame): void;
  /** A pong reached the client. */
  pongAtClient(link: Link): void;
  /** The client learns at once that its link was reset. */
  resetAtClient(link: Link): void;
  /** The client learns that its connection attempt was refused (the node was down). */
  refusedAtClient(link: Link): void;
  /** The node learns at once that a link was reset or closed by the client. */
  goneAtNode(link: Link): void;
}

/**
 * The simulated network: latency and jitter on every hop, FIFO per connection direction,
 * push faults (loss, duplication, reordering outside FIFO, slow consumers), drops with or
 * without a reset, and the hop between gateway nodes.
 */
export class Network {
  readonly #sched: Scheduler;
  readonly #faults: Faults;
  readonly #stats: Stats;
  #endpoints: NetworkEndpoints | undefined;
  #nextLink = 0;

  constructor(sched: Scheduler, faults: Faults, stats: Stats) {
    this.#sched = sched;
    this.#faults = faults;
    this.#stats = stats;
  }

  /** Wires the receivers (they need the network to exist first). */
  connect(endpoints: NetworkEndpoints): void {
    this.#endpoints = endpoints;
  }

  /** A new connection attempt from `device` to `node`. */
  open(device: Device, node: GatewayNode): Link {
    return new Link(++this.#nextLink, device, node);
  }

  /** Sends a frame to the node, after every frame sent before it on this link. */
  toNode(frame: ClientFrame): void {
    this.#sched.at(this.#upTime(frame.link), this.#arriveAtNode, frame);
  }

  /** Sends a ping to the node. */
  ping(link: Link): void {
    this.#sched.at(this.#upTime(link), this.#pingArrives, link);
  }

  /** Sends a frame to the client, after every frame sent before it on this link. */
  toClient(frame: ServerFrame): void {
    this.#sched.at(this.#downTime(frame.link, 0), this.#arriveAtClient, frame);
  }

  /** Answers a ping. */
  pong(link: Link): void {
    this.#sched.at(this.#downTime(link, 0), this.#pongArrives, link);
  }

  /** Sends a push with its fate; a slow consumer takes `slowMs` per push. */
  push(link: Link, push: Push, fate: PushFate, slowMs: number): void {
    const frame: ServerFrame = { kind: "push", link, push };
    if (fate === "reordered") {
      const at = this.#sched.nowMs + this.#faults.linkLatency() + Math.floor(this.#faults.rng.between(0, this.#faults.config.reorderDelayMs));
      link.queued++;
      this.#sched.at(at, this.#pushArrives, frame);
      return;
    }
    link.queued++;
    this.#sched.at(this.#downTime(link, slowMs), this.#pushArrives, frame);
    if (fate === "duplicated") {
      link.queued++;
      this.#sched.at(this.#downTime(link, slowMs), this.#pushArrives, frame);
    }
  }

  /**
   * Drops a link (network fault, storm, crash): frames in flight are lost. Each side learns at
   * once with probability `resetProbability` (`force`: always), otherwise by heartbeat timeout.
   */
  drop(link: Link, force: boolean): void {
    if (!link.up) return;
    link.up = false;
    this.#stats.drops++;
    const p = this.#faults.config.resetProbability;
    if (force || this.#faults.rng.chance(p)) this.#sched.schedule(this.#faults.linkLatency(), this.#resetArrives, link);
    if (force || this.#faults.rng.chance(p)) this.#sched.schedule(this.#faults.linkLatency(), this.#goneArrives, link);
  }

  /** The node refuses a connection attempt (it is down): the client learns one latency later. */
  refuse(link: Link): void {
    link.up = false;
    this.#sched.schedule(this.#faults.linkLatency(), this.#refusedArrives, link);
  }

  /** The client closes its stream: the node learns one latency later. */
  close(link: Link): void {
    if (!link.up) return;
    link.up = false;
    this.#sched.schedule(this.#faults.linkLatency(), this.#goneArrives, link);
  }

  /** A message between gateway nodes (the routing layer): `fn(arg)` runs at the far node. */
  betweenNodes<T>(fn: (arg: T) => void, arg: T): void {
    this.#sched.schedule(this.#faults.nodeLatency(), fn, arg);
  }

  #upTime(link: Link): number {
    const at = Math.max(this.#sched.nowMs + this.#faults.linkLatency(), link.upAt);
    link.upAt = at;
    return at;
  }

  #downTime(link: Link, slowMs: number): number {
    const at = Math.max(this.#sched.nowMs + this.#faults.linkLatency(), link.downAt + slowMs);
    link.downAt = at;
    return at;
  }

  readonly #arriveAtNode = (frame: ClientFrame): void => {
    if (frame.link.up) this.#endpoints!.atNode(frame);
    else this.#stats.framesLost++;
  };

  readonly #pingArrives = (link: Link): void => {
    if (link.up) this.#endpoints!.pingAtNode(link);
  };

  readonly #arriveAtClient = (frame: ServerFrame): void => {
    if (frame.link.up) this.#endpoints!.atClient(frame);
    else this.#stats.framesLost++;
  };

  readonly #pongArrives = (link: Link): void => {
    if (link.up) this.#endpoints!.pongAtClient(link);
  };

  readonly #pushArrives = (frame: ServerFrame): void => {
    frame.link.queued--;
    if (frame.link.up) this.#endpoints!.atClient(frame);
    else this.#stats.framesLost++;
  };

  readonly #resetArrives = (link: Link): void => {
    this.#endpoints!.resetAtClient(link);
  };

  readonly #refusedArrives = (link: Link): void => {
    this.#endpoints!.refusedAtClient(link);
  };

  readonly #goneArrives = (link: Link): void => {
    this.#endpoints!.goneAtNode(link);
  };
}
