import { expect } from "vitest";
import {
  ABOVE_2_53,
  b64,
  BODY_OVER_LIMIT,
  DIRECT,
  MAX_U64,
  NEVER,
  OVER_FRAME_REQUEST_BYTES,
  PLAN,
  type Report,
  type ReportedError,
  type StepReport,
} from "./plan.js";
import { statusJsonFromDetailsBin } from "./status-details.js";

/** How a stack reports, which decides the wire checks that apply to it. */
export interface StackTraits {
  /** gRPC (HTTP/2 trailers) or the Connect protocol (errors in the body). */
  readonly protocol: "grpc" | "connect";
  /** The stack hands back the raw grpc-status-details-bin trailer of every error. */
  readonly rawDetails: boolean;
  /** Response content types the stack lets a caller see: "unary" and/or "stream". */
  readonly contentTypes: readonly ("unary" | "stream")[];
  /** The stack sees how a cancelled stream ended (a process that is killed does not). */
  readonly cancelObserved: boolean;
  /** Steps this stack cannot express, each with why (checked, never silently dropped). */
  readonly cannot?: Readonly<Record<string, string>>;
}

const ULID = expect.stringMatching(/^[0-9A-HJKMNP-TV-Z]{26}$/);
const MS = expect.stringMatching(/^[1-9][0-9]{12}$/);

function message(seq: number, prevSeq: number, senderId: string, clientMsgId: string, text: string, conversationId = DIRECT) {
  return {
    conversationId,
    seq: String(seq),
    ...(prevSeq > 0 ? { prevSeq: String(prevSeq) } : {}),
    messageId: ULID,
    senderId,
    sentAtMs: MS,
    body: { contentType: "text/plain", data: b64(text) },
    clientMsgId,
  };
}

function sendAnswer(seq: number, prevSeq: number, clientMsgId: string) {
  return { conversationId: DIRECT, seq: String(seq), ...(prevSeq > 0 ? { prevSeq: String(prevSeq) } : {}), messageId: ULID, sentAtMs: MS, clientMsgId };
}

const M1 = message(1, 0, "bob", "b-1", "hello alice");
const M2 = message(2, 1, "alice", "a-1", "hi bob");
const M3 = message(3, 2, "bob", "b-2", "push for alice");
const M4 = message(4, 3, "alice", "a-2", "unary hi");
const M5 = message(5, 4, "alice", "a-3", "to bob's browser");

const detail = (reason: string) => ({ "@type": "type.googleapis.com/im.v1.ErrorDetail", reason: `ERROR_REASON_${reason}` });

/** A refusal: its code, its exact message, its ErrorDetail reason (and any further details). */
interface ExpectedError {
  readonly code: number;
  readonly message: string | RegExp;
  /** Where the message differs by protocol. */
  readonly messageBy?: Partial<Record<StackTraits["protocol"], string>>;
  readonly reason: string;
  readonly more?: readonly unknown[];
}

const violations = (...ruleIds: string[]) => ({
  "@type": "type.googleapis.com/buf.validate.Violations",
  violations: ruleIds.map((ruleId) => expect.objectContaining({ ruleId })),
});

/** protovalidate's summary of an empty client_msg_id, at `path`. */
const emptyClientMsgId = (path: string) =>
  `invalid request: ${path}: must be at least 1 characters [string.min_len]; ${path}: does not match regex pattern \`^[\\x21-\\x7e]+$\` [string.pattern]`;

