import { describe, expect, it } from "vitest";
import type { Push } from "../../../server/route/delivery-router.js";
import { decodePushEnvelope, encodePushEnvelope, type PushEnvelope } from "../../../server/route/push-envelope.js";
import { messagePush } from "./delivery-router-contract.js";

const read: Push = { kind: "read", conversationId: "d:alice:bob", readSeq: 42 };
const binary = messagePush(7);
const withBytes: Push = binary.kind === "message" ? { kind: "message", message: { ...binary.message, data: Uint8Array.from([0, 255, 10, 13, 0x7b]) } } : binary;
const empty: Push = binary.kind === "message" ? { kind: "message", message: { ...binary.message, data: new Uint8Array(0) } } : binary;

describe("encodePushEnvelope() / decodePushEnvelope()", () => {
  it.each<[string, PushEnvelope]>([
    ["a message with an origin connection", { userIds: ["alice", "bob"], push: binary, exceptConnectionId: "node-1.w0-3" }],
    ["a message with arbitrary body bytes", { userIds: ["bob"], push: withBytes, exceptConnectionId: undefined }],
    ["a message with an empty body", { userIds: ["bob"], push: empty, exceptConnectionId: undefined }],
    ["a read position", { userIds: ["alice"], push: read, exceptConnectionId: "x" }],
  ])("round-trips %s", (_name, envelope) => {
    expect(decodePushEnvelope(encodePushEnvelope(envelope))).toEqual(envelope);
  });

  it("decodes from a view into a larger buffer (as Redis hands out Buffers)", () => {
    const bytes = encodePushEnvelope({ userIds: ["bob"], push: withBytes, exceptConnectionId: undefined });
    const padded = new Uint8Array(bytes.byteLength + 10);
    padded.set(bytes, 5);
    const decoded = decodePushEnvelope(padded.subarray(5, 5 + bytes.byteLength));
    expect(decoded.push).toEqual(withBytes);
  });

  it.each([
    ["too short", new Uint8Array([0, 0])],
    ["a header length beyond the bytes", new Uint8Array([0, 0, 0, 50, 0x7b, 0x7d])],
    ["a header that is not JSON", Uint8Array.from([0, 0, 0, 2, 0x7b, 0x7b])],
    ["no user ids", withHeader({ r: { c: "g:x", s: 1 } })],
    ["user ids that are not strings", withHeader({ u: [1], r: { c: "g:x", s: 1 } })],
    ["neither message nor read", withHeader({ u: ["a"] })],
    ["a message with a non-integer seq", withHeader({ u: ["a"], m: { c: "g:x", s: 1.5, p: 0, i: "i", f: "f", t: 1, y: "t", k: "k" } })],
  ])("rejects %s", (_name, bytes) => {
    expect(() => decodePushEnvelope(bytes)).toThrow();
  });
});

function withHeader(header: unknown): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(4 + json.byteLength);
  new DataView(out.buffer).setUint32(0, json.byteLength);
  out.set(json, 4);
  return out;
}
