import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { create, fromBinary } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { ConnectResponseSchema, DisconnectReason, DisconnectSchema, type ConnectResponse } from "../../../gen/im/v1/gateway_pb.js";
import { toWireMessage } from "../../../server/gateway/codec.js";
import { StreamSink } from "../../../server/gateway/lean-stream.js";
import { encodeMessage, ENVELOPE_HEADER_BYTES, Publication } from "../../../server/route/publication.js";

const message = (seq: number, bodyBytes = 10): Publication =>
  Publication.message(
    "test",
    encodeMessage(
      toWireMessage({ conversationId: "g:a", seq, prevSeq: seq - 1, messageId: `m${seq}`, senderId: "u", sentAtMs: 0, contentType: "t", data: new Uint8Array(bodyBytes), clientMsgId: `c${seq}` }),
    ),
  );

/** The messages of a response body, decoded. */
function frames(body: Buffer): ConnectResponse[] {
  const out: ConnectResponse[] = [];
  let at = 0;
  while (at < body.byteLength) {
    const length = body.readUInt32BE(at + 1);
    out.push(fromBinary(ConnectResponseSchema, body.subarray(at + ENVELOPE_HEADER_BYTES, at + ENVELOPE_HEADER_BYTES + length)));
    at += ENVELOPE_HEADER_BYTES + length;
  }
  return out;
}

const seqOf = (f: ConnectResponse): number => (f.frame.case === "message" ? Number(f.frame.value.seq) : -1);

interface Harness {
  /** The server's side of the one stream, with every stream.write counted. */
  readonly sink: StreamSink;
  readonly writes: () => number;
  /** The stream's high-water mark. */
  readonly highWaterMark: number;
  /** The response body the client read, once the stream ended. */
  readonly body: Promise<Buffer>;
  /** Stops the client reading (flow control then holds what the server writes). */
  pause(): void;
}

let closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers) close();
  closers = [];
});

async function harness(pushFlushMs = 0): Promise<Harness> {
  const server = http2.createServer();
  const accepted = new Promise<http2.ServerHttp2Stream>((resolve) => server.once("stream", resolve));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  closers.push(() => {
    client.destroy();
    server.close();
  });
  const request = client.request({ ":method": "POST", ":path": "/im.v1.GatewayService/Connect", "content-type": "application/grpc+proto" });
  const chunks: Buffer[] = [];
  request.on("data", (chunk: Buffer) => chunks.push(chunk));
  const body = new Promise<Buffer>((resolve) => request.on("end", () => resolve(Buffer.concat(chunks))));
  const stream = await accepted;
  let writes = 0;
  const write = stream.write.bind(stream) as (chunk: Uint8Array) => boolean;
  (stream as unknown as { write: (chunk: Uint8Array) => boolean }).write = (chunk) => {
    writes++;
    return write(chunk);
  };
  const sink = new StreamSink(stream, "grpc", "connect", { released() {} }, pushFlushMs);
  sink.open();
  return { sink, writes: () => writes, highWaterMark: stream.writableHighWaterMark, body, pause: () => request.pause() };
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

const wait = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe("StreamSink", () => {
  it("without a push flush delay, writes each frame at once, as it comes", async () => {
    const h = await harness();
    for (let seq = 1; seq <= 3; seq++) h.sink.push(message(seq));
    expect(h.writes()).toBe(3);
    h.sink.end(undefined);
    expect(frames(await h.body).map(seqOf)).toEqual([1, 2, 3]);
  });

  it("with a push flush delay, holds pushes of several ticks for one write, and an answer takes the waiting pushes with it", async () => {
    const h = await harness(200);
    h.sink.push(message(1));
    await tick();
    h.sink.push(message(2));
    await tick();
    expect(h.writes()).toBe(0);
    h.sink.reply(create(ConnectResponseSchema, { requestId: 9n, frame: { case: "pong", value: {} } }));
    expect(h.writes()).toBe(1);
    h.sink.reply(create(ConnectResponseSchema, { requestId: 10n, frame: { case: "pong", value: {} } }));
    expect(h.writes()).toBe(2);
    h.sink.push(message(3));
    await wait(50);
    expect(h.writes()).toBe(2);
    for (let seq = 4; seq <= 50; seq++) h.sink.push(message(seq));
    await wait(250);
    expect(h.writes()).toBe(3);
    h.sink.end(undefined);
    const got = frames(await h.body);
    expect(got.map((f) => (f.frame.case === "pong" ? `pong ${f.requestId}` : seqOf(f)))).toEqual([
      1,
      2,
      "pong 9",
      "pong 10",
      ...Array.from({ length: 48 }, (_, i) => i + 3),
    ]);
  });

  it("writes the waiting pushes before the disconnect that ends the stream", async () => {
    const h = await harness(10_000);
    for (let seq = 1; seq <= 3; seq++) h.sink.push(message(seq));
    h.sink.end(create(DisconnectSchema, { reason: DisconnectReason.SERVER_SHUTDOWN, message: "bye" }));
    h.sink.push(message(4));
    const got = frames(await h.body);
    expect(got.map((f) => f.frame.case)).toEqual(["message", "message", "message", "disconnect"]);
    expect(got.slice(0, 3).map(seqOf)).toEqual([1, 2, 3]);
  });

  it("counts waiting pushes against the bounds as the stream would: bytes at once, pushes from the high-water mark on", async () => {
    const h = await harness(100);
    h.pause();
    const pushes = Array.from({ length: 200 }, (_, i) => message(i + 1, 1000));
    const sizes = pushes.map((p) => p.frame("connect").byteLength);
    // stream.write answers false from the push that takes its buffer to the high-water mark on.
    let total = 0;
    const over = sizes.filter((size) => (total += size) >= h.highWaterMark).length;
    expect(over).toBeGreaterThan(0);
    // The client reads nothing: its window (64 KiB) fills, and what is written beyond waits.
    for (const p of pushes) h.sink.push(p);
    expect(h.writes()).toBe(0);
    expect(h.sink.queuedBytes()).toBe(total);
    expect(h.sink.queuedPushes()).toBe(over);
    await wait(200);
    expect(h.writes()).toBe(1);
    expect(h.sink.queuedBytes()).toBeGreaterThan(total / 2);
    expect(h.sink.queuedPushes()).toBe(over);
    h.sink.push(message(201, 1000));
    expect(h.sink.queuedPushes()).toBe(over + 1);
  });
});