/** Every refusal of the plan (unary steps), by step name. */
export const EXPECTED_ERRORS: Readonly<Record<string, ExpectedError>> = {
  stranger_existing_direct: { code: 7, message: `you are not a member of conversation "${DIRECT}"`, reason: "NOT_MEMBER" },
  stranger_never_created_direct: { code: 7, message: `you are not a member of conversation "${NEVER}"`, reason: "NOT_MEMBER" },
  participant_never_created_direct: { code: 5, message: `conversation "${NEVER}" does not exist`, reason: "CONVERSATION_NOT_FOUND" },
  unknown_group: { code: 5, message: `conversation "g:nope" does not exist`, reason: "CONVERSATION_NOT_FOUND" },
  invalid_request: {
    code: 3,
    message: emptyClientMsgId("client_msg_id"),
    reason: "INVALID_ARGUMENT",
    more: [violations("string.min_len", "string.pattern")],
  },
  after_seq_above_2_53: { code: 11, message: `seq ${ABOVE_2_53} is beyond the conversation's last seq 5`, reason: "OUT_OF_RANGE" },
  up_to_seq_max_u64: { code: 11, message: `seq ${MAX_U64} is beyond the conversation's last seq 5`, reason: "OUT_OF_RANGE" },
  read_seq_above_2_53: { code: 11, message: `read_seq ${ABOVE_2_53} is beyond the conversation's last seq 5`, reason: "OUT_OF_RANGE" },
  add_members_to_direct: {
    code: 9,
    message: `conversation "${DIRECT}" is a direct conversation: its members are its two participants; members are added to and removed from groups only`,
    reason: "FAILED_PRECONDITION",
  },
  body_over_limit: { code: 3, message: `message body is ${BODY_OVER_LIMIT} bytes; the limit is 1024`, reason: "BODY_TOO_LARGE" },
  frame_over_limit: {
    code: 8,
    message: `a request message of ${OVER_FRAME_REQUEST_BYTES} bytes is over the limit of 4096`,
    // A Connect unary body over HTTP/2 has no content-length: the server stops reading at the limit.
    messageBy: { connect: "a request message is over the limit of 4096" },
    reason: "LIMIT_EXCEEDED",
  },
  undecodable_request: { code: 3, message: "a request message could not be decoded as im.v1.SyncRequest: illegal tag: field no 1 wire type 7", reason: "INVALID_ARGUMENT" },
  no_token: { code: 16, message: "missing authorization header (expected: Bearer <JWT>)", reason: "UNAUTHENTICATED" },
};

/** Every successful unary answer of the plan, by step name. */
export const EXPECTED_ANSWERS: Readonly<Record<string, unknown>> = {
  bob_sends_first: sendAnswer(1, 0, "b-1"),
  bob_pushes: sendAnswer(3, 2, "b-2"),
  send: sendAnswer(4, 3, "a-2"),
  sync: {
    sessions: [
      { session: { conversationId: DIRECT, kind: "CONVERSATION_KIND_DIRECT", lastSeq: "4", lastMessage: M4, readSeq: "3", peerUserId: "bob" }, messages: [M3, M4] },
    ],
  },
  fetch_range: { messages: [M2, M3], lastSeq: "4" },
  mark_read: { conversationId: DIRECT, readSeq: "4" },
  create_group: {
    conversation: { conversationId: expect.stringMatching(/^g:[A-Za-z0-9_-]+$/), kind: "CONVERSATION_KIND_GROUP", title: "team", ownerId: "alice", memberCount: 2 },
  },
  add_members: { added: 1, memberCount: 3 },
  list_members: { userIds: ["alice", "bob", "carol"] },
  remove_members: { removed: 1, memberCount: 2 },
  send_to_subscriber: { ...sendAnswer(5, 4, "a-3") },
};

/** The frames of the long connection, in order: answers carry their request_id, pushes none. */
const LONG_CONNECTION_FRAMES = [
  { requestId: "1", sync: { sessions: [{ session: { conversationId: DIRECT, kind: "CONVERSATION_KIND_DIRECT", lastSeq: "1", lastMessage: M1, peerUserId: "bob" }, messages: [M1] }] } },
  { requestId: "2", send: sendAnswer(2, 1, "a-1") },
  { message: M3 },
  { requestId: "3", pong: { clientTimeMs: "42", serverTimeMs: MS } },
  {
    requestId: "4",
    error: { code: 3, message: emptyClientMsgId("send.client_msg_id"), detail: { reason: "ERROR_REASON_INVALID_ARGUMENT" } },
  },
  { requestId: "5", fetchRange: { messages: [M2, M3], lastSeq: "3" } },
  { requestId: "6", markRead: { conversationId: DIRECT, readSeq: "3" } },
  { requestId: "7", error: { code: 11, message: `seq ${ABOVE_2_53} is beyond the conversation's last seq 3`, detail: { reason: "ERROR_REASON_OUT_OF_RANGE" } } },
  { requestId: "8", error: { code: 5, message: `conversation "${NEVER}" does not exist`, detail: { reason: "ERROR_REASON_CONVERSATION_NOT_FOUND" } } },
];

const SUBSCRIBE_FRAMES = [{ heartbeatMs: MS }, { message: { ...M5 } }];

/** Content types of the answers, by protocol: exactly what the server sends today. */
const CONTENT_TYPES = {
  grpc: { unary: "application/grpc+proto", stream: "application/grpc+proto" },
  connect: { unary: "application/proto", stream: "application/connect+proto" },
} as const;

