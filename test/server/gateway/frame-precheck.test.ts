import { create } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ConnectRequestSchema, SendRequestSchema, SyncRequestSchema, type ConnectRequest } from "../../../gen/im/v1/gateway_pb.js";
import { declaredRules, fieldShape, plainlyValid, precheckApplies } from "../../../server/gateway/frame-precheck.js";
import { createRequestValidator } from "../../../server/gateway/request-validator.js";

const validator = createRequestValidator();
const valid = (frame: ConnectRequest): boolean => validator.check(ConnectRequestSchema, frame) === undefined;

const ping = (requestId: bigint): ConnectRequest => create(ConnectRequestSchema, { requestId, frame: { case: "ping", value: { clientTimeMs: 5n } } });
const sync = (requestId: bigint, ids: readonly string[], limits: { maxMessagesPerConversation?: number; maxSessions?: number } = {}): ConnectRequest =>
  create(ConnectRequestSchema, { requestId, frame: { case: "sync", value: { cursors: ids.map((conversationId) => ({ conversationId, lastSeq: 3n })), ...limits } } });

describe("plainlyValid", () => {
  it("is on: the descriptors carry exactly the rules it evaluates (change both together)", () => {
    expect(precheckApplies()).toBe(true);
  });

  it("reads the rules the descriptors declare", () => {
    expect(declaredRules(SendRequestSchema)).toMatchObject({ client_msg_id: { string: expect.any(Object) }, body: { required: true } });
  });

  it("tells a message with one more field from the one it was written for", () => {
    expect(fieldShape(SyncRequestSchema)).toBe("cursors:list:im.v1.SyncCursor max_messages_per_conversation:scalar max_sessions:scalar");
    const send = SendRequestSchema.fields.find((f) => f.fieldKind === "message")!;
    const grown = { ...SyncRequestSchema, fields: [...SyncRequestSchema.fields, send] };
    expect(fieldShape(grown)).toBe(`${fieldShape(SyncRequestSchema)} ${send.name}:message:${send.message!.typeName}`);
  });

  it("accepts the pings and syncs devices send", () => {
    expect(plainlyValid(ping(1n))).toBe(true);
    expect(plainlyValid(sync(7n, []))).toBe(true);
    expect(plainlyValid(sync(7n, ["d:a:b", "g:x"], { maxMessagesPerConversation: 1000, maxSessions: 50 }))).toBe(true);
  });

  it.each([
    ["a ping with request id 0", ping(0n)],
    ["a sync with request id 0", sync(0n, [])],
    ["an empty conversation id", sync(1n, [""])],
    ["a conversation id of 141 UTF-16 units", sync(1n, ["x".repeat(141)])],
    ["more messages per conversation than 1000", sync(1n, [], { maxMessagesPerConversation: 1001 })],
    ["more sessions than 1000", sync(1n, [], { maxSessions: 1001 })],
    ["more than 10,000 cursors", sync(1n, Array.from({ length: 10_001 }, () => "g:x"))],
    ["no frame", create(ConnectRequestSchema, { requestId: 1n })],
    ["another kind of frame", create(ConnectRequestSchema, { requestId: 1n, frame: { case: "markRead", value: { conversationId: "g:x", readSeq: 1n } } })],
  ])("leaves %s to protovalidate", (_name, frame) => {
    expect(plainlyValid(frame)).toBe(false);
  });

  it("leaves to protovalidate a conversation id within 140 code points but over 140 UTF-16 units (it accepts it)", () => {
    const frame = sync(1n, ["😀".repeat(100)]);
    expect(plainlyValid(frame)).toBe(false);
    expect(valid(frame)).toBe(true);
  });

  it("accepts nothing that protovalidate refuses", () => {
    const id = fc.oneof(fc.string({ maxLength: 150 }), fc.string({ unit: "grapheme", maxLength: 150 }), fc.constantFrom("", "x".repeat(140), "x".repeat(141), "\ud800"));
    const limit = fc.oneof(fc.integer({ min: 0, max: 2000 }), fc.constantFrom(999, 1000, 1001, 4294967295));
    const frame = fc.oneof(
      fc.bigInt({ min: 0n, max: 3n }).map(ping),
      fc.record({ requestId: fc.bigInt({ min: 0n, max: 3n }), ids: fc.array(id, { maxLength: 4 }), m: limit, s: limit }).map(({ requestId, ids, m, s }) => sync(requestId, ids, { maxMessagesPerConversation: m, maxSessions: s })),
    );
    let accepted = 0;
    fc.assert(
      fc.property(frame, (f) => {
        if (!plainlyValid(f)) return true;
        accepted++;
        return valid(f);
      }),
      { numRuns: 2000 },
    );
    expect(accepted).toBeGreaterThan(100);
  });
});
