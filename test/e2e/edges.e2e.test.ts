import http2 from "node:http2";
import net from "node:net";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { ConnectRequestSchema, ConnectResponseSchema, type ConnectResponse } from "../../gen/im/v1/gateway_pb.js";
import { ErrorDetailSchema, ErrorReason } from "../../gen/im/v1/message_pb.js";
import { recordMessages, startTestServer, waitFor, type TestServer } from "../support/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
});

/** A raw HTTP/2 session to the test server. */
async function session(port: number): Promise<http2.ClientHttp2Session> {
  const s = http2.connect(`http://127.0.0.1:${port}`);
  s.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    s.once("remoteSettings", () => resolve());
    s.once("error", reject);
  });
  return s;
}

function frame(bytes: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + bytes.byteLength);
  out.writeUInt32BE(bytes.byteLength, 1);
  out.set(bytes, 5);
  return out;
}

/** Opens GatewayService.Connect on `s` with gRPC framing; collects decoded response frames. */
function openConnect(s: http2.ClientHttp2Session, token: string): { stream: http2.ClientHttp2Stream; frames: ConnectResponse[]; trailers: Promise<http2.IncomingHttpHeaders> } {
  const stream = s.request({ ":method": "POST", ":path": "/im.v1.GatewayService/Connect", "content-type": "application/grpc", te: "trailers", authorization: `Bearer ${token}` });
  const frames: ConnectResponse[] = [];
  let buffered = Buffer.alloc(0);
  stream.on("data", (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 5 && buffered.length >= 5 + buffered.readUInt32BE(1)) {
      const length = buffered.readUInt32BE(1);
      frames.push(fromBinary(ConnectResponseSchema, buffered.subarray(5, 5 + length)));
      buffered = buffered.subarray(5 + length);
    }
  });
  stream.on("error", () => {});
  const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => {
    stream.on("trailers", resolve);
    stream.on("response", (headers) => {
      if (headers["grpc-status"] !== undefined) resolve(headers);
    });
  });
  return { stream, frames, trailers };
}

