import { describe, expect, it } from "vitest";
import { encodeGrpcMessage } from "../../../server/gateway/grpc-message.js";

describe("encodeGrpcMessage()", () => {
  it.each([
    { message: `you are not a member of conversation "d:alice:bob"`, wire: `you are not a member of conversation "d:alice:bob"` },
    { message: "100% sure", wire: "100%25 sure" },
    { message: "line\nbreak", wire: "line%0Abreak" },
    { message: "café", wire: "caf%C3%A9" },
  ])("writes $message as $wire, which decodeURI and decodeURIComponent both read back", ({ message, wire }) => {
    expect(encodeGrpcMessage(message)).toBe(wire);
    expect(decodeURI(wire)).toBe(message);
    expect(decodeURIComponent(wire)).toBe(message);
  });
});
