import type { CallRecord } from "../core/call-model.js";
import type { LiveRoomRecord } from "../core/live-room.js";
import type { CallStore, CreateCallOutcome } from "./call-store.js";

interface Entry {
  call: CallRecord;
  claimedUntilMs: number;
  keys: Set<string>;
}

/**
 * CallStore in this process's memory: for tests, the simulator and the memory message store.
 * Not durable, not shared between processes. Each method runs to completion without
 * awaiting, which makes every operation atomic.
 */
export class MemoryCallStore implements CallStore {
  readonly #calls = new Map<string, Entry>();
  readonly #keys = new Map<string, string>();
  readonly #slots = new Map<string, string>();
  readonly #rooms = new Map<string, LiveRoomRecord>();
  #closed = false;

  async get(callId: string): Promise<CallRecord | undefined> {
    this.#check();
    return this.#calls.get(callId)?.call;
  }

  async findByClientCallId(callerId: string, clientCallId: string): Promise<CallRecord | undefined> {
    this.#check();
    const id = this.#keys.get(key(callerId, clientCallId));
    return id === undefined ? undefined : this.#calls.get(id)?.call;
  }

  async callOf(userId: string): Promise<string | undefined> {
    this.#check();
    return this.#slots.get(userId);
  }

  async create(call: CallRecord, slotUsers: readonly string[]): Promise<CreateCallOutcome> {
    this.#check();
    const k = key(call.callerId, call.clientCallId);
    const known = this.#keys.get(k);
    if (known !== undefined) {
      const existing = this.#calls.get(known);
      if (existing !== undefined) return { kind: "duplicate", call: existing.call };
    }
    const busy = new Map<string, string>();
    for (const user of slotUsers) {
      const holder = this.#slots.get(user);
      if (holder !== undefined) busy.set(user, holder);
    }
    if (busy.size > 0) return { kind: "busy", busy };
    this.#calls.set(call.callId, { call: structuredClone(call), claimedUntilMs: 0, keys: new Set([k]) });
    this.#keys.set(k, call.callId);
    for (const user of slotUsers) this.#slots.set(user, call.callId);
    return { kind: "created" };
  }

  async alias(callerId: string, clientCallId: string, callId: string): Promise<string> {
    this.#check();
    const k = key(callerId, clientCallId);
    const known = this.#keys.get(k);
    if (known !== undefined) return known;
    const entry = this.#calls.get(callId);
    if (entry === undefined) return callId;
    this.#keys.set(k, callId);
    entry.keys.add(k);
    return callId;
  }

  async update(call: CallRecord, expectedVersion: number, released: readonly string[]): Promise<boolean> {
    this.#check();
    const entry = this.#calls.get(call.callId);
    if (entry === undefined || entry.call.version !== expectedVersion) return false;
    entry.call = structuredClone(call);
    entry.claimedUntilMs = 0;
    for (const user of released) if (this.#slots.get(user) === call.callId) this.#slots.delete(user);
    return true;
  }

  async claimDue(nowMs: number, limit: number, _claimerId: string, leaseMs: number): Promise<CallRecord[]> {
    this.#check();
    const due = [...this.#calls.values()]
      .filter((e) => e.call.deadlineMs <= nowMs && e.claimedUntilMs <= nowMs)
      .sort((a, b) => a.call.deadlineMs - b.call.deadlineMs)
      .slice(0, limit);
    for (const e of due) e.claimedUntilMs = nowMs + leaseMs;
    return due.map((e) => e.call);
  }

  async delete(callId: string, expectedVersion: number): Promise<boolean> {
    this.#check();
    const entry = this.#calls.get(callId);
    if (entry === undefined || entry.call.version !== expectedVersion) return false;
    this.#calls.delete(callId);
    for (const k of entry.keys) this.#keys.delete(k);
    for (const [user, holder] of this.#slots) if (holder === callId) this.#slots.delete(user);
    return true;
  }

  async getRoom(roomId: string): Promise<LiveRoomRecord | undefined> {
    this.#check();
    return this.#rooms.get(roomId);
  }

  async putRoom(room: LiveRoomRecord, expectedVersion: number): Promise<boolean> {
    this.#check();
    const existing = this.#rooms.get(room.roomId);
    if ((existing?.version ?? 0) !== expectedVersion) return false;
    this.#rooms.set(room.roomId, structuredClone(room));
    return true;
  }

  async deleteRoom(roomId: string): Promise<void> {
    this.#check();
    this.#rooms.delete(roomId);
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  #check(): void {
    if (this.#closed) throw new Error("call store is closed");
  }
}

function key(callerId: string, clientCallId: string): string {
  return `${callerId}\u0000${clientCallId}`;
}