describe("the edge of the long-connection service", () => {
  it("advertises its concurrent-stream and header-list limits in SETTINGS", async () => {
    t = await startTestServer(["--h2-max-concurrent-streams", "4", "--max-header-list-bytes", "8192"]);
    const s = await session(t.port);
    expect(s.remoteSettings.maxConcurrentStreams).toBe(4);
    expect(s.remoteSettings.maxHeaderListSize).toBe(8192);
    s.destroy();
  });

  it("tells HTTP/2 from HTTP/1.1 by the first bytes even when they arrive a few at a time", async () => {
    t = await startTestServer();
    const answer = async (pieces: string[]): Promise<string> => {
      const socket = net.connect({ port: t!.port, host: "127.0.0.1" });
      socket.on("error", () => {});
      await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
      let got = Buffer.alloc(0);
      socket.on("data", (chunk: Buffer) => (got = Buffer.concat([got, chunk])));
      for (const piece of pieces) {
        socket.write(piece);
        await new Promise((r) => setTimeout(r, 20));
      }
      await waitFor(() => got.length >= 9, "an answer");
      socket.destroy();
      return got.toString("latin1");
    };
    // The client preface and an empty SETTINGS frame, split inside "PRI": the server answers with its SETTINGS (type 4).
    const h2 = await answer(["P", "R", "I * HTTP/2.0\r\n\r\nSM\r\n\r\n", "\x00\x00\x00\x04\x00\x00\x00\x00\x00"]);
    expect(h2.charCodeAt(3)).toBe(4);
    const h1 = await answer(["G", "ET /stats HTTP/1.1\r\nHost: x\r\n", "Connection: close\r\n\r\n"]);
    expect(h1.startsWith("HTTP/1.1 200")).toBe(true);
  });

  it("closes TCP connections that stay silent, or send the HTTP/2 preface but open no stream, past the handshake timeout", async () => {
    t = await startTestServer(["--handshake-timeout-ms", "300"]);
    const silent = net.connect({ port: t.port, host: "127.0.0.1" });
    const silentClosed = new Promise<void>((resolve) => silent.on("close", () => resolve()));
    silent.on("error", () => {});
    const idle = await session(t.port);
    const idleClosed = new Promise<void>((resolve) => idle.on("close", () => resolve()));
    const busy = await session(t.port);
    const { stream } = openConnect(busy, await t.token("alice"));
    await Promise.all([silentClosed, idleClosed]);
    expect(busy.closed || busy.destroyed).toBe(false);
    expect(stream.closed).toBe(false);
    // Counted where an operator looks when clients report resets.
    const stats = (await (await fetch(`${t.baseUrl}/stats`)).json()) as { handshakeTimeouts: number };
    expect(stats.handshakeTimeouts).toBe(2);
    busy.destroy();
  });

  it("refuses a user's long connection beyond the per-user bound with RESOURCE_EXHAUSTED and TOO_MANY_CONNECTIONS, and takes one again after a close", async () => {
    t = await startTestServer(["--max-connections-per-user", "2"]);
    const token = await t.token("alice");
    const s = await session(t.port);
    const first = openConnect(s, token);
    const second = openConnect(s, token);
    for (const c of [first, second]) c.stream.write(frame(toBinary(ConnectRequestSchema, create(ConnectRequestSchema, { requestId: 1n, frame: { case: "ping", value: {} } }))));
    await waitFor(() => first.frames.length > 0 && second.frames.length > 0, "two live connections");
    const third = openConnect(s, token);
    const refused = findTrailerError(new Headers(Object.entries(await third.trailers).flatMap(([k, v]) => (typeof v === "string" ? [[k, v] as [string, string]] : []))));
    expect(refused?.code).toBe(Code.ResourceExhausted);
    expect(refused?.findDetails(ErrorDetailSchema)[0]?.reason).toBe(ErrorReason.TOO_MANY_CONNECTIONS);
    first.stream.close();
    await waitFor(() => t!.server.gateway.connectionCount() === 1, "the closed connection to be released");
    const fourth = openConnect(s, token);
    fourth.stream.write(frame(toBinary(ConnectRequestSchema, create(ConnectRequestSchema, { requestId: 7n, frame: { case: "ping", value: {} } }))));
    await waitFor(() => fourth.frames.some((f) => f.requestId === 7n), "a connection after one closed");
    s.destroy();
  });

  it("ends a long connection at the deadline its client set, with DEADLINE_EXCEEDED, and refuses a malformed one", async () => {
    t = await startTestServer();
    const token = await t.token("alice");
    const s = await session(t.port);
    const timed = s.request({ ":method": "POST", ":path": "/im.v1.GatewayService/Connect", "content-type": "application/grpc", te: "trailers", "grpc-timeout": "300m", authorization: `Bearer ${token}` });
    timed.resume();
    const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve) => timed.on("trailers", resolve));
    expect(trailers["grpc-status"]).toBe(String(Code.DeadlineExceeded));
    const bad = openConnect(s, token);
    bad.stream.close();
    const malformedTimeout = s.request({ ":method": "POST", ":path": "/im.v1.GatewayService/Connect", "content-type": "application/grpc", te: "trailers", "grpc-timeout": "soon", authorization: `Bearer ${token}` });
    malformedTimeout.resume();
    const refused = await new Promise<http2.IncomingHttpHeaders>((resolve) => malformedTimeout.on("response", resolve));
    expect(refused["grpc-status"]).toBe(String(Code.InvalidArgument));
    s.destroy();
  });

  it("keeps a client that sends no application heartbeat alive while its HTTP/2 stack answers the server's PINGs", async () => {
    t = await startTestServer(["--heartbeat-timeout-ms", "1200"]);
    const s = await session(t.port);
    const { stream, frames } = openConnect(s, await t.token("alice"));
    await new Promise((r) => setTimeout(r, 3500));
    expect(stream.closed).toBe(false);
    expect(frames.filter((f) => f.frame.case === "disconnect")).toEqual([]);
    s.destroy();
  });

  it.each([
    ["the Connect protocol, binary", { useBinaryFormat: true }],
    ["the Connect protocol, JSON", { useBinaryFormat: false }],
  ])("serves the long connection to SDK clients over %s on HTTP/2", async (_name, format) => {
    t = await startTestServer();
    const transport = createConnectTransport({ baseUrl: t.baseUrl, httpVersion: "2", ...format });
    const alice = await t.client("alice", { transport });
    const bob = await t.client("bob", { transport });
    const seen = recordMessages(bob);
    await waitFor(() => alice.idle() && bob.idle(), "clients live");
    await alice.send({ toUserId: "bob", body: "over connect" });
    await waitFor(() => seen.length === 1, "bob's push");
    expect(seen).toEqual(["d:alice:bob:1:over connect"]);
  });
});