function expectError(name: string, actual: ReportedError | undefined, expected: ExpectedError, traits: StackTraits): void {
  expect(actual, `${name}: an error`).toBeDefined();
  const e = actual!;
  expect(e.code, `${name}: code`).toBe(expected.code);
  const text = expected.messageBy?.[traits.protocol] ?? expected.message;
  if (typeof text === "string") expect(e.message, `${name}: message`).toBe(text);
  else expect(e.message, `${name}: message`).toMatch(text);
  const status = { code: expected.code, message: e.message, details: [detail(expected.reason), ...(expected.more ?? [])] };
  expect(e.status, `${name}: google.rpc.Status as the stack decodes it`).toEqual(status);
  if (traits.rawDetails) {
    expect(e.detailsBin, `${name}: grpc-status-details-bin`).toEqual(expect.any(String));
    expect(statusJsonFromDetailsBin(e.detailsBin!), `${name}: grpc-status-details-bin decoded byte by byte`).toEqual(status);
  }
}

/**
 * Checks a stack's report of the whole plan: every step present and in order, every answer,
 * frame, code, message and detail exactly as expected, and the content types the stack sees.
 */
export function expectReport(report: Report, traits: StackTraits): void {
  const cannot = traits.cannot ?? {};
  // A stream's own unary calls are reported as they happen, before the stream that ends later.
  const planned = PLAN.flatMap((s) => (s.kind === "unary" ? [s.name] : [...s.actions.flatMap((a) => ("unary" in a ? [a.unary.name] : [])), s.name]));
  expect(report.steps.map((s) => s.name), "every step of the plan, in order, except those the stack cannot express").toEqual(planned.filter((n) => !(n in cannot)));
  const byName = new Map<string, StepReport>(report.steps.map((s) => [s.name, s]));

  for (const [name, expected] of Object.entries(EXPECTED_ANSWERS)) {
    const step = byName.get(name)!;
    expect(step.error, `${name}: no error`).toBeUndefined();
    expect(step.ok, `${name}: answer`).toEqual(expected);
  }
  const conversations = byName.get("list_conversations")!;
  expect(conversations.error).toBeUndefined();
  const sessions = (conversations.ok as { sessions: { conversationId: string; lastSeq?: string; readSeq?: string }[] }).sessions;
  expect(sessions.map((s) => s.conversationId).sort()).toEqual([(byName.get("create_group")!.ok as { conversation: { conversationId: string } }).conversation.conversationId, DIRECT].sort());
  expect(sessions.find((s) => s.conversationId === DIRECT)).toMatchObject({ lastSeq: "4", readSeq: "4", peerUserId: "bob" });

  const cursorSync = byName.get("sync_cursor_max_u64")!;
  expect(cursorSync.error, "a cursor beyond 2^53 is answered, not refused").toBeUndefined();
  const updates = (cursorSync.ok as { sessions: { session: { conversationId: string }; messages?: unknown[] }[] }).sessions;
  expect(updates.find((u) => u.session.conversationId === DIRECT), "the truth about a cursor beyond the head").toEqual({
    session: { conversationId: DIRECT, kind: "CONVERSATION_KIND_DIRECT", lastSeq: "5", lastMessage: M5, readSeq: "4", peerUserId: "bob" },
  });

  for (const [name, expected] of Object.entries(EXPECTED_ERRORS)) {
    if (name in cannot) continue;
    const step = byName.get(name)!;
    expect(step.ok, `${name}: refused`).toBeUndefined();
    expectError(name, step.error, expected, traits);
  }

  const long = byName.get("long_connection")!;
  expect(long.frames, "long connection frames").toEqual(LONG_CONNECTION_FRAMES);
  expect(long.end, "long connection ends OK after the half-close").toEqual({ code: 0, message: "", status: null, detailsBin: null });
  const sub = byName.get("subscribe")!;
  expect(sub.frames, "subscribe frames").toEqual(SUBSCRIBE_FRAMES);
  if (traits.cancelObserved) expect(sub.end?.code, "subscribe ends CANCELLED").toBe(1);

  const types = CONTENT_TYPES[traits.protocol];
  if (traits.contentTypes.includes("stream")) {
    expect(long.headers?.["content-type"], "long connection content type").toBe(types.stream);
    expect(sub.headers?.["content-type"], "subscribe content type").toBe(types.stream);
  }
  if (traits.contentTypes.includes("unary")) {
    expect(byName.get("send")!.headers?.["content-type"], "unary content type").toBe(types.unary);
    // A refusal keeps the content type on gRPC; Connect unary errors are JSON.
    expect(byName.get("stranger_existing_direct")!.headers?.["content-type"], "refusal content type").toBe(traits.protocol === "grpc" ? types.unary : "application/json");
  }
}
