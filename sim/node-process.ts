import type { ConnectError } from "@connectrpc/connect";
import { DisconnectReason, type ConnectRequest, type ConnectResponse, type Disconnect } from "../gen/im/v1/gateway_pb.js";
import type { Clock } from "../server/core/clock.js";
import type { EventSink } from "../server/core/events.js";
import { createMessageIdGenerator } from "../server/core/message-id.js";
import { Messaging } from "../server/core/messaging.js";
import type { TokenVerifier } from "../server/gateway/auth.js";
import { Connection, type ConnectionLimits } from "../server/gateway/connection.js";
import { drainConnections } from "../server/gateway/drain.js";
import { toConnectError } from "../server/gateway/errors.js";
import { GatewayOperations } from "../server/gateway/gateway-operations.js";
import { tooManyConnections } from "../server/gateway/lean-gateway.js";
import { RequestLoop, type RequestLoopDeps } from "../server/gateway/request-loop.js";
import { ChannelPublisher } from "../server/route/channel-publisher.js";
import { Hub } from "../server/route/hub.js";
import { OwnerCalls, OwnerSet } from "../server/route/owners.js";
import type { Publication } from "../server/route/publication.js";
import { SimBroker, type BrokerProcess } from "./broker-bus.js";
import { FaultyStore, type StoreCaller } from "./faulty-store.js";
import { SimFrameSink, type SinkOwner } from "./frame-sink.js";
import type { GatewayNode, NodeContext } from "./gateway-node.js";
import type { Link } from "./network.js";
import { createSimTokenVerifier } from "./sim-auth.js";

/**
 * One life of a gateway process, between a start and a crash or exit, running the production
 * gateway logic: its Messaging core (with the node's clock: virtual time plus a skew), its
 * Hub, ChannelPublisher and Broker (SimBroker on the simulated bus), the conversation owners
 * (OwnerSet, OwnerCalls, GatewayOperations), and per long connection the production
 * Connection (bounds, in-flight limit, token expiry, heartbeat by tick) writing to a
 * SimFrameSink, and RequestLoop (validation, send ordering, answers, error mapping). What is
 * simulated here is what the lean HTTP/2 path does with a stream (lean-gateway.ts): verify the
 * token, refuse a user over its connection bound, register with the hub, hold requests until
 * then, and end the stream. Output of a dead process is dropped.
 */
export class NodeProcess implements StoreCaller, BrokerProcess, SinkOwner {
  readonly id: string;
  readonly generation: number;
  readonly clock: Clock;
  readonly messaging: Messaging;
  readonly hub: Hub;
  readonly broker: SimBroker;
  readonly owners: OwnerSet;
  readonly calls: OwnerCalls;
  readonly operations: GatewayOperations;
  /** The live connections (gateway-server.ts's registry): ticked, drained. */
  readonly registry = new Set<Connection>();
  readonly #node: GatewayNode;
  readonly #ctx: NodeContext;
  readonly #verifier: TokenVerifier;
  readonly #limits: ConnectionLimits;
  readonly #loopDeps: RequestLoopDeps;
  #connections = 0;
  /** Draining: new streams are refused. */
  draining = false;

