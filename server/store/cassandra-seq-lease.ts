import type { Clock } from "../core/clock.js";
import { StoreUnavailableError } from "../core/result.js";
import type { CassandraSession, Row } from "./cassandra-session.js";

/** Timing and sizes of sequence ownership. */
export interface SeqLeaseOptions {
  /**
   * This store instance's id, unique among every store instance that writes the keyspace, and
   * never reused while an earlier holder of it might still run: a row owned by this id is
   * taken over at once, without waiting for its lease.
   */
  readonly processId: string;
  /** How long an owner's lease lasts after each renewal. Default 5000. */
  readonly leaseMs?: number;
  /** The largest clock difference between gateway processes the protocol tolerates. Default 1000. */
  readonly clockSkewMaxMs?: number;
  /** Seqs reserved per lightweight transaction. Default 100. */
  readonly blockSize?: number;
  /** How long an append waits for another process to hand a conversation over. Default lease + skew + 2 s. */
  readonly acquireTimeoutMs?: number;
  /** How long a conversation released to a waiting process is kept for it. Default 500. */
  readonly handoffMs?: number;
}

/** A lease as its owner holds it. Mutable fields move only through SeqLeases and the log. */
export interface Lease {
  readonly conversationId: string;
  /** The row's compare-and-set token, as of this owner's last successful change. */
  version: bigint;
  /** Fencing generation: grows by one at every takeover that was not a clean handover. */
  readonly generation: number;
  /** The owner may acknowledge an append only if it completed before this (owner's clock). */
  leaseUntilMs: number;
  /** The highest seq this owner may assign (the reserved block's end). */
  blockEnd: number;
  /** The seq the next append gets. */
  nextSeq: number;
  /**
   * The last seq this owner assigned (before its first, the log's last message): the next
   * append's prevSeq. With appends pipelined it may be ahead of what is acknowledged; the
   * owner releases cleanly only with nothing in flight, when the two are equal.
   */
  lastSeq: number;
}

/** An acquired lease and what the new owner must do before appending. */
export interface Acquired {
  readonly lease: Lease;
  /**
   * Undefined for a clean handover: `lease.lastSeq` is exact and nothing is in flight.
   * Otherwise the previous owner may have died mid-append: the log must recover (find the
   * last written message, fence everything above it up to `previousBlockEnd`) and then set
   * lease.lastSeq.
   */
  readonly recover: { readonly previousBlockEnd: number } | undefined;
}

const POLL_MS_MIN = 5;
const POLL_MS_MAX = 50;
const WANT_REFRESH_MS = 100;
/** A want older than this (plus the skew bound) is from a process that stopped waiting. */
const WANT_FRESH_MS = 1000;

/**
 * Sequence ownership of conversation logs, WeChat seqsvr / OpenIM style: one row per
 * conversation in seq_leases, changed only by lightweight transactions (compare-and-set on
 * `version`). One process at a time owns a conversation: it appends to the log, and assigns
 * seqs from a block it reserved (block_end); reserving the next block is one more LWT per
 * blockSize appends. Ownership moves in three ways:
 *
 * - Clean handover. The owner releases (LWT) when it has been idle for a while, when another
 *   process wants the conversation (seq_wants), or on close. It releases only with no append in
 *   flight and none failed, and records clean_seq = its last seq. The next owner continues at
 *   clean_seq + 1 with prevSeq = clean_seq: no seq is skipped and nothing needs recovery.
 * - Takeover. The owner crashed, hung, lost Cassandra or had a write fail (then it stops using
 *   the lease and releases it unclean). Another process (or the same one) may take the row when
 *   it is released unclean, or when lease_until_ms + clockSkewMaxMs has passed on its clock.
 *   The taker bumps the generation and starts after block_end, so it never reuses a seq the
 *   previous owner might have written; the log then recovers (cassandra-conversation-log.ts).
 * - Renewal and block extension keep the owner's row current; if the compare-and-set fails,
 *   someone took over and this owner stops.
 *
 * The lease time bounds only what an owner may *acknowledge*: an append is acknowledged only
 * if all its writes completed before lease_until_ms on the owner's clock, which is before any
 * taker's clock passes lease_until_ms + clockSkewMaxMs, so a taker's reads (at a quorum) see
 * every acknowledged message. Writes of a deposed owner that land later are not trusted to
 * time: the generation fences them (see the log).
 */
