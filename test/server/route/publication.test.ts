import { toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { ConnectResponseSchema, SubscribeResponseSchema } from "../../../gen/im/v1/gateway_pb.js";
import { toWireMessage } from "../../../server/gateway/codec.js";
import { encodeMessage, ENVELOPE_HEADER_BYTES, Publication } from "../../../server/route/publication.js";

function enveloped(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(ENVELOPE_HEADER_BYTES + bytes.byteLength);
  new DataView(out.buffer).setUint32(1, bytes.byteLength);
  out.set(bytes, ENVELOPE_HEADER_BYTES);
  return out;
}

const message = (bodyBytes: number) =>
  encodeMessage(
    toWireMessage({ conversationId: "g:x", seq: 2 ** 40, prevSeq: 7, messageId: "m", senderId: "s", sentAtMs: 1, contentType: "t", data: new Uint8Array(bodyBytes).fill(7), clientMsgId: "c" }),
  );

describe("Publication", () => {
  it.each([
    ["a small message", Publication.message("o", message(10))],
    ["a message whose length needs a 3-byte varint", Publication.message("o", message(70_000))],
    ["a read position", Publication.read("o", "d:a:b", 2 ** 50, "c1")],
    ["a membership change", Publication.membership("o", "g:x", true, 9)],
  ])("writes %s as exactly the enveloped encoding of its ConnectResponse and SubscribeResponse", (_name, publication) => {
    expect(publication.frame("connect")).toEqual(enveloped(toBinary(ConnectResponseSchema, publication.connectResponse())));
    expect(publication.frame("subscribe")).toEqual(enveloped(toBinary(SubscribeResponseSchema, publication.subscribeResponse())));
    expect(publication.frame("connect")).toBe(publication.frame("connect"));
  });

  it("survives the broker's wire form and keeps what hubs need", () => {
    const original = Publication.message("w1", message(3), "conn-9");
    const copy = Publication.decode(original.encode());
    expect([copy.origin, copy.exceptConnectionId, copy.kind, copy.bytes]).toEqual(["w1", "conn-9", "message", message(3).byteLength]);
    expect(copy.frame("connect")).toEqual(original.frame("connect"));
    expect(Publication.members("w1", ["a"], ["b"]).forDevices).toBe(false);
    expect(() => Publication.decode(new Uint8Array([0xff, 0xff, 0xff]))).toThrow();
  });
});
