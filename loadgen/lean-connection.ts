import http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { ConnectRequestSchema, type ConnectRequest } from "../gen/im/v1/gateway_pb.js";

/** A message push as the lean client reads it, without decoding anything it does not need. */
export interface LeanPush {
  readonly conversationId: string;
  readonly seq: number;
  readonly prevSeq: number;
  readonly messageId: string;
  readonly contentType: string;
  /** The body bytes (a view into the received frame: copy to keep). */
  readonly data: Uint8Array;
}

/** The fields of a SendResponse (ConnectResponse.frame.send) a load test reads. */
export interface LeanSendAck {
  readonly conversationId: string;
  readonly seq: number;
  readonly prevSeq: number;
  readonly messageId: string;
  readonly duplicate: boolean;
}

/** What a lean connection reports. */
export interface LeanConnectionEvents {
  /** A message push (ConnectResponse.frame.message). */
  onPush?(push: LeanPush): void;
  /** Any other frame, raw (answers, disconnects): its ConnectResponse field number and bytes. */
  onFrame?(field: number, requestId: number, bytes: Uint8Array): void;
  /** The stream or its session ended; `status` is the gRPC status ("" when the session died). */
  onClose?(status: string, message: string): void;
}

/** Options of a lean connection. */
export interface LeanConnectionOptions {
  /** http://host:port of the gateway. */
  readonly url: string;
  readonly token: string;
  /** Loopback source address, to spread connections over more ephemeral ports. */
  readonly localAddress?: string;
  readonly events: LeanConnectionEvents;
}

/** ConnectResponse.frame field numbers (gateway.proto). */
export const RESPONSE_FIELD = { message: 2, read: 3, send: 4, pong: 8, error: 9, disconnect: 10, membership: 11 } as const;

/** The LeanConnection of a stream or session, so that one shared function serves each event of every connection. */
const kLean = Symbol("lean");
type Tagged<T> = T & { [kLean]?: LeanConnection };

function onStreamData(this: Tagged<http2.ClientHttp2Stream>, chunk: Buffer): void {
  this[kLean]?.data(chunk);
}

function onStreamHeaders(this: Tagged<http2.ClientHttp2Stream>, headers: http2.IncomingHttpHeaders): void {
  if (headers["grpc-status"] !== undefined) this[kLean]?.status(headers);
}

function onStreamTrailers(this: Tagged<http2.ClientHttp2Stream>, trailers: http2.IncomingHttpHeaders): void {
  this[kLean]?.status(trailers);
}

function onClose(this: Tagged<http2.ClientHttp2Stream | http2.ClientHttp2Session>): void {
  this[kLean]?.closedNow();
}

function ignore(): void {}

/**
 * One device's long connection at the lowest cost a client can have: one HTTP/2 session, one
 * `GatewayService.Connect` stream in gRPC framing, frames parsed in place (only the fields of a
 * message push that a load test reads), liveness by HTTP/2 PING (which the server's stack
 * answers without the application). Events of every connection go through shared listeners
 * (no closures per connection). For load generation, where the SDK's own cost would bound
 * what one machine can drive; correctness of delivery is checked by the caller on the
 * seq / prev_seq it reports.
 */
export class LeanConnection {
  readonly #session: http2.ClientHttp2Session;
  readonly #stream: http2.ClientHttp2Stream;
  readonly #events: LeanConnectionEvents;
  #buffer: Buffer | undefined;
  #closed = false;
  #status = "";
  #statusMessage = "";
  #nextRequestId = 1;

  private constructor(session: http2.ClientHttp2Session, stream: http2.ClientHttp2Stream, events: LeanConnectionEvents) {
    this.#session = session;
    this.#stream = stream;
    this.#events = events;
    (stream as Tagged<http2.ClientHttp2Stream>)[kLean] = this;
    (session as Tagged<http2.ClientHttp2Session>)[kLean] = this;
    stream.on("data", onStreamData);
    stream.on("trailers", onStreamTrailers);
    stream.on("response", onStreamHeaders);
    stream.on("error", ignore);
    stream.on("close", onClose);
    session.on("close", onClose);
  }

