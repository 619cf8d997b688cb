import { toPreview as cutPreview, type ConversationKind, type StoredMessage } from "../core/model.js";
import type { AppendWrites } from "./cassandra-append-pipeline.js";
import {
  bucketOf,
  fenceTimestamp,
  HEAD_ASSIGNMENTS,
  HEAD_COLUMNS,
  headParams,
  kindOf,
  MESSAGE_COLUMNS,
  messageParams,
  num,
  reassertTimestamp,
  str,
  toMessage,
  toPreview,
} from "./cassandra-rows.js";
import type { Lease } from "./cassandra-seq-lease.js";
import type { CassandraSession } from "./cassandra-session.js";
import type { NewMessage } from "./message-store.js";

/** What an append needs to know of its conversation. */
export interface ConversationInfo {
  readonly kind: ConversationKind;
  /** The two participants of a direct conversation; empty for groups. */
  readonly participants: readonly string[];
}

/** Most rows a recovery reads above the head; more would mean a broken invariant. */
const RECOVERY_ROWS_MAX = 10_000;

/**
 * The rows of conversation logs as the owner of a conversation reads and writes them: its
 * kind and participants, dedup lookups, message and head writes, and the recovery after a
 * takeover. Ownership, ordering and the argument why this is safe: CassandraConversationLog.
 */
export class CassandraLogRows {
  readonly #session: CassandraSession;
  readonly #seqsPerBucket: number;
  readonly #q: ReturnType<typeof statements>;

  constructor(session: CassandraSession, keyspace: string, seqsPerBucket: number) {
    this.#session = session;
    this.#seqsPerBucket = seqsPerBucket;
    this.#q = statements(keyspace);
  }

  /** The writes of an append to a conversation like `info`. */
  writesOf(info: ConversationInfo): AppendWrites {
    return {
      message: async (stored, ts) => {
        await Promise.all([
          this.#session.write(this.#q.insertMessage, [...messageParams(stored, this.#seqsPerBucket), ts], true),
          this.#session.write(this.#q.insertDedup, [stored.conversationId, stored.senderId, stored.clientMsgId, BigInt(stored.seq), ts], true),
        ]);
      },
      heads: (stored, ts) => this.writeHeads(info, stored, ts),
    };
  }

  /** The head and the direct-session heads, moved to `message` (its body cut to the preview) at `ts`. */
  async writeHeads(info: ConversationInfo, message: StoredMessage, ts: bigint): Promise<void> {
    const preview = headParams(cutPreview(message));
    const id = message.conversationId;
    await Promise.all([
      this.#session.write(this.#q.setHead, [ts, ...preview, id], true),
      ...info.participants.map((user) => this.#session.write(this.#q.setSessionHead, [ts, ...preview, user, id], true)),
    ]);
  }

  /**
   * The message an earlier append of (conversation, sender, clientMsgId) stored, if its row
   * exists and is not above the seqs `lease` has assigned (a fenced write's dedup row is not).
   */
  async findDuplicate(message: NewMessage, lease: Lease): Promise<StoredMessage | undefined> {
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
  async loadInfo(id: string): Promise<ConversationInfo> {
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

  /** Steps a-d of the takeover argument (CassandraConversationLog). Sets lease.lastSeq = L. */
  async recover(info: ConversationInfo, id: string, lease: Lease, blockEnd: number): Promise<void> {
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
    // The chain that continues the frozen head, up to the first hole.
    const chain: StoredMessage[] = [];
    for (const m of tail) {
      if (m.prevSeq !== (chain[chain.length - 1]?.seq ?? h)) break;
      chain.push(m);
    }
    const last = chain[chain.length - 1];
    const l = last?.seq ?? h;
    // c. Fence everything above L that an earlier owner may still write.
    const fences: Promise<void>[] = [];
    for (let b = bucketOf(l + 1, this.#seqsPerBucket); b <= bucketOf(blockEnd, this.#seqsPerBucket) && blockEnd > l; b++) {
      fences.push(this.#session.write(q.fence, [fence, id, BigInt(b), BigInt(l), BigInt(blockEnd)], true));
    }
    await Promise.all(fences);
    // d. Re-assert what the found messages imply.
    const reassert = reassertTimestamp(lease.generation);
    await Promise.all(chain.map((m) => this.#session.write(q.insertDedup, [id, m.senderId, m.clientMsgId, BigInt(m.seq), reassert], true)));
    const lastMessage = last ?? headMessage;
    if (lastMessage === undefined) {
      await Promise.all([
        this.#session.write(q.setHeadEmpty, [reassert, id], true),
        ...info.participants.map((user) => this.#session.write(q.setSessionHeadEmpty, [reassert, user, id], true)),
      ]);
    } else {
      await this.writeHeads(info, lastMessage, reassert);
    }
    lease.lastSeq = l;
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
