import { Redis, ReplyError } from "ioredis";
import type { CallRecord } from "../core/call-model.js";
import type { LiveRoomRecord } from "../core/live-room.js";
import { StoreUnavailableError } from "../core/result.js";
import { indexedDeadline, parseCall, serializeCall, type CallStore, type CreateCallOutcome } from "./call-store.js";

/** Options of `openRedisCallStore`. */
export interface RedisCallStoreOptions {
  /** redis://host:port[/db] */
  readonly url: string;
  /** Prefix of every key. Default "im:". */
  readonly keyPrefix?: string;
  /** How long to wait for the first connection. Default 2 s. */
  readonly connectWaitMs?: number;
}

// Every script below runs atomically in Redis: each is one step of the contract.
const CREATE = `
local existing = redis.call('GET', KEYS[2])
if existing then return {'dup', existing} end
local busy = {'busy'}
for i = 5, #KEYS do
  local holder = redis.call('GET', KEYS[i])
  if holder then table.insert(busy, ARGV[i]); table.insert(busy, holder) end
end
if #busy > 1 then return busy end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'r', ARGV[3])
redis.call('SET', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], KEYS[2])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
for i = 5, #KEYS do redis.call('SET', KEYS[i], ARGV[1]) end
return {'created'}
`;

const ALIAS = `
local existing = redis.call('GET', KEYS[1])
if existing then return existing end
if redis.call('EXISTS', KEYS[3]) == 0 then return ARGV[1] end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], KEYS[1])
return ARGV[1]
`;

const UPDATE = `
local v = redis.call('HGET', KEYS[1], 'v')
if (not v) or v ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[3], 'r', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
redis.call('DEL', KEYS[3])
for i = 4, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
end
return 1
`;

const CLAIM = `
local limit = tonumber(ARGV[2])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, limit * 10 + 100)
local out = {}
for _, id in ipairs(ids) do
  if #out >= limit then break end
  local claim = ARGV[5] .. 'call-claim:' .. id
  local until_ms = redis.call('GET', claim)
  if (not until_ms) or tonumber(until_ms) <= tonumber(ARGV[1]) then
    redis.call('SET', claim, tonumber(ARGV[1]) + tonumber(ARGV[4]), 'PX', tonumber(ARGV[4]) * 2 + 1000)
    local record = redis.call('HGET', ARGV[5] .. 'call:' .. id, 'r')
    if record then table.insert(out, record) else redis.call('ZREM', KEYS[1], id) end
  end
end
return out
`;

const DELETE = `
local v = redis.call('HGET', KEYS[1], 'v')
if (not v) or v ~= ARGV[2] then return 0 end
for _, k in ipairs(redis.call('SMEMBERS', KEYS[2])) do redis.call('DEL', k) end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[4])
redis.call('ZREM', KEYS[3], ARGV[1])
for i = 5, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
end
return 1
`;

const PUT_ROOM = `
local v = redis.call('HGET', KEYS[1], 'v')
if ARGV[1] == '0' then
  if v then return 0 end
elseif v ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'r', ARGV[3])
return 1
`;

interface Scripts {
  imCallCreate(n: number, ...args: string[]): Promise<string[]>;
  imCallAlias(n: number, ...args: string[]): Promise<string>;
  imCallUpdate(n: number, ...args: string[]): Promise<number>;
  imCallClaim(n: number, ...args: string[]): Promise<string[]>;
  imCallDelete(n: number, ...args: string[]): Promise<number>;
  imRoomPut(n: number, ...args: string[]): Promise<number>;
}

/**
 * CallStore on Redis, for several nodes: each operation is one Lua script (atomic), so
 * compare-and-set transitions, slot claims and deadline claims hold across every process.
 * Deadlines are a sorted set; a claim is a key holding the claim's end on the workers' clock
 * (the clock deadlines are on; Redis expires the key itself later), so of the workers ticking
 * at once exactly one gets each due call, and another takes it over when the lease of a
 * worker that died runs out. Not for Redis Cluster (scripts touch several keys).
 * Durability is Redis's (AOF or replication as configured there).
 */
export class RedisCallStore implements CallStore {
  readonly #redis: Redis;
  readonly #s: Scripts;
  readonly #p: string;
  #closed = false;

