/**
 * What the pure client core exchanges with a transport, in plain data: the requests it writes,
 * the answers and failures it reads. The SDK's Connect transport (wire-codec.ts) and the
 * simulator's in-process transport translate these to and from their own frames.
 */

import type { ChainMessage, ClientCursor, SyncAnswer } from "./sync-engine.js";

/** A send waiting for the server's acknowledgement; what a ClientStore keeps of the outbox. */
export interface PendingSend {
  /** The idempotency key: the same on every attempt, across reconnects and app restarts. */
  readonly clientMsgId: string;
  /** The conversation, or "" to send to the direct conversation with `toUserId`. */
  readonly conversationId: string;
  readonly toUserId: string;
  readonly contentType: string;
  readonly data: Uint8Array;
}

/** The server accepted (stored) a send. */
export interface SendAck {
  readonly conversationId: string;
  readonly seq: number;
  readonly prevSeq: number;
  readonly messageId: string;
  readonly sentAtMs: number;
  readonly clientMsgId: string;
  /** The clientMsgId had been stored before: this is the original result. */
  readonly duplicate: boolean;
}

/** A request the core writes on a link; every one but `ping` gets exactly one answer or failure. */
export type ClientRequest =
  /** `attempt` counts the transmissions of this send (1 for the first). */
  | { readonly kind: "send"; readonly send: PendingSend; readonly attempt: number }
  /** `resync`: the periodic sync of a live, idle connection rather than the sync after connecting. */
  | { readonly kind: "sync"; readonly cursors: readonly ClientCursor[]; readonly resync: boolean }
  /** Messages with afterSeq < seq <= upToSeq (0: up to the newest). */
  | { readonly kind: "fetch"; readonly conversationId: string; readonly afterSeq: number; readonly upToSeq: number }
  | { readonly kind: "markRead"; readonly conversationId: string; readonly readSeq: number }
  /** A heartbeat; its answer (if any) only proves the link is alive. */
  | { readonly kind: "ping"; readonly clientTimeMs: number };

/** The answer to a request, by kind. */
export type Answer<M extends ChainMessage> =
  | { readonly kind: "send"; readonly ack: SendAck }
  | { readonly kind: "sync"; readonly answer: SyncAnswer<M> }
  | { readonly kind: "fetch"; readonly messages: readonly M[]; readonly hasMore: boolean }
  | { readonly kind: "markRead"; readonly readSeq: number }
  | { readonly kind: "pong" };

/** Why a request failed: the server refused it, or the client could not carry it. */
export type FailureReason =
  /** The server answered with an error (see `cause`). */
  | "server"
  /** The client was closed before an answer came. */
  | "closed"
  /** There was no live connection to carry it (markRead needs one). */
  | "not-connected"
  /** The connection carrying it died before its answer came. */
  | "connection-lost"
  /** Too many requests of this kind are waiting for a connection. */
  | "too-many";

/** A failed request. */
export interface RequestFailure {
  readonly reason: FailureReason;
  /** Whether repeating the same request later can succeed (sends: with the same clientMsgId). */
  readonly retryable: boolean;
  /** The earliest time to retry, in ms from now (0: no wait beyond the client's backoff). */
  readonly retryAfterMs: number;
  /** The server refused the bearer token: reconnect with a fresh one. */
  readonly unauthenticated: boolean;
  /** What the transport reported (a ConnectError in the SDK), for the app. */
  readonly cause: unknown;
}

/** A failure the client itself decided (no server error behind it). */
export function localFailure(reason: Exclude<FailureReason, "server">): RequestFailure {
  return { reason, retryable: reason === "connection-lost" || reason === "not-connected", retryAfterMs: 0, unauthenticated: false, cause: undefined };
}

/**
 * Why the server ended a connection (the wire's DisconnectReason). What the core does next:
 * `server-shutdown` waits at least the server's reconnect delay; `slow-consumer` reconnects at
 * once and syncs; `token-expired` gets a fresh token and reconnects at once; the others
 * reconnect with backoff.
 */
export type DisconnectKind = "server-shutdown" | "slow-consumer" | "token-expired" | "heartbeat-timeout" | "protocol-error" | "unspecified";

/** Why the core closed a link itself. */
export type LinkCloseCause =
  /** Nothing heard from the server within the heartbeat timeout (a half-open connection). */
  | "heartbeat-timeout"
  /** A sync or fetch failed: the next connection syncs again. */
  | "request-failed"
  /** The server refused the token: reconnect with a fresh one. */
  | "unauthenticated"
  /** The server sent a disconnect frame; the stream ends after it. */
  | "server-disconnect"
  /** The server answered something that was not asked. */
  | "protocol-error"
  /** The app closed the client. */
  | "closed";
