import { create, toBinary } from "@bufbuild/protobuf";
import { SendRequestSchema } from "../../gen/im/v1/gateway_pb.js";

/**
 * The interop plan: one script of calls that every client stack runs against a fresh server
 * (test/interop/python/client.py, test/interop/go/main.go, and the TypeScript runners), and the
 * report each hands back. Requests and answers are canonical protobuf JSON, which every
 * stack's own library writes the same way (64-bit integers as strings, enums by name, bytes
 * in base64, default values left out), so one set of expectations (expect-report.ts) checks
 * every stack exactly.
 */

/** Flags of the server every interop test starts (small limits, so they can be hit cheaply). */
export const INTEROP_SERVER_FLAGS = ["--store", "memory", "--max-body-bytes", "1024", "--max-frame-bytes", "4096"];

/** The users of the plan; "dave" never connects, so direct ids naming him are never created. */
export const USERS = ["alice", "bob", "carol"] as const;
export type User = (typeof USERS)[number];

/** A unary call: `request` as proto JSON, or `raw` bytes (base64) that are not a valid message. */
export interface UnaryStep {
  readonly kind: "unary";
  readonly name: string;
  readonly service: "im.v1.GatewayService" | "im.v1.ConversationService";
  readonly method: string;
  /** Whose bearer token to send; absent: no authorization header. */
  readonly as?: User;
  readonly request?: Record<string, unknown>;
  readonly raw?: string;
  /** Saves a string field of the answer (dotted path) under a name; later requests use "${name}". */
  readonly capture?: Record<string, string>;
}

/** What a client does on a stream, in order. Every wait is bounded (STEP_TIMEOUT_MS). */
export type StreamAction =
  /** Write a ConnectRequest (proto JSON) and wait for the frame with its request_id. */
  | { readonly write: Record<string, unknown> }
  /** Make a unary call meanwhile (its result is reported as a step of its own). */
  | { readonly unary: UnaryStep }
  /** Wait until this many pushes (frames with no request_id) have arrived. */
  | { readonly awaitPushes: number }
  /** Wait until this many frames have arrived (Subscribe). */
  | { readonly awaitFrames: number }
  /** Half-close (Connect) and wait for the end of the stream. */
  | { readonly close: true }
  /** Cancel the call (Subscribe) and wait for it to end. */
  | { readonly cancel: true };

/** A stream: the bidi long connection or the browser push stream. */
export interface StreamStep {
  readonly kind: "connect" | "subscribe";
  readonly name: string;
  readonly as: User;
  readonly actions: readonly StreamAction[];
}

export type Step = UnaryStep | StreamStep;

/** The plan as handed to a client (a JSON file): where, who, what. */
export interface PlanFile {
  /** host:port of the server (HTTP/2 cleartext). */
  readonly target: string;
  readonly tokens: Record<User, string>;
  readonly stepTimeoutMs: number;
  readonly steps: readonly Step[];
}

/** Longest wait of any one action; a client that waits longer reports a failure. */
export const STEP_TIMEOUT_MS = 5000;

/** A refusal as a stack saw it. */
export interface ReportedError {
  /** gRPC status code (the same numbers as Connect codes). */
  readonly code: number;
  readonly message: string;
  /**
   * The error's google.rpc.Status as the stack's own rich-error API decodes it (proto JSON,
   * details as Any with "@type"); null where the stack has no such API.
   */
  readonly status: Record<string, unknown> | null;
  /** The raw grpc-status-details-bin trailer (base64), for stacks that expose it; else null. */
  readonly detailsBin: string | null;
}

/** The result of one step. */
export interface StepReport {
  readonly name: string;
  /** The answer (unary) as proto JSON. */
  readonly ok?: Record<string, unknown>;
  readonly error?: ReportedError;
  /** Every frame of a stream, in arrival order, as proto JSON. */
  readonly frames?: Record<string, unknown>[];
  /** How a stream ended: code 0 for OK. */
  readonly end?: ReportedError;
  /** Response headers as the stack exposes them (lower-case names), for wire checks. */
  readonly headers?: Record<string, string>;
  /** Trailers as the stack exposes them (lower-case names). */
  readonly trailers?: Record<string, string>;
}

