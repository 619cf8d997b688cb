import { Code } from "@connectrpc/connect";
import type { ConnectRequest, ConnectResponse } from "../../gen/im/v1/gateway_pb.js";
import { ErrorDetailSchema, ErrorReason } from "../../gen/im/v1/message_pb.js";
import type { CallTimeouts } from "../../server/core/call-model.js";
import { Calls } from "../../server/core/calls.js";
import { createSeededRandom, type Clock } from "../../server/core/clock.js";
import { discardEvents } from "../../server/core/events.js";
import { DEFAULT_LIMITS } from "../../server/core/limits.js";
import { createMessageIdGenerator } from "../../server/core/message-id.js";
import { Messaging } from "../../server/core/messaging.js";
import { StoreUnavailableError } from "../../server/core/result.js";
import { answerCallFrame } from "../../server/gateway/call-frames.js";
import { CallOperations } from "../../server/gateway/call-operations.js";
import { toConnectError } from "../../server/gateway/errors.js";
import type { Broker } from "../../server/route/broker.js";
import { ChannelCallEventPublisher } from "../../server/route/channel-call-event-publisher.js";
import { Hub } from "../../server/route/hub.js";
import type { Publication } from "../../server/route/publication.js";
import type { MemoryMessageStore } from "../../server/store/memory-message-store.js";
import type { Rng } from "../fault-plan.js";
import type { Scheduler } from "../scheduler.js";
import type { CallLink } from "./call-link.js";
import type { CallsStats } from "./calls-stats.js";
import { WorkerCallStore, type StoreClientContext } from "./sim-call-store.js";

/** The answer to a request frame: the response frame, or the error the client sees. */
export type Reply =
  | { readonly ok: true; readonly frame: ConnectResponse["frame"] }
  | { readonly ok: false; readonly code: Code; readonly reason: string; readonly message: string };

/** What a worker is built from. */
export interface WorkerContext {
  readonly sched: Scheduler;
  readonly rng: Rng;
  readonly stats: CallsStats;
  readonly store: StoreClientContext;
  readonly messages: MemoryMessageStore;
  readonly broker: SimBroker;
  readonly clock: Clock;
  readonly timeouts: CallTimeouts;
  readonly claimLeaseMs: number;
  readonly tickMs: number;
  /** An unexpected error (the invariant checker). */
  readonly unexpected: (detail: string) => void;
}

const NEVER = new Promise<never>(() => {});

/** One life of a worker process: its Calls core, its edge (CallOperations), its hub. Gone for good when killed. */
export class WorkerLife {
  alive = true;
  readonly id: string;
  readonly calls: Calls;
  readonly ops: CallOperations;
  readonly hub: Hub;
  readonly links = new Set<CallLink>();
  ticking = false;

  constructor(id: string, ctx: WorkerContext) {
    this.id = id;
    const { clock, timeouts } = ctx;
    const random = createSeededRandom(ctx.rng.int(0x1_0000_0000));
    const ids = createMessageIdGenerator(clock, random);
    const messaging = new Messaging({ store: ctx.messages, events: discardEvents, clock, ids, limits: DEFAULT_LIMITS });
    const endpoint = ctx.broker.endpoint(this);
    this.hub = new Hub({ broker: endpoint, groupsOf: async () => [] });
    this.calls = new Calls({
      store: new WorkerCallStore(ctx.store, this, id),
      messages: ctx.messages,
      sendMessage: async (senderId, conversationId, clientMsgId, contentType, data) => {
        if (!this.alive) return NEVER;
        const r = await messaging.send(senderId, { target: { conversationId }, clientMsgId, contentType, data });
        if (!this.alive) return NEVER;
        return r.ok ? "stored" : "refused";
      },
      publisher: new ChannelCallEventPublisher(id, this.hub, endpoint),
      media: undefined,
      iceServers: () => ({ iceServers: [], expiresAtMs: 0 }),
      clock,
      ids,
      timeouts,
      liveRoomViewersMax: 0,
      workerId: id,
      claimLeaseMs: ctx.claimLeaseMs,
      onBackgroundError: (error, context) => {
        if (error instanceof StoreUnavailableError) ctx.stats.backgroundStoreFailures++;
        else ctx.unexpected(`${id}: ${context}: ${(error as Error).message}`);
      },
    });
    this.ops = new CallOperations(this.calls, clock, timeouts.keepaliveIntervalMs);
  }
}

/**
 * A worker process: lives one after another (a killed worker restarts as a new life with
 * nothing of the old one but the shared stores). Each life ticks the call deadlines every
 * `tickMs` as calls-runtime.ts does (one tick at a time), answers its connections' call frames
 * in order per connection through the production frame dispatch, and fans call events out
 * through its Hub and the broker.
 */
