import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { ConnectRequestSchema, ConnectResponseSchema, type ConnectRequest } from "../../gen/im/v1/gateway_pb.js";
import { MessageBodySchema, MessageSchema } from "../../gen/im/v1/message_pb.js";
import { LeanConnection, parseSendAck, RESPONSE_FIELD, type LeanPush } from "../../loadgen/lean-connection.js";
import { waitFor } from "../support/test-server.js";

const envelope = (bytes: Uint8Array) => {
  const out = Buffer.alloc(5 + bytes.byteLength);
  out.writeUInt32BE(bytes.byteLength, 1);
  out.set(bytes, 5);
  return out;
};

const push = (seq: number, data: Uint8Array) =>
  envelope(
    toBinary(
      ConnectResponseSchema,
      create(ConnectResponseSchema, {
        frame: {
          case: "message",
          value: create(MessageSchema, {
            conversationId: "g:room",
            seq: BigInt(seq),
            prevSeq: BigInt(seq - 1),
            messageId: `m${seq}`,
            senderId: "alice",
            body: create(MessageBodySchema, { contentType: "text/plain", data }),
          }),
        },
      }),
    ),
  );

/** Splits a request body into its gRPC messages. */
function requests(body: Buffer): ConnectRequest[] {
  const out: ConnectRequest[] = [];
  for (let at = 0; at + 5 <= body.byteLength; ) {
    const length = body.readUInt32BE(at + 1);
    out.push(fromBinary(ConnectRequestSchema, body.subarray(at + 5, at + 5 + length)));
    at += 5 + length;
  }
  return out;
}

/**
 * The lean client's HTTP/2 against node's own HTTP/2 server (nghttp2, as strict as any):
 * headers, flow control in both directions past the initial windows, frames split anywhere,
 * PINGs both ways, refusals and stream ends.
 */
