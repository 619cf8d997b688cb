import type { ConversationKind, StoredMessage } from "../core/model.js";
import type { Row } from "./cassandra-session.js";

/** The columns of a message row, in the order `messageParams` binds them. */
export const MESSAGE_COLUMNS = "conversation_id, bucket, seq, prev_seq, message_id, sender_id, sent_at_ms, content_type, data, client_msg_id";

/** The head columns (conversation record and direct-session previews), in the order `headParams` binds them. */
export const HEAD_COLUMNS = "last_seq, last_prev_seq, last_message_id, last_sender_id, last_sent_at_ms, last_content_type, last_data, last_client_msg_id";

/** `col = ?, ...` for an UPDATE of every head column. */
export const HEAD_ASSIGNMENTS = HEAD_COLUMNS.split(", ")
  .map((c) => `${c} = ?`)
  .join(", ");

/** Upper bound (exclusive) of seqs: write timestamps keep 40 bits for the seq. */
export const SEQ_LIMIT = 2 ** 40 - 2;

/**
 * Write timestamps of the log, the dedup rows and the head columns: (generation << 40) +
 * offset, so every write of a later generation wins over every write of an earlier one, and
 * within a generation the higher seq wins. `fenceTimestamp(g)` < `reassertTimestamp(g)` <
 * `messageTimestamp(g, seq)` for every seq >= 1.
 */
export function fenceTimestamp(generation: number): bigint {
  return BigInt(generation) << 40n;
}

/** See fenceTimestamp. */
export function reassertTimestamp(generation: number): bigint {
  return fenceTimestamp(generation) + 1n;
}

/** See fenceTimestamp. */
export function messageTimestamp(generation: number, seq: number): bigint {
  if (!(seq >= 1 && seq < SEQ_LIMIT)) throw new Error(`seq ${seq} out of range`);
  return fenceTimestamp(generation) + 1n + BigInt(seq);
}

/** The log partition of a seq. */
export function bucketOf(seq: number, seqsPerBucket: number): number {
  return Math.floor(seq / seqsPerBucket);
}

/** Parameters for MESSAGE_COLUMNS. */
export function messageParams(m: StoredMessage, seqsPerBucket: number): unknown[] {
  return [
    m.conversationId,
    BigInt(bucketOf(m.seq, seqsPerBucket)),
    BigInt(m.seq),
    BigInt(m.prevSeq),
    m.messageId,
    m.senderId,
    BigInt(m.sentAtMs),
    m.contentType,
    toBuffer(m.data),
    m.clientMsgId,
  ];
}

/** Parameters for HEAD_COLUMNS / HEAD_ASSIGNMENTS: `preview` is the message with its body already cut. */
export function headParams(preview: StoredMessage): unknown[] {
  return [
    BigInt(preview.seq),
    BigInt(preview.prevSeq),
    preview.messageId,
    preview.senderId,
    BigInt(preview.sentAtMs),
    preview.contentType,
    toBuffer(preview.data),
    preview.clientMsgId,
  ];
}

/** A message from a message row. */
export function toMessage(row: Row): StoredMessage {
  return {
    conversationId: str(row.get("conversation_id")),
    seq: num(row.get("seq")),
    prevSeq: num(row.get("prev_seq")),
    messageId: str(row.get("message_id")),
    senderId: str(row.get("sender_id")),
    sentAtMs: num(row.get("sent_at_ms")),
    contentType: str(row.get("content_type")),
    data: bytes(row.get("data")),
    clientMsgId: str(row.get("client_msg_id")),
  };
}

/** The preview message of a row with head columns; undefined when the log is empty (last_seq 0 or unset). */
export function toPreview(row: Row, conversationId: string): StoredMessage | undefined {
  const seq = num(row.get("last_seq"));
  if (seq === 0) return undefined;
  return {
    conversationId,
    seq,
    prevSeq: num(row.get("last_prev_seq")),
    messageId: str(row.get("last_message_id")),
    senderId: str(row.get("last_sender_id")),
    sentAtMs: num(row.get("last_sent_at_ms")),
    contentType: str(row.get("last_content_type")),
    data: bytes(row.get("last_data")),
    clientMsgId: str(row.get("last_client_msg_id")),
  };
}

/** A bigint/int column as a number; unset (null) reads as 0. */
export function num(value: unknown): number {
  if (value === null || value === undefined) return 0;
  if (typeof value === "bigint" || typeof value === "number") return Number(value);
  throw new Error(`cassandra store: expected a number column, got ${typeof value}`);
}

/** A text column; unset reads as "". */
export function str(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  throw new Error(`cassandra store: expected a text column, got ${typeof value}`);
}

/** The kind column; undefined when unset (no such conversation). */
export function kindOf(value: unknown): ConversationKind | undefined {
  if (value === null || value === undefined) return undefined;
  if (value === "direct" || value === "group") return value;
  throw new Error(`cassandra store: unknown conversation kind ${JSON.stringify(value)}`);
}

function bytes(value: unknown): Uint8Array {
  if (value === null || value === undefined) return new Uint8Array(0);
  if (value instanceof Uint8Array) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  throw new Error(`cassandra store: expected a blob column, got ${typeof value}`);
}

function toBuffer(data: Uint8Array): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}
