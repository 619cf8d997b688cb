import type http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { endStreamToJson } from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { encodeGrpcMessage } from "./grpc-message.js";
import { compressionGzip } from "@connectrpc/connect-node";
import {
  ConnectRequestSchema,
  ConnectResponseSchema,
  SubscribeResponseSchema,
  type ConnectRequest,
  type ConnectResponse,
  type Disconnect,
} from "../../gen/im/v1/gateway_pb.js";
import { ErrorDetailSchema, ErrorReason } from "../../gen/im/v1/message_pb.js";
import { ENVELOPE_HEADER_BYTES, type Publication, type StreamKind } from "../route/publication.js";
import type { FrameSink } from "./connection.js";

/** The wire protocols the lean path speaks: gRPC and Connect, binary (proto) messages. */
export type LeanProtocol = "grpc" | "connect";

/** The two streaming methods the lean path serves. */
export const CONNECT_PATH = "/im.v1.GatewayService/Connect";
export const SUBSCRIBE_PATH = "/im.v1.GatewayService/Subscribe";

const GRPC_CONTENT_TYPE = /^application\/grpc(?:\+proto)?(?:;.*)?$/i;
const CONNECT_CONTENT_TYPE = /^application\/connect\+proto(?:;.*)?$/i;

/** Which protocol a request speaks, or undefined when the lean path does not serve it (JSON, gRPC-Web). */
export function leanProtocolOf(contentType: string | undefined): LeanProtocol | undefined {
  if (contentType === undefined) return undefined;
  if (GRPC_CONTENT_TYPE.test(contentType)) return "grpc";
  if (CONNECT_CONTENT_TYPE.test(contentType)) return "connect";
  return undefined;
}

/** Envelope flags (gRPC and Connect share the first; the second is Connect's end of stream). */
const FLAG_COMPRESSED = 0b01;
const FLAG_END_STREAM = 0b10;

/** A message in an envelope: flags, big-endian length, bytes. */
export function envelope(bytes: Uint8Array, flags = 0): Uint8Array {
  const out = new Uint8Array(ENVELOPE_HEADER_BYTES + bytes.byteLength);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, bytes.byteLength);
  out.set(bytes, ENVELOPE_HEADER_BYTES);
  return out;
}

/**
 * Splits a request body into enveloped messages as its chunks arrive. Holds at most one
 * partial message; a message announced larger than `maxBytes` is refused before it is read.
 */
export class EnvelopeReader {
  readonly #maxBytes: number;
  #buffer: Uint8Array | undefined;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /** Bytes of a partial message still held. */
  get pendingBytes(): number {
    return this.#buffer?.byteLength ?? 0;
  }

