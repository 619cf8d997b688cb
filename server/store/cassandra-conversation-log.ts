import type { Clock } from "../core/clock.js";
import { toPreview as cutPreview, type ConversationKind, type StoredMessage } from "../core/model.js";
import { StoreUnavailableError } from "../core/result.js";
import type { AppendResult, NewMessage } from "./message-store.js";
import {
  bucketOf,
  fenceTimestamp,
  HEAD_ASSIGNMENTS,
  HEAD_COLUMNS,
  headParams,
  kindOf,
  MESSAGE_COLUMNS,
  messageParams,
  messageTimestamp,
  num,
  reassertTimestamp,
  str,
  toMessage,
  toPreview,
} from "./cassandra-rows.js";
import type { CassandraSession } from "./cassandra-session.js";
import type { Lease, SeqLeases } from "./cassandra-seq-lease.js";

/** Tuning of the append path. */
export interface ConversationLogOptions {
  /** Seqs per log partition (SEQS_PER_BUCKET). */
  readonly seqsPerBucket: number;
  /** An idle owner keeps a conversation this long before releasing it. Default 250. */
  readonly holdIdleMs?: number;
  /** How often an owner looks for another process waiting for its conversation. Default 50. */
  readonly wantCheckMs?: number;
  /** Appends queued per conversation in this process before StoreUnavailableError. Default 1000. */
  readonly queueMax?: number;
}

interface ConversationInfo {
  readonly kind: ConversationKind;
  /** The two participants of a direct conversation; empty for groups. */
  readonly participants: readonly string[];
}

/** Per conversation this process appends to: the serial queue and, while owned, the lease. */
interface Slot {
  readonly id: string;
  info: ConversationInfo | undefined;
  lease: Lease | undefined;
  chain: Promise<unknown>;
  queued: number;
  idleTimer: NodeJS.Timeout | undefined;
  lastWantCheckMs: number;
  /** Another process asked for the conversation: hand it over after the current append. */
  handoffTo: string;
}

/** Most rows a recovery reads above the head; more would mean a broken invariant. */
const RECOVERY_ROWS_MAX = 10_000;

/**
 * Appends to conversation logs in Cassandra, one owner process per conversation at a time
 * (SeqLeases), serially within that process.
 *
 * The append of seq s by the owner of generation g, after a dedup lookup:
 *   1. the message row (seq s, prev_seq = the previous message's seq) and the dedup row,
 *   2. then the head (conversation statics) and, for a direct conversation, both
 *      participants' session rows,
 * all with write timestamp T(g, s) = (g << 40) + 1 + s (messageTimestamp); then it is
 * acknowledged only if it completed before the lease's end (SeqLeases). Readers never look
 * above the head, and the head moves only after the message it names is written, so no
 * reader waits for a message that is not there.
 *
 * Why prevSeq stays exact (every message visible to a reader names the message visible
 * right before it), also when seqs are skipped:
 *
 * - Within one ownership appends run one at a time and the owner knows the last seq it wrote,
 *   so prevSeq is that seq. A seq is only ever skipped, never reused: reserved seqs that are
 *   never written just do not appear, and nothing points at them.
 * - Clean handover: the old owner released with nothing in flight and nothing failed, and
 *   wrote clean_seq = its last seq in the same compare-and-set. The next owner's first prevSeq
 *   is clean_seq: exact.
 * - Takeover (crash, lost lease, failed write). The new owner has generation g' greater than
 *   every earlier one and starts at M + 1, where M = block_end is above every seq an earlier
 *   owner could write. Before its first append it recovers:
 *     a. Freeze: read the head and the direct-session heads and write the same values back at
 *        fenceTimestamp(g'). Every head write of an earlier generation that has not landed yet
 *        now loses (its timestamp is lower), so the visible head H can no longer move except
 *        by this owner. A head write of the old owner that did land first names a message
 *        written before it (step 2 follows step 1), so that message is in the log.
 *     b. Tail: read the log above H up to M. The old owner wrote one message at a time, so
 *        this finds at most the one it was writing; L = the highest seq found, or H. Every
 *        message acknowledged by the old owner is <= L: it completed before the lease ran out,
 *        so before this owner took the row, and quorum reads see it.
 *     c. Fence: delete (L, M] in every bucket it spans with a range tombstone at
 *        fenceTimestamp(g'). A write of an old owner that is still on its way (a paused
 *        process, a delayed request, a hint) has a lower timestamp: whenever it arrives, it is
 *        shadowed, and it was never acknowledged. Nothing in (L, M] was ever visible either:
 *        it was above the frozen head.
 *     d. Re-assert: rewrite the dedup rows of the messages found above H, and the head and
 *        session heads to message L, at reassertTimestamp(g') (between the fence and any
 *        message of g'). A crash between steps 1 and 2 is repaired here: the message the
 *        client was never told about becomes visible, and its retry finds it as a duplicate.
 *   The first append of g' then has prevSeq = L: exact, and every seq in (L, M] stays empty.
 *   If the taker itself dies during recovery, the next one repeats it with a higher
 *   generation over a range that includes this one's.
 * - A dedup row is trusted only if the message row it names exists: a fenced write may have
 *   left a dedup row behind, and the client's retry must then append anew.
 *
 * A crashed owner leaves its conversations owned until lease + skew passes; appends through
 * other processes wait for that (bounded), then take over. No client waits forever: an append
 * either completes, or fails with StoreUnavailableError and the client retries it.
 */