export class CallWorker {
  readonly index: number;
  life: WorkerLife | undefined;
  #lives = 0;
  readonly #ctx: WorkerContext;

  constructor(index: number, ctx: WorkerContext) {
    this.index = index;
    this.#ctx = ctx;
    this.start();
    ctx.sched.schedule(index * 7 % ctx.tickMs, () => this.#tick(), undefined);
  }

  get name(): string {
    return `w${this.index}`;
  }

  get up(): boolean {
    return this.life !== undefined;
  }

  /** Starts a new life (no-op while one runs). */
  start(): void {
    if (this.life !== undefined) return;
    this.#lives++;
    this.life = new WorkerLife(`${this.name}.${this.#lives}`, this.#ctx);
  }

  /** Kills the running life: its connections reset, its store calls in flight never continue, its claims lapse. */
  kill(): void {
    const life = this.life;
    if (life === undefined) return;
    this.#ctx.stats.kills++;
    life.alive = false;
    this.life = undefined;
    this.#ctx.broker.gone(life);
    for (const link of [...life.links]) link.serverReset();
  }

  /** Answers one request frame of `link` (in order per connection: the caller chains them). */
  async answer(life: WorkerLife, userId: string, frame: ConnectRequest["frame"]): Promise<Reply> {
    if (!life.alive) return NEVER;
    try {
      const out = await answerCallFrame(life.ops, userId, frame);
      if (!life.alive) return NEVER;
      return { ok: true, frame: out };
    } catch (error) {
      if (!life.alive) return NEVER;
      const e = toConnectError(error);
      if (e.code === Code.Internal) this.#ctx.unexpected(`${life.id}: ${frame.case} of ${userId} failed: ${String((error as Error).stack ?? error)}`);
      const detail = e.findDetails(ErrorDetailSchema)[0];
      const reason = detail === undefined ? "unspecified" : (ErrorReason[detail.reason] ?? String(detail.reason)).toLowerCase();
      return { ok: false, code: e.code, reason, message: e.rawMessage };
    }
  }

  #tick(): void {
    const { sched, tickMs, clock, stats } = this.#ctx;
    sched.schedule(tickMs, () => this.#tick(), undefined);
    const life = this.life;
    if (life === undefined || life.ticking) return;
    life.ticking = true;
    sched.touch();
    life.calls
      .tick(clock.nowMs())
      .then(
        (n) => void (stats.deadlineChanges += n),
        (error: unknown) => {
          if (error instanceof StoreUnavailableError) stats.tickStoreFailures++;
          else this.#ctx.unexpected(`${life.id}: tick failed: ${(error as Error).message}`);
        },
      )
      .finally(() => (life.ticking = false));
  }
}

/**
 * The broker between workers (the IPC relay or Redis pub/sub): a publication reaches each
 * other live life subscribed to its channel once, after a latency, in publish order per
 * destination. Best effort like the real ones; pushes to devices carry the faults.
 */
export class SimBroker {
  readonly #sched: Scheduler;
  readonly #latency: () => number;
  readonly #channels = new Map<string, Set<WorkerLife>>();
  /** Per (from, to): the arrival time of the last publication, to keep publish order. */
  readonly #lastAt = new Map<string, number>();

  constructor(sched: Scheduler, latency: () => number) {
    this.#sched = sched;
    this.#latency = latency;
  }

  /** A life's view of the broker (what its Hub and publisher take). */
  endpoint(life: WorkerLife): Pick<Broker, "subscribe" | "unsubscribe" | "publish"> {
    return {
      subscribe: async (channel) => {
        let set = this.#channels.get(channel);
        if (set === undefined) this.#channels.set(channel, (set = new Set()));
        set.add(life);
      },
      unsubscribe: (channel) => {
        this.#channels.get(channel)?.delete(life);
      },
      publish: (channel, publication) => this.#publish(life, channel, publication),
    };
  }

  /** A life died: it is subscribed to nothing. */
  gone(life: WorkerLife): void {
    for (const set of this.#channels.values()) set.delete(life);
  }

  #publish(from: WorkerLife, channel: string, publication: Publication): void {
    if (!from.alive) return;
    for (const to of this.#channels.get(channel) ?? []) {
      if (to === from) continue;
      const key = `${from.id}>${to.id}`;
      const at = Math.max(this.#sched.nowMs + this.#latency(), this.#lastAt.get(key) ?? 0);
      this.#lastAt.set(key, at);
      this.#sched.at(at, () => {
        if (to.alive) to.hub.handle(channel, publication);
      }, undefined);
    }
  }
}