  /**
   * Feeds a chunk and hands each complete message to `to.message`; throws RESOURCE_EXHAUSTED
   * for a message over the bound (the reader must not be used afterwards).
   */
  push(chunk: Uint8Array, to: { message(flags: number, data: Uint8Array): void }): void {
    let data = chunk;
    if (this.#buffer !== undefined) {
      const joined = new Uint8Array(this.#buffer.byteLength + chunk.byteLength);
      joined.set(this.#buffer);
      joined.set(chunk, this.#buffer.byteLength);
      data = joined;
      this.#buffer = undefined;
    }
    let at = 0;
    while (data.byteLength - at >= ENVELOPE_HEADER_BYTES) {
      const flags = data[at]!;
      const length = new DataView(data.buffer, data.byteOffset + at + 1, 4).getUint32(0);
      if (length > this.#maxBytes) {
        throw frameTooLarge(`a request message of ${length} bytes is over the limit of ${this.#maxBytes}`);
      }
      if (data.byteLength - at - ENVELOPE_HEADER_BYTES < length) break;
      to.message(flags, data.subarray(at + ENVELOPE_HEADER_BYTES, at + ENVELOPE_HEADER_BYTES + length));
      at += ENVELOPE_HEADER_BYTES + length;
    }
    // Keep only the partial tail, copied, so a large chunk is not pinned by a few bytes.
    if (at < data.byteLength) this.#buffer = data.slice(at);
  }
}

/** RESOURCE_EXHAUSTED with its ErrorDetail, for a request message over the frame limit. */
export function frameTooLarge(message: string): ConnectError {
  return new ConnectError(message, Code.ResourceExhausted, undefined, [
    { desc: ErrorDetailSchema, value: create(ErrorDetailSchema, { reason: ErrorReason.LIMIT_EXCEEDED, retryable: false }) },
  ]);
}

/** INVALID_ARGUMENT with its ErrorDetail, for a request the server cannot read. */
export function malformed(message: string, cause?: unknown): ConnectError {
  return new ConnectError(message, Code.InvalidArgument, undefined, [
    { desc: ErrorDetailSchema, value: create(ErrorDetailSchema, { reason: ErrorReason.INVALID_ARGUMENT, retryable: false }) },
  ], cause);
}

/** Decodes one request message of the long connection (decompressing it when flagged). */
export function decodeRequest(flags: number, data: Uint8Array, compressed: boolean, maxBytes: number): Promise<ConnectRequest> | ConnectRequest {
  if ((flags & FLAG_COMPRESSED) !== 0) {
    if (!compressed) throw malformed("a compressed message on a stream that declared no compression");
    return compressionGzip.decompress(data, maxBytes).then(
      (plain) => decode(plain),
      (error: unknown) => {
        const e = ConnectError.from(error);
        throw e.code === Code.ResourceExhausted ? frameTooLarge(e.rawMessage) : malformed(`a compressed message could not be decompressed: ${e.rawMessage}`, error);
      },
    );
  }
  return decode(data);
}

function decode(data: Uint8Array): ConnectRequest {
  try {
    return fromBinary(ConnectRequestSchema, data);
  } catch (error) {
    throw malformed(`a request message could not be decoded as im.v1.ConnectRequest: ${(error as Error).message}`, error);
  }
}

/** The request's declared message encoding: "identity", "gzip", or another (refused). */
export function requestEncoding(protocol: LeanProtocol, headers: http2.IncomingHttpHeaders): string {
  const value = protocol === "grpc" ? headers["grpc-encoding"] : headers["connect-content-encoding"];
  return typeof value === "string" && value !== "" ? value.toLowerCase() : "identity";
}

/** Response headers of an accepted stream. */
export function responseHeaders(protocol: LeanProtocol): http2.OutgoingHttpHeaders {
  return protocol === "grpc"
    ? { ":status": 200, "content-type": "application/grpc+proto", "grpc-accept-encoding": "gzip" }
    : { ":status": 200, "content-type": "application/connect+proto", "connect-accept-encoding": "gzip" };
}

/** gRPC trailers for the end of a stream: status 0, or the error with its details. */
export function grpcTrailers(error: ConnectError | undefined): http2.OutgoingHttpHeaders {
  const trailers: http2.OutgoingHttpHeaders = {};
  const headers = setTrailerStatus(new Headers(), error);
  if (error !== undefined) headers.set("grpc-message", encodeGrpcMessage(error.rawMessage));
  headers.forEach((value, key) => (trailers[key] = value));
  return trailers;
}

/** The final message of a Connect stream: the error, if any, as Connect's end-of-stream JSON. */
export function connectEndStream(error: ConnectError | undefined): Uint8Array {
  return envelope(new TextEncoder().encode(JSON.stringify(endStreamToJson(new Headers(), error, undefined))), FLAG_END_STREAM);
}

/**
 * Ends a stream that never got going (authentication failed, a limit refused it) with
 * `error`: a gRPC trailers-only response, or a Connect stream holding only its end.
 */
export function refuse(stream: http2.ServerHttp2Stream, protocol: LeanProtocol, error: ConnectError): void {
  if (stream.destroyed || stream.headersSent) return;
  if (protocol === "grpc") {
    stream.respond({ ":status": 200, "content-type": "application/grpc+proto", ...grpcTrailers(error) }, { endStream: true });
  } else {
    stream.respond(responseHeaders("connect"));
    stream.end(connectEndStream(error));
  }
}

const noop = () => {};

/** The StreamSink of a stream, for the shared listeners below. */
const kSink = Symbol("sink");
type Tagged = http2.ServerHttp2Stream & { [kSink]?: StreamSink };

function onStreamDrain(this: Tagged): void {
  this[kSink]?.drained();
}

function onWantTrailers(this: Tagged): void {
  const sink = this[kSink];
  if (sink !== undefined && !this.destroyed) this.sendTrailers(grpcTrailers(sink.error));
}

/**
 * Sinks holding pushes to write together (`--push-flush-ms`, a trade of latency for CPU as
 * centrifuge's write delay): a push may wait up to the delay for one process-wide timer, and a
 * stream's pushes that wait for the same flush are written as one chunk (one Writable write,
 * one write request, usually one HTTP/2 DATA frame and one socket write). Most of a delivery's
 * cost is per write (node:http2's write request and completion, nghttp2's frame, the syscall
 * and, on loopback, the receiver's wake-up), so pushes close together cost about one.
 */
class Flusher {
  readonly #delayMs: number;
  #dirty: StreamSink[] = [];
  #spare: StreamSink[] = [];
  #scheduled = false;
  readonly #run = (): void => this.#flush();

  constructor(delayMs: number) {
    this.#delayMs = delayMs;
  }

  add(sink: StreamSink): void {
    this.#dirty.push(sink);
    if (this.#scheduled) return;
    this.#scheduled = true;
    setTimeout(this.#run, this.#delayMs);
  }

  #flush(): void {
    this.#scheduled = false;
    const sinks = this.#dirty;
    this.#dirty = this.#spare;
    for (let i = 0; i < sinks.length; i++) sinks[i]!.flush();
    sinks.length = 0;
    this.#spare = sinks;
  }
}

const flushers = new Map<number, Flusher>();

function flusherOf(delayMs: number): Flusher {
  let flusher = flushers.get(delayMs);
  if (flusher === undefined) flushers.set(delayMs, (flusher = new Flusher(delayMs)));
  return flusher;
}

/** Told when a StreamSink's stream is ended from the server's side. */
export interface StreamOwner {
  released(): void;
}

/**
 * A FrameSink writing straight to an HTTP/2 stream: a publication's frame is the bytes the
 * Publication encoded once for every stream of its kind, an answer is encoded here. With a
 * push flush delay, pushes wait to be written together (see Flusher) and an answer,
 * heartbeat or end takes the waiting pushes with it, in order. What waits is what node:http2
 * holds for the stream (flow control or a slow reader) and the pushes not yet written.
 */
export class StreamSink implements FrameSink {
  readonly #stream: http2.ServerHttp2Stream;
  readonly #protocol: LeanProtocol;
  readonly #kind: StreamKind;
  /** Pushes written since the stream's buffer last went over its high-water mark. */
  #waiting = 0;
  /** The first frame waiting to be written, and the ones after it. */
  #first: Uint8Array | undefined;
  #more: Uint8Array[] | undefined;
  /** Bytes of the frames not yet written. */
  #pendingBytes = 0;
  #ended = false;
  /** The error the stream ends with (gRPC status or Connect end-of-stream error). */
  error: ConnectError | undefined;
  /** Told once when the stream is ended from this side (the connection is over for the server). */
  readonly #owner: StreamOwner;

  /** Where pushes wait to share a write; undefined: each is written at once. */
  readonly #pushFlusher: Flusher | undefined;

  /** `pushFlushMs`: how long a push may wait to share a write (0: none waits). */
  constructor(stream: http2.ServerHttp2Stream, protocol: LeanProtocol, kind: StreamKind, owner: StreamOwner, pushFlushMs = 0) {
    this.#pushFlusher = pushFlushMs > 0 ? flusherOf(pushFlushMs) : undefined;
    this.#stream = stream;
    this.#protocol = protocol;
    this.#kind = kind;
    this.#owner = owner;
    (stream as Tagged)[kSink] = this;
    stream.on("drain", onStreamDrain);
  }

  /** Sends the response headers; a gRPC stream asks for its trailers when it ends. */
  open(): void {
    if (this.#stream.destroyed || this.#stream.headersSent) return;
    if (this.#protocol === "grpc") {
      this.#stream.respond(responseHeaders("grpc"), { waitForTrailers: true });
      this.#stream.on("wantTrailers", onWantTrailers);
    } else {
      this.#stream.respond(responseHeaders("connect"));
    }
  }

  /** The stream's buffer went below its high-water mark: nothing waits any more. */
  drained(): void {
    this.#waiting = 0;
  }

  push(publication: Publication): void {
    this.#write(publication.frame(this.#kind), true);
  }

  reply(frame: ConnectResponse): void {
    this.#write(envelope(toBinary(ConnectResponseSchema, frame)), false);
  }

  heartbeat(nowMs: number): void {
    this.#write(envelope(toBinary(SubscribeResponseSchema, { $typeName: "im.v1.SubscribeResponse", frame: { case: "heartbeatMs", value: BigInt(nowMs) } })), false);
  }

  end(disconnect: Disconnect | undefined): void {
    if (this.#ended) return;
    this.flush();
    this.#ended = true;
    this.#owner.released();
    const stream = this.#stream;
    if (stream.destroyed) return;
    if (!stream.headersSent) {
      // Nothing was ever sent (the stream ends before it was registered): status only.
      if (this.#protocol === "grpc" || this.error !== undefined) {
        refuse(stream, this.#protocol, this.error ?? new ConnectError("stream closed before it opened", Code.Canceled));
        return;
      }
      this.open();
    }
    if (disconnect !== undefined) {
      const frame = this.#kind === "connect"
        ? toBinary(ConnectResponseSchema, { $typeName: "im.v1.ConnectResponse", requestId: 0n, frame: { case: "disconnect", value: disconnect } })
        : toBinary(SubscribeResponseSchema, { $typeName: "im.v1.SubscribeResponse", frame: { case: "disconnect", value: disconnect } });
      stream.write(envelope(frame));
    }
    if (this.#protocol === "connect") stream.end(connectEndStream(this.error));
    else stream.end();
  }

  queuedPushes(): number {
    return this.#waiting;
  }

  queuedBytes(): number {
    return this.#stream.writableLength + this.#pendingBytes;
  }

  bytesRead(): number | undefined {
    return this.#stream.session?.socket?.bytesRead;
  }

  probe(): boolean {
    const session = this.#stream.session;
    if (session === undefined || session.destroyed) return false;
    try {
      return session.ping(noop);
    } catch {
      return false;
    }
  }

  /** Writes the waiting frames as one chunk. */
  flush(): void {
    const first = this.#first;
    if (first === undefined) return;
    const more = this.#more;
    const bytes = this.#pendingBytes;
    this.#first = undefined;
    this.#more = undefined;
    this.#pendingBytes = 0;
    const stream = this.#stream;
    if (this.#ended || stream.destroyed) return;
    let chunk = first;
    if (more !== undefined) {
      const joined = Buffer.allocUnsafe(bytes);
      joined.set(first, 0);
      let at = first.byteLength;
      for (const frame of more) {
        joined.set(frame, at);
        at += frame.byteLength;
      }
      chunk = joined;
    }
    stream.write(chunk);
    // Counted pushes wait for a drain only while the stream reports one due.
    if (!stream.writableNeedDrain) this.#waiting = 0;
  }

  #write(bytes: Uint8Array, push: boolean): void {
    const stream = this.#stream;
    if (this.#ended || stream.destroyed) return;
    if (!push || this.#pushFlusher === undefined) {
      if (this.#first !== undefined) {
        // Pushes wait: this frame leaves with them, after them, now.
        (this.#more ??= []).push(bytes);
        this.#pendingBytes += bytes.byteLength;
        this.flush();
        return;
      }
      const ok = stream.write(bytes);
      if (push && (!ok || this.#waiting > 0)) this.#waiting++;
      return;
    }
    if (this.#first === undefined) {
      this.#first = bytes;
      this.#pushFlusher.add(this);
    } else {
      (this.#more ??= []).push(bytes);
    }
    this.#pendingBytes += bytes.byteLength;
    // As stream.write would answer for these bytes: over the high-water mark, they wait.
    if (stream.writableLength + this.#pendingBytes >= stream.writableHighWaterMark || this.#waiting > 0) this.#waiting++;
  }

}
