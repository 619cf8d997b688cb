import type { ConnectError } from "@connectrpc/connect";
import type { ConnectRequest, ConnectResponse, Disconnect } from "../gen/im/v1/gateway_pb.js";
import type { ClientRequest } from "../client/client-protocol.js";
import type { Connection } from "../server/gateway/connection.js";
import type { RequestLoop } from "../server/gateway/request-loop.js";
import type { Faults } from "./fault-plan.js";
import type { GatewayNode } from "./gateway-node.js";
import type { Scheduler } from "./scheduler.js";
import type { Stats } from "./stats.js";

/** Whoever holds the client end of a link: a device running the client core, or an adversary. */
export interface LinkClient {
  readonly index: number;
  readonly name: string;
  readonly userId: string;
  /** Reads pushes slowly while faults are on. */
  readonly slow: boolean;
  /** An adversarial client (sim/adversary.ts), not a device. */
  readonly adversary: boolean;
}

/** A frame from a client to its gateway node, in the long connection's wire types. */
export type ClientFrame =
  /** The stream opens: its request headers, with the bearer token. */
  | { readonly kind: "open"; readonly link: Link; readonly token: string }
  | { readonly kind: "request"; readonly link: Link; readonly request: ConnectRequest };

/** A frame from a gateway node to a client. */
export type ServerFrame =
  | { readonly kind: "reply"; readonly link: Link; readonly response: ConnectResponse }
  /** A publication's device frame: the enveloped bytes the lean path writes to every stream. */
  | { readonly kind: "push"; readonly link: Link; readonly bytes: Uint8Array; readonly size: number }
  /** The server ends the stream: after a disconnect frame, or with an error status (a refusal). */
  | { readonly kind: "end"; readonly link: Link; readonly disconnect: Disconnect | undefined; readonly error: ConnectError | undefined };

/**
 * One long connection: the client's stream and, once a node process accepted it, the
 * server's side of it (the production Connection and RequestLoop). Frames in each direction
 * arrive in the order they were sent (a TCP stream), each after a drawn latency; a dropped or
 * closed link loses every frame still in flight. Plain fields only: a million of these must
 * stay small.
 */
export class Link {
  readonly id: number;
  readonly client: LinkClient;
  readonly node: GatewayNode;
  /** The stream exists; false once it was dropped, refused or closed by either side. */
  up = true;
  /** Virtual time at which `up` became false (Infinity while up). */
  endedAtMs = Infinity;
  /** The node process that accepted it (0: none yet). */
  generation = 0;
  /** Index in the node's link array while held there (-1: not held). */
  slot = -1;
  /** The server's connection, once the token was verified. */
  conn: Connection | undefined = undefined;
  /** The server's request loop, once the hub registered the connection. */
  loop: RequestLoop | undefined = undefined;
  /** Requests that arrived before the loop started, answered when it starts. */
  held: ConnectRequest[] | undefined = undefined;
  /** Virtual time at which the hub registered the connection (-1: not yet). */
  attachedAtMs = -1;
  /** What the node has read from the client so far (frames and HTTP/2 PING acks): the socket's bytesRead. */
  nodeBytes = 0;
  /** Earliest arrival of the next frame towards the node / towards the client (FIFO). */
  upAt = 0;
  downAt = 0;
  /** Pushes on their way to the client, and their bytes (the connection's queue bounds count these). */
  queued = 0;
  queuedBytes = 0;
  /**
   * The client's requests waiting for an answer (for the answer checker): request ids and
   * requests side by side, few at a time (an array: a million links must stay small).
   */
  requests: (number | ClientRequest)[] | undefined = undefined;
  /** The highest seq pushed on this link, per conversation, as the client received them (for the push checker). */
  pushed: Map<string, number> | undefined = undefined;
  /** Seqs owed to this link that a later push skipped, per conversation (for the push checker). */
  holes: Map<string, number[]> | undefined = undefined;

  constructor(id: number, client: LinkClient, node: GatewayNode) {
    this.id = id;
    this.client = client;
    this.node = node;
  }

  get name(): string {
    return `l${this.id}`;
  }

  get userId(): string {
    return this.client.userId;
  }

  /** Remembers a request the client wrote, until its answer. */
  wrote(requestId: number, request: ClientRequest): void {
    (this.requests ??= []).push(requestId, request);
  }