describe("LeanConnection", () => {
  let server: http2.Http2Server | undefined;
  const connections: LeanConnection[] = [];
  afterEach(async () => {
    for (const c of connections.splice(0)) c.destroy();
    await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));
    server = undefined;
  });

  async function serve(onStream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void): Promise<string> {
    server = http2.createServer();
    server.on("stream", onStream);
    await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(server!.address() as AddressInfo).port}`;
  }

  it("opens the Connect stream with its headers and first request, and reads pushes of any size in order", async () => {
    let seen: http2.IncomingHttpHeaders | undefined;
    const big = Buffer.alloc(200_000, 7);
    const url = await serve((stream, headers) => {
      seen = headers;
      stream.respond({ ":status": 200, "content-type": "application/grpc" });
      // Past the client's 16 KiB frames and the server's initial 64 KiB window, and many small ones.
      stream.write(push(1, big));
      for (let seq = 2; seq <= 2000; seq++) stream.write(push(seq, Buffer.from(`body ${seq}`)));
    });
    const pushes: LeanPush[] = [];
    const first = LeanConnection.encodeRequest(1, { case: "ping", value: { $typeName: "im.v1.PingRequest", clientTimeMs: 5n } });
    const c = await LeanConnection.open({ url, token: "t0k3n", firstRequest: first, events: { onPush: (p) => pushes.push({ ...p, data: Buffer.from(p.data) }) } });
    connections.push(c);
    await waitFor(() => pushes.length === 2000, "2000 pushes");
    expect(seen).toMatchObject({ ":method": "POST", ":path": "/im.v1.GatewayService/Connect", "content-type": "application/grpc", te: "trailers", authorization: "Bearer t0k3n" });
    expect(pushes.map((p) => p.seq)).toEqual(Array.from({ length: 2000 }, (_, i) => i + 1));
    expect(pushes[0]).toMatchObject({ conversationId: "g:room", prevSeq: 0, messageId: "m1", contentType: "text/plain" });
    expect(Buffer.compare(Buffer.from(pushes[0]!.data), big)).toBe(0);
    expect(new TextDecoder().decode(pushes[1999]!.data)).toBe("body 2000");
  });

  it("sends requests past the initial flow-control window and frame size, matched by request id", async () => {
    const chunks: Buffer[] = [];
    const url = await serve((stream) => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" });
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    });
    const c = await LeanConnection.open({ url, token: "t", events: {} });
    connections.push(c);
    const data = Buffer.alloc(40_000, 1);
    const ids: number[] = [];
    for (let i = 0; i < 8; i++) {
      ids.push(c.request({ case: "send", value: { $typeName: "im.v1.SendRequest", target: { case: "conversationId", value: "g:room" }, clientMsgId: `k${i}`, body: { $typeName: "im.v1.MessageBody", contentType: "x", data } } }));
    }
    await waitFor(() => chunks.reduce((n, b) => n + b.byteLength, 0) >= 8 * 40_000, "320 KB of requests");
    const got = requests(Buffer.concat(chunks));
    expect(ids).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(got.map((r) => Number(r.requestId))).toEqual(ids);
    expect(got.every((r) => r.frame.case === "send" && r.frame.value.body?.data.byteLength === 40_000)).toBe(true);
  });

  it("keeps reading past its own receive window (window updates) and answers the server's PING", async () => {
    let received = 0;
    let serverPing: number | undefined;
    const url = await serve((stream) => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" });
      const payload = Buffer.alloc(60_000, 2);
      let left = 400; // 24 MB, past the client's 16 MiB windows
      const more = () => {
        while (left > 0) {
          left--;
          if (!stream.write(push(1, payload))) {
            stream.once("drain", more);
            return;
          }
        }
      };
      more();
      stream.session!.ping((error, duration) => {
        if (error === null) serverPing = duration;
      });
    });
    const c = await LeanConnection.open({ url, token: "t", events: { onPush: () => received++ } });
    connections.push(c);
    await waitFor(() => received === 400 && serverPing !== undefined, "24 MB of pushes and the server's PING answered", 30_000);
    expect(await c.ping()).toBeGreaterThanOrEqual(0);
  }, 40_000);

  it("reports a refusal (a trailers-only response) and a stream the server ends", async () => {
    let n = 0;
    const url = await serve((stream) => {
      if (n++ === 0) {
        stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": "16", "grpc-message": "no" }, { endStream: true });
        return;
      }
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.write(envelope(toBinary(ConnectResponseSchema, create(ConnectResponseSchema, { requestId: 3n, frame: { case: "send", value: { $typeName: "im.v1.SendResponse", conversationId: "g:room", seq: 9n, prevSeq: 4n, messageId: "m9", sentAtMs: 1n, clientMsgId: "c", duplicate: false } } }))));
      stream.end();
    });
    await expect(LeanConnection.open({ url, token: "t", events: {} })).rejects.toThrow(/refused by the server/);
    const closed: string[] = [];
    const frames: { field: number; requestId: number; bytes: Uint8Array }[] = [];
    const c = await LeanConnection.open({ url, token: "t", events: { onClose: (status) => closed.push(status), onFrame: (field, requestId, bytes) => frames.push({ field, requestId, bytes: Buffer.from(bytes) }) } });
    connections.push(c);
    await waitFor(() => closed.length === 1, "the stream to end");
    expect(closed).toEqual(["ended"]);
    expect(c.closed).toBe(true);
    expect(frames).toHaveLength(1);
    expect(frames[0]).toMatchObject({ field: RESPONSE_FIELD.send, requestId: 3 });
    expect(parseSendAck(frames[0]!.bytes)).toEqual({ conversationId: "g:room", seq: 9, prevSeq: 4, messageId: "m9", duplicate: false });
  });

  it("half-closes on close(): the server sees the end of the request stream and the connection ends after its trailers", async () => {
    let ended = false;
    const url = await serve((stream) => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.on("end", () => {
        ended = true;
        stream.end();
      });
      stream.resume();
    });
    const closed: string[] = [];
    const c = await LeanConnection.open({ url, token: "t", events: { onClose: (status) => closed.push(status) } });
    connections.push(c);
    c.close();
    await waitFor(() => ended && closed.length === 1, "a clean end");
    expect(closed).toEqual(["ended"]);
  });

  it("fails to open when nothing listens", async () => {
    const url = await serve(() => {});
    const port = new URL(url).port;
    await new Promise<void>((resolve) => server!.close(() => resolve()));
    server = undefined;
    await expect(LeanConnection.open({ url: `http://127.0.0.1:${port}`, token: "t", events: {} })).rejects.toThrow(/ECONNREFUSED/);
  });
});