/** What a client prints on stdout: one JSON document. */
export interface Report {
  readonly stack: string;
  readonly steps: StepReport[];
}

export const b64 = (text: string): string => Buffer.from(text, "utf8").toString("base64");
const body = (text: string) => ({ contentType: "text/plain", data: b64(text) });
const bytes = (n: number) => ({ contentType: "text/plain", data: Buffer.alloc(n, 0x61).toString("base64") });

export const DIRECT = "d:alice:bob";
/** A direct conversation that is never created: alice would be a participant, carol is not. */
export const NEVER = "d:alice:dave";
export const ABOVE_2_53 = "9007199254740993";
export const MAX_U64 = "18446744073709551615";
/** Not valid protobuf: field 1 with wire type 7, which does not exist. */
export const UNDECODABLE = Buffer.from([0x0f, 0x01]).toString("base64");
/** A body over --max-body-bytes 1024 that still fits the 4096-byte frame limit. */
export const BODY_OVER_LIMIT = 2048;
/** A body whose request is over --max-frame-bytes 4096. */
export const BODY_OVER_FRAME = 5000;

/** The encoded size of the over-frame request, which the refusal quotes. */
export const OVER_FRAME_REQUEST_BYTES = toBinary(
  SendRequestSchema,
  create(SendRequestSchema, {
    target: { case: "toUserId", value: "bob" },
    clientMsgId: "huge",
    body: { contentType: "text/plain", data: new Uint8Array(BODY_OVER_FRAME).fill(0x61) },
  }),
).byteLength;

const G = "im.v1.GatewayService" as const;
const C = "im.v1.ConversationService" as const;