export class SeqLeases {
  readonly #session: CassandraSession;
  readonly #clock: Clock;
  readonly #id: string;
  readonly leaseMs: number;
  readonly #skewMs: number;
  readonly #blockSize: number;
  readonly #acquireTimeoutMs: number;
  readonly #handoffMs: number;
  readonly #q: ReturnType<typeof statements>;

  constructor(session: CassandraSession, keyspace: string, clock: Clock, options: SeqLeaseOptions) {
    this.#session = session;
    this.#clock = clock;
    this.#id = options.processId;
    this.leaseMs = options.leaseMs ?? 5_000;
    this.#skewMs = options.clockSkewMaxMs ?? 1_000;
    this.#blockSize = options.blockSize ?? 100;
    this.#acquireTimeoutMs = options.acquireTimeoutMs ?? this.leaseMs + this.#skewMs + 2_000;
    this.#handoffMs = options.handoffMs ?? 500;
    this.#q = statements(keyspace);
  }

  /** This process's id in seq_leases.owner. */
  get processId(): string {
    return this.#id;
  }

  /**
   * Becomes the owner of the conversation, waiting (bounded by acquireTimeoutMs) while another
   * live process owns it and asking that process to hand it over. Rejects with
   * StoreUnavailableError when the owner does not let go in time.
   */
  async acquire(conversationId: string): Promise<Acquired> {
    const deadline = this.#clock.nowMs() + this.#acquireTimeoutMs;
    let pollMs = POLL_MS_MIN;
    let wantedAt = -Infinity;
    for (let attempt = 0; ; attempt++) {
      const now = this.#clock.nowMs();
      if (attempt > 0 && now >= deadline) {
        throw new StoreUnavailableError(`conversation ${conversationId}: its owner did not hand it over within ${this.#acquireTimeoutMs} ms`);
      }
      const row = (await this.#session.read(this.#q.read, [conversationId])).first() ?? undefined;
      if (row === undefined) {
        const lease = this.#fresh(conversationId, 1n, 1, 1, 0, now);
        const created = await this.#session.cas(this.#q.create, [conversationId, this.#id, BigInt(lease.leaseUntilMs), BigInt(lease.blockEnd)]);
        if (created.applied) return { lease, recover: undefined };
        continue;
      }
      const current = parseRow(row);
      const free = current.owner === "" && (current.handoffTo === "" || current.handoffTo === this.#id || now > current.handoffUntilMs + this.#skewMs);
      const expired = current.owner !== "" && now > current.leaseUntilMs + this.#skewMs;
      // Our own row without a live local lease: that lease was given up after a failure and
      // will never acknowledge anything again, so there is no need to wait for it to expire.
      const ours = current.owner === this.#id;
      if (free || expired || ours) {
        const clean = free && current.cleanSeq >= 0;
        const generation = clean ? current.generation : current.generation + 1;
        const nextSeq = clean ? current.cleanSeq + 1 : current.blockEnd + 1;
        const lease = this.#fresh(conversationId, current.version + 1n, generation, nextSeq, clean ? current.cleanSeq : -1, now);
        lease.blockEnd = Math.max(current.blockEnd, lease.blockEnd);
        const taken = await this.#session.cas(this.#q.take, [
          lease.version, BigInt(generation), this.#id, BigInt(lease.leaseUntilMs), BigInt(lease.blockEnd), conversationId, current.version,
        ]);
        if (taken.applied) {
          if (wantedAt > -Infinity) await this.#session.write(this.#q.want, ["", 0n, conversationId], true).catch(() => {});
          return { lease, recover: clean ? undefined : { previousBlockEnd: current.blockEnd } };
        }
        continue;
      }
      if (now - wantedAt >= WANT_REFRESH_MS) {
        wantedAt = now;
        await this.#session.write(this.#q.want, [this.#id, BigInt(now), conversationId], true);
      }
      await sleep(pollMs);
      pollMs = Math.min(pollMs * 2, POLL_MS_MAX);
    }
  }

  /**
   * Extends the lease (and the block to at least `blockEndMin`). False when the row changed
   * under us: another process took over and this lease is dead.
   */
  async renew(lease: Lease, blockEndMin = lease.blockEnd): Promise<boolean> {
    const now = this.#clock.nowMs();
    const blockEnd = blockEndMin > lease.blockEnd ? blockEndMin + this.#blockSize - 1 : lease.blockEnd;
    const version = lease.version + 1n;
    const result = await this.#session.cas(this.#q.renew, [version, BigInt(now + this.leaseMs), BigInt(blockEnd), lease.conversationId, lease.version]);
    if (!result.applied) return false;
    lease.version = version;
    lease.leaseUntilMs = now + this.leaseMs;
    lease.blockEnd = blockEnd;
    return true;
  }