  /** Use `openRedisCallStore`. */
  constructor(options: RedisCallStoreOptions) {
    this.#p = options.keyPrefix ?? "im:";
    this.#redis = new Redis(options.url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: 2000,
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 10), 2000),
      connectionName: "microchat:calls",
    });
    this.#redis.on("error", () => {});
    const scripts: [keyof Scripts, string][] = [
      ["imCallCreate", CREATE],
      ["imCallAlias", ALIAS],
      ["imCallUpdate", UPDATE],
      ["imCallClaim", CLAIM],
      ["imCallDelete", DELETE],
      ["imRoomPut", PUT_ROOM],
    ];
    for (const [name, lua] of scripts) this.#redis.defineCommand(name, { lua });
    this.#s = this.#redis as unknown as Scripts;
  }

  /** Connects, waiting up to `connectWaitMs`; throws StoreUnavailableError when Redis does not answer. */
  async start(connectWaitMs: number): Promise<void> {
    try {
      await Promise.race([
        this.#redis.connect(),
        new Promise((_, reject) => setTimeout(() => reject(new Error(`no answer from Redis within ${connectWaitMs} ms`)), connectWaitMs).unref()),
      ]);
    } catch (error) {
      this.#redis.disconnect();
      throw new StoreUnavailableError(`redis call store unavailable: ${(error as Error).message}`, { cause: error });
    }
  }

  get(callId: string): Promise<CallRecord | undefined> {
    return this.#do(async () => {
      const r = await this.#redis.hget(this.#call(callId), "r");
      return r === null ? undefined : parseCall(r);
    });
  }

  findByClientCallId(callerId: string, clientCallId: string): Promise<CallRecord | undefined> {
    return this.#do(async () => {
      const id = await this.#redis.get(this.#key(callerId, clientCallId));
      return id === null ? undefined : this.get(id);
    });
  }

  callOf(userId: string): Promise<string | undefined> {
    return this.#do(async () => (await this.#redis.get(this.#slot(userId))) ?? undefined);
  }

  create(call: CallRecord, slotUsers: readonly string[]): Promise<CreateCallOutcome> {
    return this.#do(async (): Promise<CreateCallOutcome> => {
      const keys = [this.#call(call.callId), this.#key(call.callerId, call.clientCallId), this.#keys(call.callId), this.#deadlines(), ...slotUsers.map((u) => this.#slot(u))];
      const args = [call.callId, String(call.version), serializeCall(call), String(indexedDeadline(call)), ...slotUsers];
      const out = await this.#s.imCallCreate(keys.length, ...keys, ...args);
      if (out[0] === "created") return { kind: "created" };
      if (out[0] === "dup") {
        const existing = await this.get(out[1]!);
        if (existing === undefined) throw new StoreUnavailableError(`call ${out[1]} vanished during create; retry`);
        return { kind: "duplicate", call: existing };
      }
      const busy = new Map<string, string>();
      for (let i = 1; i + 1 < out.length; i += 2) busy.set(out[i]!, out[i + 1]!);
      return { kind: "busy", busy };
    });
  }

  alias(callerId: string, clientCallId: string, callId: string): Promise<string> {
    return this.#do(() => this.#s.imCallAlias(3, this.#key(callerId, clientCallId), this.#keys(callId), this.#call(callId), callId));
  }

  update(call: CallRecord, expectedVersion: number, released: readonly string[]): Promise<boolean> {
    return this.#do(async () => {
      const keys = [this.#call(call.callId), this.#deadlines(), this.#claim(call.callId), ...released.map((u) => this.#slot(u))];
      const args = [call.callId, String(expectedVersion), String(call.version), serializeCall(call), String(indexedDeadline(call))];
      return (await this.#s.imCallUpdate(keys.length, ...keys, ...args)) === 1;
    });
  }

  claimDue(nowMs: number, limit: number, claimerId: string, leaseMs: number): Promise<CallRecord[]> {
    return this.#do(async () => {
      const out = await this.#s.imCallClaim(1, this.#deadlines(), String(nowMs), String(Math.max(0, Math.floor(limit))), claimerId, String(Math.max(1, leaseMs)), this.#p);
      return out.map(parseCall);
    });
  }

  delete(callId: string, expectedVersion: number): Promise<boolean> {
    return this.#do(async () => {
      const call = await this.get(callId);
      if (call === undefined || call.version !== expectedVersion) return false;
      const keys = [this.#call(callId), this.#keys(callId), this.#deadlines(), this.#claim(callId), ...call.parties.map((p) => this.#slot(p.userId))];
      return (await this.#s.imCallDelete(keys.length, ...keys, callId, String(expectedVersion))) === 1;
    });
  }

  getRoom(roomId: string): Promise<LiveRoomRecord | undefined> {
    return this.#do(async () => {
      const r = await this.#redis.hget(this.#room(roomId), "r");
      return r === null ? undefined : (JSON.parse(r) as LiveRoomRecord);
    });
  }

  putRoom(room: LiveRoomRecord, expectedVersion: number): Promise<boolean> {
    return this.#do(async () => (await this.#s.imRoomPut(1, this.#room(room.roomId), String(expectedVersion), String(room.version), JSON.stringify(room))) === 1);
  }

  deleteRoom(roomId: string): Promise<void> {
    return this.#do(async () => void (await this.#redis.del(this.#room(roomId))));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#redis.disconnect();
  }

  /** Script errors are bugs and pass through; every other failure (connection, timeout) is StoreUnavailableError. */
  async #do<T>(body: () => Promise<T>): Promise<T> {
    if (this.#closed) throw new Error("call store is closed");
    try {
      return await body();
    } catch (error) {
      if (error instanceof StoreUnavailableError || error instanceof (ReplyError as typeof Error)) throw error;
      throw new StoreUnavailableError(`redis call store unavailable: ${(error as Error).message}`, { cause: error });
    }
  }

  #call(id: string): string {
    return `${this.#p}call:${id}`;
  }
  #keys(id: string): string {
    return `${this.#p}call-keys:${id}`;
  }
  #claim(id: string): string {
    return `${this.#p}call-claim:${id}`;
  }
  #key(callerId: string, clientCallId: string): string {
    return `${this.#p}call-key:${callerId}:${clientCallId}`;
  }
  #slot(userId: string): string {
    return `${this.#p}call-slot:${userId}`;
  }
  #deadlines(): string {
    return `${this.#p}call-deadlines`;
  }
  #room(id: string): string {
    return `${this.#p}live-room:${id}`;
  }
}

/** Creates a RedisCallStore and connects it. */
export async function openRedisCallStore(options: RedisCallStoreOptions): Promise<RedisCallStore> {
  const store = new RedisCallStore(options);
  await store.start(options.connectWaitMs ?? 2000);
  return store;
}