  constructor(node: GatewayNode, ctx: NodeContext, generation: number, skewMs: number) {
    this.#node = node;
    this.#ctx = ctx;
    this.id = node.id;
    this.generation = generation;
    const { config } = ctx;
    const clock: Clock = { nowMs: () => config.epochMs + ctx.sched.nowMs + skewMs };
    this.clock = clock;
    this.broker = new SimBroker(this.id, this, ctx.bus);
    this.owners = new OwnerSet(this.id, ctx.bus.members());
    this.calls = new OwnerCalls(this.id, this.broker, { timeoutMs: config.ownerCallTimeoutMs });
    this.hub = new Hub({ broker: this.broker, groupsOf: (userId) => this.messaging.groupsOf(userId) });
    this.broker.onPublication((channel, publication) => this.hub.handle(channel, publication));
    const publisher = new ChannelPublisher(this.id, this.hub, this.broker);
    const events: EventSink = {
      messageAppended: (conversation, message, origin) => {
        if (!this.alive) return;
        ctx.stats.publications++;
        ctx.checkers.published(message, origin ?? "");
        if (ctx.trace.wants(message.conversationId)) ctx.trace.add(ctx.sched.nowMs, `${this.id} publishes seq ${message.seq} (prev ${message.prevSeq})${origin === undefined ? "" : `, not to ${origin}`}`);
        publisher.messageAppended(conversation, message, origin);
      },
      readMoved: (userId, conversationId, readSeq, origin) => {
        if (this.alive) publisher.readMoved(userId, conversationId, readSeq, origin);
      },
      membersChanged: (conversation, added, removed) => {
        if (this.alive) publisher.membersChanged(conversation, added, removed);
      },
    };
    this.messaging = new Messaging({
      store: new FaultyStore(ctx.backend, this, ctx.sched, ctx.faults, ctx.stats, ctx.trace, ctx.storeBugs),
      events,
      clock,
      ids: createMessageIdGenerator(clock, ctx.random),
      limits: config.limits,
    });
    this.operations = new GatewayOperations(this.messaging, ctx.bugs.noOwners === true ? undefined : { owners: this.owners, calls: this.calls });
    this.#verifier = createSimTokenVerifier(clock);
    this.#limits = config.connection;
    this.#loopDeps = { operations: this.operations, validator: ctx.validator, clock, logger: ctx.logger };
    this.broker.join();
  }

  get alive(): boolean {
    return this.#node.alive && this.#node.generation === this.generation;
  }

  get partitioned(): boolean {
    return this.#node.partitioned;
  }

  get storeCut(): boolean {
    return this.#node.partitioned && this.#ctx.faults.config.partitionStore === 1;
  }

  get tracing(): boolean {
    return this.#ctx.trace.conversationId !== undefined;
  }

  /** A stream was opened on `link` with `token` (its headers arrived). */
  open(link: Link, token: string): void {
    this.#open(link, token).catch((error: unknown) => this.#unexpected(error, `opening ${link.name}`));
  }

  /** A request frame arrived on `link`. */
  request(link: Link, request: ConnectRequest): void {
    const loop = link.loop;
    if (loop !== undefined) {
      loop.take(request);
      return;
    }
    const conn = link.conn;
    if (conn?.ending === true) return;
    const held = (link.held ??= []);
    if (conn !== undefined && held.length >= this.#limits.inFlightMax) {
      // Bounded like requests in flight (lean-gateway.ts): no piling up before registration.
      conn.disconnect(DisconnectReason.PROTOCOL_ERROR, `more than ${this.#limits.inFlightMax} requests before the connection was registered`, 1000);
      return;
    }
    held.push(request);
  }

  /** The stream of `link` closed (the client closed it, or the node noticed a reset). */
  closed(link: Link): void {
    const conn = link.conn;
    link.loop = undefined;
    link.held = undefined;
    if (conn === undefined) return;
    conn.close();
    this.registry.delete(conn);
  }

  /** Advances every connection's deadlines (gateway-server.ts's one interval timer). */
  tick(): void {
    const now = this.clock.nowMs();
    for (const conn of this.registry) conn.tick(now);
  }

  /** Advances the owner calls' deadlines (routing.ts's timer). */
  routingTick(): void {
    this.calls.tick(this.clock.nowMs());
  }

  /** The graceful drain of gateway-server.ts's close(): SERVER_SHUTDOWN to everyone, then wait. */
  drain(): Promise<boolean> {
    this.draining = true;
    const { config, faults, sched } = this.#ctx;
    return drainConnections(this.registry, { drainTimeoutMs: config.drainTimeoutMs, reconnectSpreadMs: config.reconnectSpreadMs }, {
      clock: this.clock,
      randomInt: (maxExclusive) => faults.rng.int(maxExclusive),
      wait: (ms) => sched.delay(ms),
    });
  }

  // BrokerProcess

  ownersChanged(members: readonly string[]): void {
    const before = this.owners.members;
    if (!this.owners.update(members)) return;
    // As routing.ts does: calls waiting for an owner that left fail at once.
    for (const owner of before) if (!this.owners.members.includes(owner)) this.calls.abandon(owner, "the conversation's owner left; retry");
  }

  traceHop(text: string, publication: Publication): void {
    const { trace, sched } = this.#ctx;
    if (publication.kind !== "message") return;
    const m = publication.connectResponse().frame;
    if (m.case === "message" && trace.wants(m.value.conversationId)) trace.add(sched.nowMs, `${this.id}: publication of seq ${m.value.seq} from ${publication.origin} ${text}`);
  }

