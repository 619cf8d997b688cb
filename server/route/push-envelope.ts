import type { StoredMessage } from "../core/model.js";
import type { Push } from "./delivery-router.js";

/** A push on its way to the connections of `userIds` held by another process. */
export interface PushEnvelope {
  readonly userIds: readonly string[];
  readonly push: Push;
  /** The connection that caused the push (it learns the outcome from its answer). */
  readonly exceptConnectionId: string | undefined;
}

/** Largest envelope header accepted when decoding (user ids and message metadata, not the body). */
export const ENVELOPE_HEADER_BYTES_MAX = 4 * 1024 * 1024;

interface Header {
  readonly u: string[];
  readonly x?: string;
  readonly r?: { c: string; s: number };
  readonly m?: { c: string; s: number; p: number; i: string; f: string; t: number; y: string; k: string };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Encodes an envelope for a byte channel (Redis pub/sub): a 4-byte big-endian header length,
 * the JSON header (user ids, except id, message metadata), then the message body as raw
 * bytes, so bodies are not inflated by base64.
 */
export function encodePushEnvelope(envelope: PushEnvelope): Uint8Array {
  const { push } = envelope;
  const header: Header = {
    u: [...envelope.userIds],
    ...(envelope.exceptConnectionId === undefined ? {} : { x: envelope.exceptConnectionId }),
    ...(push.kind === "read"
      ? { r: { c: push.conversationId, s: push.readSeq } }
      : { m: metadataOf(push.message) }),
  };
  const head = encoder.encode(JSON.stringify(header));
  const body = push.kind === "message" ? push.message.data : new Uint8Array(0);
  const out = new Uint8Array(4 + head.byteLength + body.byteLength);
  new DataView(out.buffer).setUint32(0, head.byteLength);
  out.set(head, 4);
  out.set(body, 4 + head.byteLength);
  return out;
}

/** Decodes `encodePushEnvelope`'s output; throws an Error on anything malformed. */
export function decodePushEnvelope(bytes: Uint8Array): PushEnvelope {
  if (bytes.byteLength < 4) throw new Error("push envelope shorter than its length prefix");
  const length = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0);
  if (length > ENVELOPE_HEADER_BYTES_MAX || 4 + length > bytes.byteLength) throw new Error("push envelope header length out of range");
  const header = JSON.parse(decoder.decode(bytes.subarray(4, 4 + length))) as Header;
  if (!Array.isArray(header.u) || !header.u.every((u) => typeof u === "string")) throw new Error("push envelope without user ids");
  if (header.x !== undefined && typeof header.x !== "string") throw new Error("push envelope with a bad except id");
  let push: Push;
  if (header.r !== undefined && typeof header.r.c === "string" && Number.isSafeInteger(header.r.s)) {
    push = { kind: "read", conversationId: header.r.c, readSeq: header.r.s };
  } else if (header.m !== undefined && isMetadata(header.m)) {
    const m = header.m;
    // A copy, so the message does not pin the whole received buffer.
    const data = bytes.slice(4 + length);
    push = {
      kind: "message",
      message: { conversationId: m.c, seq: m.s, prevSeq: m.p, messageId: m.i, senderId: m.f, sentAtMs: m.t, contentType: m.y, clientMsgId: m.k, data },
    };
  } else {
    throw new Error("push envelope without a read position or a message");
  }
  return { userIds: header.u, push, exceptConnectionId: header.x };
}

function metadataOf(m: StoredMessage): NonNullable<Header["m"]> {
  return { c: m.conversationId, s: m.seq, p: m.prevSeq, i: m.messageId, f: m.senderId, t: m.sentAtMs, y: m.contentType, k: m.clientMsgId };
}

function isMetadata(m: NonNullable<Header["m"]>): boolean {
  return (
    typeof m.c === "string" &&
    Number.isSafeInteger(m.s) &&
    Number.isSafeInteger(m.p) &&
    typeof m.i === "string" &&
    typeof m.f === "string" &&
    Number.isSafeInteger(m.t) &&
    typeof m.y === "string" &&
    typeof m.k === "string"
  );
}