  /** Opens the session and the stream; resolves once the server sent the stream's headers. */
  static open(options: LeanConnectionOptions): Promise<LeanConnection> {
    return new Promise((resolve, reject) => {
      // localAddress goes through to net.connect with the other options.
      const session = http2.connect(options.url, { settings: { enablePush: false }, ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }) });
      const onError = (error: Error) => {
        session.destroy();
        reject(error);
      };
      session.once("error", onError);
      session.on("error", ignore);
      const stream = session.request({
        ":method": "POST",
        ":path": "/im.v1.GatewayService/Connect",
        "content-type": "application/grpc",
        te: "trailers",
        authorization: `Bearer ${options.token}`,
      });
      const connection = new LeanConnection(session, stream, options.events);
      const onEarlyClose = () => reject(new Error(`the stream closed before it opened${connection.#status === "" ? "" : `: grpc-status ${connection.#status} ${connection.#statusMessage}`}`));
      stream.once("close", onEarlyClose);
      stream.once("response", (headers) => {
        stream.off("close", onEarlyClose);
        session.off("error", onError);
        if (headers["grpc-status"] !== undefined && headers["grpc-status"] !== "0") {
          reject(new Error(`refused: grpc-status ${String(headers["grpc-status"])} ${decodeURIComponent(String(headers["grpc-message"] ?? ""))}`));
        } else {
          resolve(connection);
        }
      });
    });
  }

  /** Sends a request frame; returns its request id. */
  request(frame: ConnectRequest["frame"]): number {
    const requestId = this.#nextRequestId++;
    const bytes = toBinary(ConnectRequestSchema, create(ConnectRequestSchema, { requestId: BigInt(requestId), frame }));
    const out = new Uint8Array(5 + bytes.byteLength);
    new DataView(out.buffer).setUint32(1, bytes.byteLength);
    out.set(bytes, 5);
    if (!this.#stream.destroyed) this.#stream.write(out);
    return requestId;
  }

  /** Round trip of an HTTP/2 PING in ms (rejects when the session is gone). */
  ping(): Promise<number> {
    return new Promise((resolve, reject) => {
      if (!this.pingWith((error, duration) => (error === null ? resolve(duration) : reject(error)))) reject(new Error("session closed"));
    });
  }

  /** Sends an HTTP/2 PING; `done` gets its round trip in ms. False (and no call) when the session is gone. */
  pingWith(done: (error: Error | null, durationMs: number) => void): boolean {
    const session = this.#session;
    if (session.destroyed || session.closed) return false;
    try {
      return session.ping(done);
    } catch {
      return false;
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes waiting in the stream's write buffer (a server that does not read shows here). */
  get writableLength(): number {
    return this.#stream.writableLength;
  }

  /** Ends the stream and the session. */
  close(): void {
    if (!this.#stream.destroyed) this.#stream.close();
    if (!this.#session.destroyed) this.#session.close();
  }

  /** Drops the connection without a goodbye (a device that vanished). */
  destroy(): void {
    this.#session.destroy();
  }

  /** @internal a gRPC status in headers or trailers. */
  status(headers: http2.IncomingHttpHeaders): void {
    this.#status = String(headers["grpc-status"] ?? "");
    this.#statusMessage = decodeURIComponent(String(headers["grpc-message"] ?? ""));
  }

  /** @internal the stream or the session closed. */
  closedNow(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.#session.destroyed) this.#session.close();
    this.#events.onClose?.(this.#status, this.#statusMessage);
  }

  /** @internal a chunk of the response body: split into enveloped messages. */
  data(chunk: Buffer): void {
    let data = chunk;
    if (this.#buffer !== undefined) {
      data = Buffer.concat([this.#buffer, chunk]);
      this.#buffer = undefined;
    }
    let at = 0;
    while (data.byteLength - at >= 5) {
      const length = data.readUInt32BE(at + 1);
      if (data.byteLength - at - 5 < length) break;
      this.#onMessage(data, at + 5, at + 5 + length);
      at += 5 + length;
    }
    // Keep only the partial tail, copied, so a large chunk is not pinned by a few bytes.
    if (at < data.byteLength) this.#buffer = Buffer.from(data.subarray(at));
  }

  /** One ConnectResponse in data[start, end): its request id and frame field; a push parsed in place. */
  #onMessage(data: Buffer, start: number, end: number): void {
    const reader = new Reader(data, start, end);
    let requestId = 0;
    while (!reader.done) {
      const tag = reader.varint();
      const field = tag >>> 3;
      const wire = tag & 7;
      if (field === 1 && wire === 0) {
        requestId = reader.varint();
        continue;
      }
      if (wire !== 2) {
        reader.skip(wire);
        continue;
      }
      const length = reader.varint();
      const at = reader.at;
      reader.at += length;
      if (field === RESPONSE_FIELD.message) this.#events.onPush?.(parseMessage(data, at, at + length));
      else this.#events.onFrame?.(field, requestId, data.subarray(at, at + length));
    }
  }
}

/** The fields of an im.v1.Message a load test reads, from data[start, end). */
function parseMessage(data: Buffer, start: number, end: number): LeanPush {
  const reader = new Reader(data, start, end);
  let conversationId = "";
  let seq = 0;
  let prevSeq = 0;
  let messageId = "";
  let contentType = "";
  let body: Uint8Array = EMPTY;
  while (!reader.done) {
    const tag = reader.varint();
    const field = tag >>> 3;
    const wire = tag & 7;
    if (field === 1 && wire === 2) conversationId = reader.string();
    else if (field === 2 && wire === 0) seq = reader.varint();
    else if (field === 3 && wire === 0) prevSeq = reader.varint();
    else if (field === 4 && wire === 2) messageId = reader.string();
    else if (field === 7 && wire === 2) {
      const length = reader.varint();
      const inner = new Reader(data, reader.at, reader.at + length);
      reader.at += length;
      while (!inner.done) {
        const t = inner.varint();
        if (t === ((1 << 3) | 2)) contentType = inner.string();
        else if (t === ((2 << 3) | 2)) body = inner.bytes();
        else inner.skip(t & 7);
      }
    } else reader.skip(wire);
  }
  return { conversationId, seq, prevSeq, messageId, contentType, data: body };
}

/** Reads a SendResponse (the bytes of ConnectResponse.frame.send). */
export function parseSendAck(bytes: Uint8Array): LeanSendAck {
  const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const reader = new Reader(data, 0, data.byteLength);
  let conversationId = "";
  let seq = 0;
  let prevSeq = 0;
  let messageId = "";
  let duplicate = false;
  while (!reader.done) {
    const tag = reader.varint();
    const field = tag >>> 3;
    const wire = tag & 7;
    if (field === 1 && wire === 2) conversationId = reader.string();
    else if (field === 2 && wire === 0) seq = reader.varint();
    else if (field === 3 && wire === 0) prevSeq = reader.varint();
    else if (field === 4 && wire === 2) messageId = reader.string();
    else if (field === 7 && wire === 0) duplicate = reader.varint() !== 0;
    else reader.skip(wire);
  }
  return { conversationId, seq, prevSeq, messageId, duplicate };
}

/** Reads the code and message of a RequestError or a Disconnect's reason and message (field 1 varint, field 2 string). */
export function parseCodeAndMessage(bytes: Uint8Array): { readonly code: number; readonly message: string } {
  const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const reader = new Reader(data, 0, data.byteLength);
  let code = 0;
  let message = "";
  while (!reader.done) {
    const tag = reader.varint();
    if (tag === ((1 << 3) | 0)) code = reader.varint();
    else if (tag === ((2 << 3) | 2)) message = new TextDecoder().decode(reader.bytes());
    else reader.skip(tag & 7);
  }
  return { code, message };
}

const EMPTY = new Uint8Array(0);

/** A minimal protobuf wire reader over data[at, end) (varints up to 2^53, length-delimited fields). */
class Reader {
  readonly #data: Buffer;
  readonly #end: number;
  at: number;

  constructor(data: Buffer, start: number, end: number) {
    this.#data = data;
    this.at = start;
    this.#end = end;
  }

  get done(): boolean {
    return this.at >= this.#end;
  }

  varint(): number {
    let result = 0;
    let scale = 1;
    for (;;) {
      if (this.at >= this.#end) throw new Error("truncated varint");
      const b = this.#data[this.at++]!;
      result += (b & 0x7f) * scale;
      if (b < 0x80) return result;
      scale *= 128;
    }
  }

  bytes(): Uint8Array {
    const length = this.varint();
    const out = this.#data.subarray(this.at, this.at + length);
    this.at += length;
    return out;
  }

  /** A length-delimited field as a string; ids and content types here are ASCII, so latin1 reads them exactly. */
  string(): string {
    const length = this.varint();
    const out = this.#data.toString("latin1", this.at, this.at + length);
    this.at += length;
    return out;
  }

  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.at += 8;
    else if (wire === 2) {
      const length = this.varint();
      this.at += length;
    } else if (wire === 5) this.at += 4;
    else throw new Error(`unsupported wire type ${wire}`);
  }
}
