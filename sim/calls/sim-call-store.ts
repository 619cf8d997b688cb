import type { CallRecord } from "../../server/core/call-model.js";
import type { LiveRoomRecord } from "../../server/core/live-room.js";
import { StoreUnavailableError } from "../../server/core/result.js";
import type { CallStore, CreateCallOutcome } from "../../server/store/call-store.js";
import { MemoryCallStore } from "../../server/store/memory-call-store.js";
import type { Rng } from "../fault-plan.js";
import type { Scheduler } from "../scheduler.js";
import type { StoreWrite } from "./call-checkers.js";

/**
 * The one CallStore every worker shares: the production MemoryCallStore, with every
 * successful write recorded in the order the store applied it (the checkers' history).
 */
export class ObservedCallStore {
  readonly inner = new MemoryCallStore();
  readonly history: StoreWrite[] = [];
  readonly #sched: Scheduler;
  readonly #last = new Map<string, CallRecord>();

  constructor(sched: Scheduler) {
    this.#sched = sched;
  }

  /** The worker life that created each call. */
  readonly creators = new Map<string, string>();

  async create(call: CallRecord, slotUsers: readonly string[], by: string): Promise<CreateCallOutcome> {
    const out = await this.inner.create(call, slotUsers);
    if (out.kind === "created") {
      this.creators.set(call.callId, by);
      this.#record("create", call);
    }
    return out;
  }

  async update(call: CallRecord, expectedVersion: number, released: readonly string[]): Promise<boolean> {
    const ok = await this.inner.update(call, expectedVersion, released);
    if (ok) this.#record("update", call);
    return ok;
  }

  async delete(callId: string, expectedVersion: number): Promise<boolean> {
    const ok = await this.inner.delete(callId, expectedVersion);
    const last = this.#last.get(callId);
    if (ok && last !== undefined) this.#record("delete", last);
    return ok;
  }

  #record(kind: StoreWrite["kind"], call: CallRecord): void {
    const copy = structuredClone(call);
    this.#last.set(call.callId, copy);
    this.history.push({ atMs: this.#sched.nowMs, kind, call: copy });
  }
}

/** A worker process's life as its store client sees it. */
export interface StoreClientLife {
  readonly alive: boolean;
}

/** What a worker's store client needs from the run. */
export interface StoreClientContext {
  readonly sched: Scheduler;
  readonly rng: Rng;
  readonly shared: ObservedCallStore;
  readonly faults: { active: boolean; readonly latencyMs: number; readonly jitterMs: number; readonly failBeforeWrite: number; readonly timeoutAfterWrite: number };
  /** Told about every claim a worker gets (for the take-over figures). */
  readonly claimed: (claimer: string, calls: readonly CallRecord[]) => void;
}

/** A promise that never settles: the continuation of a dead process never runs. */
const NEVER = new Promise<never>(() => {});

/**
 * One worker's client of the shared store: every call takes a virtual round trip; a write
 * may fail before it is applied or be applied and then reported failed (StoreUnavailableError,
 * the ambiguous case). A call the worker sent before it died still reaches the store (the
 * request was on the wire), but nothing of the dead process continues after it; a dead
 * worker sends nothing.
 */
export class WorkerCallStore implements CallStore {
  readonly #ctx: StoreClientContext;
  readonly #life: StoreClientLife;
  readonly #id: string;

  constructor(ctx: StoreClientContext, life: StoreClientLife, id: string) {
    this.#ctx = ctx;
    this.#life = life;
    this.#id = id;
  }

  get(callId: string): Promise<CallRecord | undefined> {
    return this.#read(() => this.#ctx.shared.inner.get(callId));
  }

  findByClientCallId(callerId: string, clientCallId: string): Promise<CallRecord | undefined> {
    return this.#read(() => this.#ctx.shared.inner.findByClientCallId(callerId, clientCallId));
  }

  callOf(userId: string): Promise<string | undefined> {
    return this.#read(() => this.#ctx.shared.inner.callOf(userId));
  }

  create(call: CallRecord, slotUsers: readonly string[]): Promise<CreateCallOutcome> {
    return this.#write(() => this.#ctx.shared.create(call, slotUsers, this.#id));
  }

  alias(callerId: string, clientCallId: string, callId: string): Promise<string> {
    return this.#write(() => this.#ctx.shared.inner.alias(callerId, clientCallId, callId));
  }

  update(call: CallRecord, expectedVersion: number, released: readonly string[]): Promise<boolean> {
    return this.#write(() => this.#ctx.shared.update(call, expectedVersion, released));
  }

  async claimDue(nowMs: number, limit: number, claimerId: string, leaseMs: number): Promise<CallRecord[]> {
    const due = await this.#read(() => this.#ctx.shared.inner.claimDue(nowMs, limit, claimerId, leaseMs));
    this.#ctx.claimed(claimerId, due);
    return due;
  }

  delete(callId: string, expectedVersion: number): Promise<boolean> {
    return this.#write(() => this.#ctx.shared.delete(callId, expectedVersion));
  }

  getRoom(roomId: string): Promise<LiveRoomRecord | undefined> {
    return this.#read(() => this.#ctx.shared.inner.getRoom(roomId));
  }

  putRoom(room: LiveRoomRecord, expectedVersion: number): Promise<boolean> {
    return this.#write(() => this.#ctx.shared.inner.putRoom(room, expectedVersion));
  }

  deleteRoom(roomId: string): Promise<void> {
    return this.#write(() => this.#ctx.shared.inner.deleteRoom(roomId));
  }

  async close(): Promise<void> {}

  #halfTrip(): Promise<void> {
    const f = this.#ctx.faults;
    const ms = Math.floor((f.latencyMs + this.#ctx.rng.exponential(f.jitterMs)) / 2);
    return this.#ctx.sched.delay(ms);
  }

  async #read<T>(op: () => Promise<T>): Promise<T> {
    if (!this.#life.alive) return NEVER;
    await this.#halfTrip();
    const out = await op();
    await this.#halfTrip();
    if (!this.#life.alive) return NEVER;
    return out;
  }

  async #write<T>(op: () => Promise<T>): Promise<T> {
    if (!this.#life.alive) return NEVER;
    const f = this.#ctx.faults;
    const rng = this.#ctx.rng;
    const fate = !f.active ? "applied" : rng.chance(f.failBeforeWrite) ? "failed-before" : rng.chance(f.timeoutAfterWrite) ? "timeout-after" : "applied";
    await this.#halfTrip();
    if (fate === "failed-before") {
      await this.#halfTrip();
      if (!this.#life.alive) return NEVER;
      throw new StoreUnavailableError(`call store write of ${this.#id} failed (simulated)`);
    }
    const out = await op();
    await this.#halfTrip();
    if (!this.#life.alive) return NEVER;
    if (fate === "timeout-after") throw new StoreUnavailableError(`call store write of ${this.#id} timed out after it was applied (simulated)`);
    return out;
  }
}