export class CassandraConversationLog {
  readonly #session: CassandraSession;
  readonly #leases: SeqLeases;
  readonly #clock: Clock;
  readonly #seqsPerBucket: number;
  readonly #holdIdleMs: number;
  readonly #wantCheckMs: number;
  readonly #queueMax: number;
  readonly #q: ReturnType<typeof statements>;
  readonly #slots = new Map<string, Slot>();
  #closing = false;

  constructor(session: CassandraSession, keyspace: string, leases: SeqLeases, clock: Clock, options: ConversationLogOptions) {
    this.#session = session;
    this.#leases = leases;
    this.#clock = clock;
    this.#seqsPerBucket = options.seqsPerBucket;
    this.#holdIdleMs = options.holdIdleMs ?? 250;
    this.#wantCheckMs = options.wantCheckMs ?? 50;
    this.#queueMax = options.queueMax ?? 1000;
    this.#q = statements(keyspace);
  }

  /** The MessageStore.append contract; appends to one conversation run one at a time here. */
  append(message: NewMessage): Promise<AppendResult> {
    if (this.#closing) return Promise.reject(new Error("cassandra store is closed"));
    const slot = this.#slot(message.conversationId);
    if (slot.queued >= this.#queueMax) {
      return Promise.reject(new StoreUnavailableError(`too many appends queued for ${message.conversationId}`));
    }
    slot.queued++;
    clearTimeout(slot.idleTimer);
    slot.idleTimer = undefined;
    const run = slot.chain.then(() => this.#appendOwned(slot, message));
    slot.chain = run.then(
      () => this.#afterAppend(slot),
      () => this.#afterAppend(slot),
    );
    return run;
  }

  /** Conversations this process owns right now (for tests and stats). */
  ownedCount(): number {
    let n = 0;
    for (const slot of this.#slots.values()) if (slot.lease !== undefined) n++;
    return n;
  }

  /** Lets queued appends finish, then releases every owned conversation cleanly. */
  async close(): Promise<void> {
    this.#closing = true;
    await Promise.all([...this.#slots.values()].map((slot) => slot.chain));
    await Promise.all([...this.#slots.values()].map((slot) => this.#release(slot, true)));
  }

  #slot(id: string): Slot {
    let slot = this.#slots.get(id);
    if (slot === undefined) {
      slot = { id, info: undefined, lease: undefined, chain: Promise.resolve(), queued: 0, idleTimer: undefined, lastWantCheckMs: 0, handoffTo: "" };
      this.#slots.set(id, slot);
    }
    return slot;
  }

  async #appendOwned(slot: Slot, message: NewMessage): Promise<AppendResult> {
    slot.info ??= await this.#loadInfo(slot.id);
    for (let attempt = 0; ; attempt++) {
      const lease = await this.#own(slot);
      const checkWant = this.#clock.nowMs() - slot.lastWantCheckMs >= this.#wantCheckMs;
      const [original, wantedBy] = await Promise.all([
        this.#findDuplicate(message, lease),
        checkWant ? this.#leases.wantedBy(slot.id).catch(() => undefined) : Promise.resolve(undefined),
      ]);
      if (checkWant) slot.lastWantCheckMs = this.#clock.nowMs();
      if (wantedBy !== undefined) slot.handoffTo = wantedBy;
      if (original !== undefined) return { message: original, duplicate: true };
      const seq = lease.nextSeq;
      if (seq > lease.blockEnd || this.#leases.needsRenewal(lease)) {
        if (!(await this.#renew(slot, lease, seq))) {
          // Someone took over after our lease ran out; nothing was written: start again.
          if (attempt >= 2) throw new StoreUnavailableError(`lost ownership of ${slot.id} repeatedly`);
          continue;
        }
      }
      return this.#write(slot, lease, message, seq);
    }
  }

  async #write(slot: Slot, lease: Lease, message: NewMessage, seq: number): Promise<AppendResult> {
    const stored: StoredMessage = { ...message, data: message.data.slice(), seq, prevSeq: lease.lastSeq };
    const ts = messageTimestamp(lease.generation, seq);
    try {
      await Promise.all([
        this.#session.write(this.#q.insertMessage, [...messageParams(stored, this.#seqsPerBucket), ts], true),
        this.#session.write(this.#q.insertDedup, [stored.conversationId, stored.senderId, stored.clientMsgId, BigInt(seq), ts], true),
      ]);
      await this.#writeHeads(slot.info!, stored, ts);
    } catch (error) {
      // Some of the writes may land later: the lease is given up unclean, so the next owner
      // (perhaps this process again) recovers and fences.
      await this.#abandon(slot);
      throw error;
    }
    if (this.#clock.nowMs() >= lease.leaseUntilMs) {
      await this.#abandon(slot);
      throw new StoreUnavailableError(`append to ${slot.id} outlived its lease; its outcome is unknown`);
    }
    lease.lastSeq = seq;
    lease.nextSeq = seq + 1;
    return { message: stored, duplicate: false };
  }

  /** The head and the direct-session heads, moved to `message` (its body cut to the preview) at `ts`. */
  async #writeHeads(info: ConversationInfo, message: StoredMessage, ts: bigint): Promise<void> {
    const preview = headParams(cutPreview(message));
    const id = message.conversationId;
    await Promise.all([
      this.#session.write(this.#q.setHead, [ts, ...preview, id], true),
      ...info.participants.map((user) => this.#session.write(this.#q.setSessionHead, [ts, ...preview, user, id], true)),
    ]);
  }

  async #findDuplicate(message: NewMessage, lease: Lease): Promise<StoredMessage | undefined> {
    const row = (await this.#session.read(this.#q.findDedup, [message.conversationId, message.senderId, message.clientMsgId])).first();
    if (row === null) return undefined;
    const seq = num(row.get("seq"));
    if (seq > lease.lastSeq) return undefined;
    const found = (await this.#session.read(this.#q.readMessage, [message.conversationId, BigInt(bucketOf(seq, this.#seqsPerBucket)), BigInt(seq)])).first();
    return found === null ? undefined : toMessage(found);
  }

  /**
   * The conversation's kind and participants. For a direct conversation it also (re)writes both
   * participants' session identity (idempotent), so a session row lost to a failure half-way
   * through ensureDirect reappears with the next message.
   */
  async #loadInfo(id: string): Promise<ConversationInfo> {
    const rows = (await this.#session.read(this.#q.readInfo, [id])).rows;
    const first = rows[0];
    const kind = first === undefined ? undefined : kindOf(first.get("kind"));
    if (first === undefined || kind === undefined) throw new Error(`append to missing conversation ${id}`);
    if (kind === "group") return { kind, participants: [] };
    const participants = rows.map((r) => str(r.get("member_id"))).filter((u) => u !== "");
    const createdAtMs = BigInt(num(first.get("created_at_ms")));
    await Promise.all(
      participants.map((user, i) =>
        this.#session.write(this.#q.setDirectIdentity, ["direct", participants[1 - i] ?? "", createdAtMs, user, id], true),
      ),
    );
    return { kind, participants };
  }

  /** The live lease of the slot, acquiring (and recovering) when there is none. */
  async #own(slot: Slot): Promise<Lease> {
    if (slot.lease !== undefined) return slot.lease;
    const { lease, recover } = await this.#leases.acquire(slot.id);
    slot.lastWantCheckMs = this.#clock.nowMs();
    slot.handoffTo = "";
    if (recover !== undefined) {
      try {
        await this.#recover(slot.info!, slot.id, lease, recover.previousBlockEnd);
      } catch (error) {
        await this.#leases.release(lease, false).catch(() => {});
        throw error;
      }
    }
    slot.lease = lease;
    return lease;
  }

  /** Steps a-d of the takeover argument in the class comment. Sets lease.lastSeq = L. */
  async #recover(info: ConversationInfo, id: string, lease: Lease, blockEnd: number): Promise<void> {
    const q = this.#q;
    const fence = fenceTimestamp(lease.generation);
    // a. Freeze the heads as they are.
    const head = (await this.#session.read(q.readHead, [id])).first();
    const sessionHeads = await Promise.all(info.participants.map(async (user) => (await this.#session.read(q.readSessionHead, [user, id])).first()));
    const headMessage = head === null ? undefined : toPreview(head, id);
    await Promise.all([
      this.#session.write(headMessage === undefined ? q.setHeadEmpty : q.setHead, [fence, ...(headMessage === undefined ? [] : headParams(headMessage)), id], true),
      ...info.participants.map((user, i) => {
        const current = sessionHeads[i] === null || sessionHeads[i] === undefined ? undefined : toPreview(sessionHeads[i]!, id);
        return this.#session.write(
          current === undefined ? q.setSessionHeadEmpty : q.setSessionHead,
          [fence, ...(current === undefined ? [] : headParams(current)), user, id],
          true,
        );
      }),
    ]);
    // b. The tail above the frozen head.
    const h = headMessage?.seq ?? 0;
    const tail: StoredMessage[] = [];
    for (let b = bucketOf(h + 1, this.#seqsPerBucket); b <= bucketOf(blockEnd, this.#seqsPerBucket) && blockEnd > h; b++) {
      const rows = await this.#session.readUpTo(q.readBucketRange, [id, BigInt(b), BigInt(h), BigInt(blockEnd)], RECOVERY_ROWS_MAX - tail.length);
      tail.push(...rows.map(toMessage));
    }
    const last = tail[tail.length - 1];
    const l = last?.seq ?? h;
    // c. Fence everything above L that an earlier owner may still write.
    const fences: Promise<void>[] = [];
    for (let b = bucketOf(l + 1, this.#seqsPerBucket); b <= bucketOf(blockEnd, this.#seqsPerBucket) && blockEnd > l; b++) {
      fences.push(this.#session.write(q.fence, [fence, id, BigInt(b), BigInt(l), BigInt(blockEnd)], true));
    }
    await Promise.all(fences);
    // d. Re-assert what the found messages imply.
    const reassert = reassertTimestamp(lease.generation);
    await Promise.all(tail.map((m) => this.#session.write(q.insertDedup, [id, m.senderId, m.clientMsgId, BigInt(m.seq), reassert], true)));
    const lastMessage = last ?? headMessage;
    if (lastMessage === undefined) {
      await Promise.all([
        this.#session.write(q.setHeadEmpty, [reassert, id], true),
        ...info.participants.map((user) => this.#session.write(q.setSessionHeadEmpty, [reassert, user, id], true)),
      ]);
    } else {
      await this.#writeHeads(info, lastMessage, reassert);
    }
    lease.lastSeq = l;
  }

  async #renew(slot: Slot, lease: Lease, seq: number): Promise<boolean> {
    try {
      if (await this.#leases.renew(lease, seq)) return true;
      slot.lease = undefined;
      return false;
    } catch (error) {
      // The compare-and-set may or may not have applied: this lease's row is unknown now.
      await this.#abandon(slot);
      throw error;
    }
  }

  /** Drops the slot's lease after a failure; releases it unclean so a taker need not wait. */
  async #abandon(slot: Slot): Promise<void> {
    const lease = slot.lease;
    slot.lease = undefined;
    if (lease !== undefined) await this.#leases.release(lease, false).catch(() => {});
  }

  async #release(slot: Slot, clean: boolean, handoffTo = ""): Promise<void> {
    clearTimeout(slot.idleTimer);
    slot.idleTimer = undefined;
    const lease = slot.lease;
    slot.lease = undefined;
    slot.handoffTo = "";
    if (lease !== undefined) await this.#leases.release(lease, clean, handoffTo).catch(() => {});
  }

  /** After each append: hand over if asked, else keep the lease while idle, watching for waiters. */
  async #afterAppend(slot: Slot): Promise<void> {
    slot.queued--;
    if (slot.lease !== undefined && slot.handoffTo !== "") {
      await this.#release(slot, true, slot.handoffTo);
    }
    if (slot.queued > 0 || this.#closing) return;
    if (slot.lease === undefined) {
      this.#slots.delete(slot.id);
      return;
    }
    const idleSince = this.#clock.nowMs();
    const tick = (): void => {
      slot.idleTimer = undefined;
      if (slot.queued > 0 || slot.lease === undefined || this.#closing) return;
      slot.chain = slot.chain.then(async () => {
        if (slot.queued > 0 || slot.lease === undefined || this.#closing) return;
        const wanted = await this.#leases.wantedBy(slot.id).catch(() => undefined);
        if (slot.queued > 0) return;
        if (wanted !== undefined || this.#clock.nowMs() - idleSince >= this.#holdIdleMs) {
          await this.#release(slot, true, wanted ?? "");
          if (slot.queued === 0) this.#slots.delete(slot.id);
          return;
        }
        slot.idleTimer = setTimeout(tick, this.#wantCheckMs);
        slot.idleTimer.unref();
      });
    };
    slot.idleTimer = setTimeout(tick, Math.min(this.#wantCheckMs, this.#holdIdleMs));
    slot.idleTimer.unref();
  }
}

function statements(ks: string) {
  return {
    readInfo: `SELECT kind, created_at_ms, member_id FROM ${ks}.conversations WHERE conversation_id = ? LIMIT 3`,
    setDirectIdentity: `UPDATE ${ks}.user_conversations SET kind = ?, peer_user_id = ?, created_at_ms = ? WHERE user_id = ? AND conversation_id = ?`,
    insertMessage: `INSERT INTO ${ks}.messages (${MESSAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?`,
    insertDedup: `INSERT INTO ${ks}.client_msg_ids (conversation_id, sender_id, client_msg_id, seq) VALUES (?, ?, ?, ?) USING TIMESTAMP ?`,
    findDedup: `SELECT seq FROM ${ks}.client_msg_ids WHERE conversation_id = ? AND sender_id = ? AND client_msg_id = ?`,
    readMessage: `SELECT ${MESSAGE_COLUMNS} FROM ${ks}.messages WHERE conversation_id = ? AND bucket = ? AND seq = ?`,
    readBucketRange: `SELECT ${MESSAGE_COLUMNS} FROM ${ks}.messages WHERE conversation_id = ? AND bucket = ? AND seq > ? AND seq <= ?`,
    fence: `DELETE FROM ${ks}.messages USING TIMESTAMP ? WHERE conversation_id = ? AND bucket = ? AND seq > ? AND seq <= ?`,
    readHead: `SELECT ${HEAD_COLUMNS} FROM ${ks}.conversations WHERE conversation_id = ? LIMIT 1`,
    readSessionHead: `SELECT ${HEAD_COLUMNS} FROM ${ks}.user_conversations WHERE user_id = ? AND conversation_id = ?`,
    setHead: `UPDATE ${ks}.conversations USING TIMESTAMP ? SET ${HEAD_ASSIGNMENTS} WHERE conversation_id = ?`,
    setHeadEmpty: `UPDATE ${ks}.conversations USING TIMESTAMP ? SET last_seq = 0 WHERE conversation_id = ?`,
    setSessionHead: `UPDATE ${ks}.user_conversations USING TIMESTAMP ? SET ${HEAD_ASSIGNMENTS} WHERE user_id = ? AND conversation_id = ?`,
    setSessionHeadEmpty: `UPDATE ${ks}.user_conversations USING TIMESTAMP ? SET last_seq = 0 WHERE user_id = ? AND conversation_id = ?`,
  };
}