  /** The request `requestId` the client wrote, forgotten now that it is answered. */
  answered(requestId: number): ClientRequest | undefined {
    const requests = this.requests;
    if (requests === undefined) return undefined;
    for (let i = 0; i < requests.length; i += 2) {
      if (requests[i] !== requestId) continue;
      const request = requests[i + 1] as ClientRequest;
      requests.splice(i, 2);
      if (requests.length === 0) this.requests = undefined;
      return request;
    }
    return undefined;
  }
}

/** Who receives frames: the gateway nodes and the clients. */
export interface NetworkEndpoints {
  /** A client frame reached its node (the link was up). */
  atNode(frame: ClientFrame): void;
  /** A server frame reached the client (the link was up). */
  atClient(frame: ServerFrame): void;
  /** The client learns at once that its link was reset. */
  resetAtClient(link: Link): void;
  /** The client learns that its connection attempt was refused (the node was down or draining). */
  refusedAtClient(link: Link): void;
  /** The node learns at once that a link was reset or closed by the client. */
  goneAtNode(link: Link): void;
}

/**
 * The simulated client-gateway network: latency and jitter on every hop, FIFO per connection
 * direction, slow readers, HTTP/2 PINGs answered by the client's stack, and drops with or
 * without a reset. A stream loses nothing while it is up: pushes are lost, duplicated or
 * reordered only on the hop between processes (sim/broker-bus.ts).
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

  /** A new connection attempt from `client` to `node`. */
  open(client: LinkClient, node: GatewayNode): Link {
    return new Link(++this.#nextLink, client, node);
  }

  /** Sends a frame to the node, after every frame sent before it on this link. */
  toNode(frame: ClientFrame): void {
    this.#sched.at(this.#upTime(frame.link), this.#arriveAtNode, frame);
  }

  /** Sends a frame to the client, after every frame sent before it on this link. */
  toClient(frame: ServerFrame): void {
    this.#sched.at(this.#downTime(frame.link, 0), this.#arriveAtClient, frame);
  }

  /** Writes a push; a slow reader takes `slowMs` per push, so pushes queue behind each other. */
  push(link: Link, bytes: Uint8Array, size: number, slowMs: number): void {
    link.queued++;
    link.queuedBytes += size;
    this.#sched.at(this.#downTime(link, slowMs), this.#pushArrives, { kind: "push", link, bytes, size } satisfies ServerFrame);
  }

  /** An HTTP/2 PING from the node: the client's stack answers it by itself, which the node reads as bytes. */
  probe(link: Link): void {
    this.#sched.at(this.#downTime(link, 0), this.#probeArrives, link);
  }

  /**
   * Drops a link (network fault, storm, crash): frames in flight are lost. Each side learns at
   * once with probability `resetProbability` (`force`: always), otherwise by heartbeat timeout.
   */
  drop(link: Link, force: boolean): void {
    if (!link.up) return;
    link.up = false;
    link.endedAtMs = this.#sched.nowMs;
    this.#stats.drops++;
    const p = this.#faults.config.resetProbability;
    if (force || this.#faults.rng.chance(p)) this.#sched.schedule(this.#faults.linkLatency(), this.#resetArrives, link);
    if (force || this.#faults.rng.chance(p)) this.#sched.schedule(this.#faults.linkLatency(), this.#goneArrives, link);
  }

  /** The node refuses a connection attempt (it is down or draining): the client learns one latency later. */
  refuse(link: Link): void {
    link.up = false;
    link.endedAtMs = this.#sched.nowMs;
    this.#sched.schedule(this.#faults.linkLatency(), this.#refusedArrives, link);
  }

  /** The client closes its stream: the node learns one latency later. */
  close(link: Link): void {
    if (!link.up) return;
    link.up = false;
    link.endedAtMs = this.#sched.nowMs;
    this.#sched.schedule(this.#faults.linkLatency(), this.#goneArrives, link);
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
    if (frame.link.up) {
      frame.link.nodeBytes++;
      this.#endpoints!.atNode(frame);
    } else this.#stats.framesLost++;
  };

  readonly #arriveAtClient = (frame: ServerFrame): void => {
    if (frame.link.up) this.#endpoints!.atClient(frame);
    else this.#stats.framesLost++;
  };

  readonly #pushArrives = (frame: ServerFrame & { kind: "push" }): void => {
    frame.link.queued--;
    frame.link.queuedBytes -= frame.size;
    if (frame.link.up) this.#endpoints!.atClient(frame);
    else this.#stats.framesLost++;
  };

  readonly #probeArrives = (link: Link): void => {
    if (link.up) this.#sched.at(this.#upTime(link), this.#probeAcked, link);
  };

  readonly #probeAcked = (link: Link): void => {
    if (link.up) link.nodeBytes++;
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
