import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { GatewayService, SendResponseSchema } from "../../gen/im/v1/gateway_pb.js";
import { ErrorDetailSchema, ErrorReason } from "../../gen/im/v1/message_pb.js";
import { openBrowserLink, type LinkSink } from "../../client/connect-links.js";

/** A sink that records what the link reports. */
function recorder() {
  const seen: string[] = [];
  const sink: LinkSink = {
    message: () => seen.push("message"),
    read: () => seen.push("read"),
    membership: () => seen.push("membership"),
    heartbeat: () => seen.push("heartbeat"),
    disconnect: () => seen.push("disconnect"),
    answer: (id) => seen.push(`answer ${id}`),
    failure: (id, e) => seen.push(`failure ${id} ${ConnectError.from(e).code}`),
    ended: (e) => seen.push(`ended ${e === undefined ? "" : ConnectError.from(e).code}`),
  };
  return { seen, sink };
}

/** A gateway whose Subscribe never ends and whose Send answers as told. */
function gateway(send: () => Promise<unknown>): Client<typeof GatewayService> {
  return {
    subscribe: () => ({ [Symbol.asyncIterator]: () => ({ next: () => new Promise(() => {}) }) }),
    send,
  } as unknown as Client<typeof GatewayService>;
}

const sendRequest = { kind: "send", send: { target: { conversationId: "g:x" }, clientMsgId: "c1", contentType: "t", data: new Uint8Array(1) } } as never;
const settle = () => new Promise((r) => setTimeout(r, 10));

describe("openBrowserLink()", () => {
  it("passes a refusal the server answered (it carries an ErrorDetail) to that request", async () => {
    const refusal = new ConnectError("not a member", Code.PermissionDenied, undefined, [
      { desc: ErrorDetailSchema, value: create(ErrorDetailSchema, { reason: ErrorReason.NOT_MEMBER }) },
    ]);
    const { seen, sink } = recorder();
    openBrowserLink(gateway(() => Promise.reject(refusal)), {}, sink).write(1, sendRequest);
    await settle();
    expect(seen).toEqual([`failure 1 ${Code.PermissionDenied}`]);
  });

  it.each([
    ["a network failure", new ConnectError("fetch failed", Code.Unknown)],
    ["a call cut off", new ConnectError("aborted", Code.Canceled)],
  ])("ends the link on %s without an answer, so the request is redone on the next link", async (_what, error) => {
    const { seen, sink } = recorder();
    const link = openBrowserLink(gateway(() => Promise.reject(error)), {}, sink);
    link.write(1, sendRequest);
    link.write(2, sendRequest);
    await settle();
    expect(seen).toEqual([`ended ${error.code}`]);
  });

  it("answers a request that succeeded", async () => {
    const { seen, sink } = recorder();
    openBrowserLink(gateway(async () => create(SendResponseSchema, { seq: 1n })), {}, sink).write(3, sendRequest);
    await settle();
    expect(seen).toEqual(["answer 3"]);
  });
});