  // SinkOwner

  writePush(link: Link, publication: Publication): void {
    const { stats, network, faults, trace, sched, bugs } = this.#ctx;
    if (bugs.noPushToSender === true && publication.kind === "message") {
      const m = publication.connectResponse().frame;
      if (m.case === "message" && m.value.senderId === link.userId) return;
    }
    stats.pushes++;
    if (this.tracing && publication.kind === "message") {
      const m = publication.connectResponse().frame;
      if (m.case === "message" && trace.wants(m.value.conversationId)) trace.add(sched.nowMs, `${this.id} pushes seq ${m.value.seq} (prev ${m.value.prevSeq}) to ${link.client.name} on ${link.conn?.connectionId}`, link.client.index);
    }
    network.push(link, publication.frame("connect"), publication.bytes, link.client.slow && faults.active ? faults.config.slowPushMs : 0);
  }

  writeReply(link: Link, frame: ConnectResponse): void {
    this.#ctx.network.toClient({ kind: "reply", link, response: frame });
  }

  writeEnd(link: Link, disconnect: Disconnect | undefined, error: ConnectError | undefined): void {
    const conn = link.conn;
    // The stream is over for the server: the hub lets go of it (lean-stream.ts's released()).
    if (conn !== undefined) this.hub.detach(conn);
    const stats = this.#ctx.stats;
    switch (disconnect?.reason) {
      case DisconnectReason.SLOW_CONSUMER:
        stats.slowConsumerDisconnects++;
        break;
      case DisconnectReason.HEARTBEAT_TIMEOUT:
        stats.serverTimeouts++;
        break;
      case DisconnectReason.TOKEN_EXPIRED:
        stats.tokenExpiries++;
        break;
      case DisconnectReason.SERVER_SHUTDOWN:
        stats.shutdownDisconnects++;
        break;
      case DisconnectReason.PROTOCOL_ERROR:
        stats.protocolErrors++;
        break;
      default:
        break;
    }
    if (!this.alive) return;
    if (link.up) this.#ctx.network.toClient({ kind: "end", link, disconnect, error });
    // A dead socket: the write fails and the stream closes at once.
    else this.closed(link);
  }

  probe(link: Link): void {
    this.#ctx.network.probe(link);
  }

  async #open(link: Link, token: string): Promise<void> {
    const { config, sched } = this.#ctx;
    let principal;
    try {
      principal = await this.#verifier.verify(`Bearer ${token}`);
    } catch (error) {
      this.#refuse(link, toConnectError(error));
      return;
    }
    if (!this.#holds(link)) return;
    if (this.hub.connectionsOf(principal.userId) >= config.connectionsPerUserMax) {
      this.#refuse(link, tooManyConnections(config.connectionsPerUserMax));
      return;
    }
    const sink = new SimFrameSink(link, this);
    const conn = new Connection(`${this.id}.${this.generation}-${++this.#connections}`, principal.userId, principal.expiresAtMs, this.clock.nowMs(), this.#limits, sink, false);
    link.conn = conn;
    this.registry.add(conn);
    try {
      await this.hub.attach(conn);
    } catch (error) {
      sink.error = toConnectError(error);
      conn.close();
      return;
    }
    if (conn.ending || !this.#holds(link)) return;
    link.attachedAtMs = sched.nowMs;
    // Requests that arrived while the hub registered the connection are answered now: a sync
    // among them reads the store after every channel of the user delivers here.
    const loop = new RequestLoop(this.#loopDeps, conn.userId, conn);
    link.loop = loop;
    const held = link.held ?? [];
    link.held = undefined;
    for (const request of held) loop.take(request);
  }

  /** Ends a stream that never got going with an error status. */
  #refuse(link: Link, error: ConnectError): void {
    this.#ctx.stats.refusedStreams++;
    link.held = undefined;
    if (this.#holds(link)) this.#ctx.network.toClient({ kind: "end", link, disconnect: undefined, error });
  }

  #holds(link: Link): boolean {
    return this.alive && link.up && link.generation === this.generation;
  }

  #unexpected(error: unknown, context: string): void {
    const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
    this.#ctx.checkers.report("invariant", "", "", `${context}: ${text}`);
  }
}