  /** Whether the lease should be renewed before the next append. */
  needsRenewal(lease: Lease): boolean {
    return this.#clock.nowMs() > lease.leaseUntilMs - this.leaseMs / 2;
  }

  /**
   * Gives the conversation up. `clean`: nothing is in flight and nothing failed, so the next
   * owner may continue at lastSeq + 1 without recovery. `handoffTo` keeps it for a waiting
   * process for a moment. Best effort: if it fails, the lease simply expires.
   */
  async release(lease: Lease, clean: boolean, handoffTo = ""): Promise<void> {
    const now = this.#clock.nowMs();
    await this.#session.cas(this.#q.release, [
      lease.version + 1n,
      BigInt(clean ? lease.lastSeq : -1),
      handoffTo,
      BigInt(handoffTo === "" ? 0 : now + this.#handoffMs),
      lease.conversationId,
      lease.version,
    ]);
  }

  /** The process that recently asked for this conversation, if it is not this one. */
  async wantedBy(conversationId: string): Promise<string | undefined> {
    const row = (await this.#session.read(this.#q.readWant, [conversationId])).first();
    if (row === null) return undefined;
    const by = String(row.get("wanted_by") ?? "");
    const at = Number(row.get("wanted_at_ms") ?? 0);
    const fresh = Math.abs(this.#clock.nowMs() - at) <= WANT_FRESH_MS + this.#skewMs;
    return by !== "" && by !== this.#id && fresh ? by : undefined;
  }

  #fresh(conversationId: string, version: bigint, generation: number, nextSeq: number, lastSeq: number, now: number): Lease {
    return {
      conversationId,
      version,
      generation,
      leaseUntilMs: now + this.leaseMs,
      blockEnd: nextSeq + this.#blockSize - 1,
      nextSeq,
      lastSeq: lastSeq < 0 ? 0 : lastSeq,
    };
  }
}

interface LeaseRow {
  readonly version: bigint;
  readonly generation: number;
  readonly owner: string;
  readonly leaseUntilMs: number;
  readonly blockEnd: number;
  readonly cleanSeq: number;
  readonly handoffTo: string;
  readonly handoffUntilMs: number;
}

function parseRow(row: Row): LeaseRow {
  return {
    version: BigInt(row.get("version") as bigint),
    generation: Number(row.get("generation")),
    owner: String(row.get("owner") ?? ""),
    leaseUntilMs: Number(row.get("lease_until_ms") ?? 0),
    blockEnd: Number(row.get("block_end") ?? 0),
    cleanSeq: Number(row.get("clean_seq") ?? -1),
    handoffTo: String(row.get("handoff_to") ?? ""),
    handoffUntilMs: Number(row.get("handoff_until_ms") ?? 0),
  };
}

function statements(ks: string) {
  return {
    read: `SELECT version, generation, owner, lease_until_ms, block_end, clean_seq, handoff_to, handoff_until_ms FROM ${ks}.seq_leases WHERE conversation_id = ?`,
    create: `INSERT INTO ${ks}.seq_leases (conversation_id, version, generation, owner, lease_until_ms, block_end, clean_seq, handoff_to, handoff_until_ms)
      VALUES (?, 1, 1, ?, ?, ?, -1, '', 0) IF NOT EXISTS`,
    take: `UPDATE ${ks}.seq_leases SET version = ?, generation = ?, owner = ?, lease_until_ms = ?, block_end = ?, clean_seq = -1, handoff_to = '',
      handoff_until_ms = 0 WHERE conversation_id = ? IF version = ?`,
    renew: `UPDATE ${ks}.seq_leases SET version = ?, lease_until_ms = ?, block_end = ? WHERE conversation_id = ? IF version = ?`,
    release: `UPDATE ${ks}.seq_leases SET version = ?, owner = '', lease_until_ms = 0, clean_seq = ?, handoff_to = ?, handoff_until_ms = ?
      WHERE conversation_id = ? IF version = ?`,
    want: `UPDATE ${ks}.seq_wants SET wanted_by = ?, wanted_at_ms = ? WHERE conversation_id = ?`,
    readWant: `SELECT wanted_by, wanted_at_ms FROM ${ks}.seq_wants WHERE conversation_id = ?`,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