/** The plan every stack runs, in order. */
export const PLAN: readonly Step[] = [
  { kind: "unary", name: "bob_sends_first", service: G, method: "Send", as: "bob", request: { toUserId: "alice", clientMsgId: "b-1", body: body("hello alice") } },
  {
    kind: "connect",
    name: "long_connection",
    as: "alice",
    actions: [
      { write: { requestId: "1", sync: {} } },
      { write: { requestId: "2", send: { toUserId: "bob", clientMsgId: "a-1", body: body("hi bob") } } },
      { unary: { kind: "unary", name: "bob_pushes", service: G, method: "Send", as: "bob", request: { toUserId: "alice", clientMsgId: "b-2", body: body("push for alice") } } },
      { awaitPushes: 1 },
      { write: { requestId: "3", ping: { clientTimeMs: "42" } } },
      { write: { requestId: "4", send: { toUserId: "bob", clientMsgId: "", body: body("x") } } },
      { write: { requestId: "5", fetchRange: { conversationId: DIRECT, afterSeq: "1" } } },
      { write: { requestId: "6", markRead: { conversationId: DIRECT, readSeq: "3" } } },
      { write: { requestId: "7", fetchRange: { conversationId: DIRECT, afterSeq: ABOVE_2_53 } } },
      { write: { requestId: "8", fetchRange: { conversationId: NEVER } } },
      { close: true },
    ],
  },
  { kind: "unary", name: "send", service: G, method: "Send", as: "alice", request: { toUserId: "bob", clientMsgId: "a-2", body: body("unary hi") } },
  { kind: "unary", name: "sync", service: G, method: "Sync", as: "alice", request: { cursors: [{ conversationId: DIRECT, lastSeq: "2", readSeq: "3" }] } },
  { kind: "unary", name: "fetch_range", service: G, method: "FetchRange", as: "alice", request: { conversationId: DIRECT, afterSeq: "1", upToSeq: "3" } },
  { kind: "unary", name: "mark_read", service: G, method: "MarkRead", as: "alice", request: { conversationId: DIRECT, readSeq: "4" } },
  {
    kind: "unary",
    name: "create_group",
    service: C,
    method: "CreateGroup",
    as: "alice",
    request: { title: "team", memberUserIds: ["bob"] },
    capture: { group: "conversation.conversationId" },
  },
  { kind: "unary", name: "add_members", service: C, method: "AddMembers", as: "alice", request: { conversationId: "${group}", userIds: ["carol"] } },
  { kind: "unary", name: "list_members", service: C, method: "ListMembers", as: "alice", request: { conversationId: "${group}" } },
  { kind: "unary", name: "remove_members", service: C, method: "RemoveMembers", as: "alice", request: { conversationId: "${group}", userIds: ["carol"] } },
  { kind: "unary", name: "list_conversations", service: C, method: "ListConversations", as: "alice", request: {} },
  {
    kind: "subscribe",
    name: "subscribe",
    as: "bob",
    actions: [
      { awaitFrames: 1 },
      { unary: { kind: "unary", name: "send_to_subscriber", service: G, method: "Send", as: "alice", request: { toUserId: "bob", clientMsgId: "a-3", body: body("to bob's browser") } } },
      { awaitFrames: 2 },
      { cancel: true },
    ],
  },
  { kind: "unary", name: "stranger_existing_direct", service: G, method: "FetchRange", as: "carol", request: { conversationId: DIRECT } },
  { kind: "unary", name: "stranger_never_created_direct", service: G, method: "FetchRange", as: "carol", request: { conversationId: NEVER } },
  { kind: "unary", name: "participant_never_created_direct", service: G, method: "FetchRange", as: "alice", request: { conversationId: NEVER } },
  { kind: "unary", name: "unknown_group", service: C, method: "ListMembers", as: "alice", request: { conversationId: "g:nope" } },
  { kind: "unary", name: "invalid_request", service: G, method: "Send", as: "alice", request: { toUserId: "bob", clientMsgId: "", body: body("x") } },
  { kind: "unary", name: "after_seq_above_2_53", service: G, method: "FetchRange", as: "alice", request: { conversationId: DIRECT, afterSeq: ABOVE_2_53 } },
  { kind: "unary", name: "up_to_seq_max_u64", service: G, method: "FetchRange", as: "alice", request: { conversationId: DIRECT, upToSeq: MAX_U64 } },
  { kind: "unary", name: "read_seq_above_2_53", service: G, method: "MarkRead", as: "alice", request: { conversationId: DIRECT, readSeq: ABOVE_2_53 } },
  { kind: "unary", name: "sync_cursor_max_u64", service: G, method: "Sync", as: "alice", request: { cursors: [{ conversationId: DIRECT, lastSeq: MAX_U64, readSeq: "4" }] } },
  { kind: "unary", name: "add_members_to_direct", service: C, method: "AddMembers", as: "alice", request: { conversationId: DIRECT, userIds: ["carol"] } },
  { kind: "unary", name: "body_over_limit", service: G, method: "Send", as: "alice", request: { toUserId: "bob", clientMsgId: "big", body: bytes(BODY_OVER_LIMIT) } },
  { kind: "unary", name: "frame_over_limit", service: G, method: "Send", as: "alice", request: { toUserId: "bob", clientMsgId: "huge", body: bytes(BODY_OVER_FRAME) } },
  { kind: "unary", name: "undecodable_request", service: G, method: "Sync", as: "alice", raw: UNDECODABLE },
  { kind: "unary", name: "no_token", service: G, method: "Sync", request: {} },
];

/** The plan file for a server at `target`, with fresh tokens. */
export async function planFile(target: string, token: (user: User) => Promise<string>): Promise<PlanFile> {
  const tokens = Object.fromEntries(await Promise.all(USERS.map(async (u) => [u, await token(u)] as const))) as Record<User, string>;
  return { target, tokens, stepTimeoutMs: STEP_TIMEOUT_MS, steps: PLAN };
}
