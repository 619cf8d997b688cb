import net from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { ConnectRequestSchema, type ConnectRequest } from "../gen/im/v1/gateway_pb.js";
import { EnvelopeReader } from "../server/gateway/lean-stream.js";

/** Largest response message the client accepts (a sync page can be large). */
const FRAME_BYTES_MAX = 64 * 1024 * 1024;

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
  /** The server answered the stream's headers: the stream is open. */
  onOpen?(): void;
  /** A message push (ConnectResponse.frame.message). */
  onPush?(push: LeanPush): void;
  /** Any other frame, raw (answers, disconnects): its ConnectResponse field number and bytes. */
  onFrame?(field: number, requestId: number, bytes: Uint8Array): void;
  /** The stream or the connection ended; `status` says how ("" when the connection just went). */
  onClose?(status: string, message: string): void;
}

/** Options of a lean connection. */
export interface LeanConnectionOptions {
  /** http://host:port of the gateway. */
  readonly url: string;
  readonly token: string;
  /** Loopback source address, to spread connections over more ephemeral ports. */
  readonly localAddress?: string;
  /**
   * A first request message (encodeRequest with request id 1), written with the stream's
   * headers, so that its answer comes one round trip after connecting.
   */
  readonly firstRequest?: Buffer;
  readonly events: LeanConnectionEvents;
}

/** ConnectResponse.frame field numbers (gateway.proto). */
export const RESPONSE_FIELD = { message: 2, read: 3, send: 4, pong: 8, error: 9, disconnect: 10, membership: 11 } as const;

// HTTP/2 (RFC 9113): frame types, flags, settings.
const DATA = 0x0;
const HEADERS = 0x1;
const RST_STREAM = 0x3;
const SETTINGS = 0x4;
const PING = 0x6;
const GOAWAY = 0x7;
const WINDOW_UPDATE = 0x8;
const CONTINUATION = 0x9;
const FLAG_END_STREAM = 0x1;
const FLAG_ACK = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;
const SETTINGS_ENABLE_PUSH = 0x2;
const SETTINGS_INITIAL_WINDOW_SIZE = 0x4;
const SETTINGS_MAX_FRAME_SIZE = 0x5;
const FRAME_HEADER_BYTES = 9;
const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
/** The one stream of the connection (the first client-initiated stream). */
const STREAM_ID = 1;
/** Flow-control windows before SETTINGS / WINDOW_UPDATE change them (RFC 9113 6.9.2). */
const DEFAULT_WINDOW = 65_535;
const DEFAULT_MAX_FRAME = 16_384;
/** What this client lets the server send ahead (stream and connection), replenished at half. */
const RECEIVE_WINDOW = 16 * 1024 * 1024;
const ENVELOPE_HEADER_BYTES = 5;

function frameHeader(out: Buffer, at: number, length: number, type: number, flags: number, streamId: number): number {
  out.writeUIntBE(length, at, 3);
  out[at + 3] = type;
  out[at + 4] = flags;
  out.writeUInt32BE(streamId, at + 5);
  return at + FRAME_HEADER_BYTES;
}

function frame(type: number, flags: number, streamId: number, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.byteLength);
  frameHeader(out, 0, payload.byteLength, type, flags, streamId);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

/** An HPACK integer with an N-bit prefix (RFC 7541 5.1); `high` holds the bits above the prefix. */
function hpackInteger(out: number[], prefixBits: number, high: number, value: number): void {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out.push(high | value);
    return;
  }
  out.push(high | max);
  value -= max;
  while (value >= 0x80) {
    out.push((value & 0x7f) | 0x80);
    value = Math.floor(value / 128);
  }
  out.push(value);
}

function hpackString(out: number[], value: string): void {
  hpackInteger(out, 7, 0, value.length);
  for (let i = 0; i < value.length; i++) out.push(value.charCodeAt(i) & 0xff);
}

/**
 * A header field as a literal without indexing (RFC 7541 6.2.2), by static-table name index or
 * new name, and no Huffman coding: nothing enters the server's decoding table, so every header
 * block of this client is independent of every other.
 */
function hpackLiteral(out: number[], name: number | string, value: string): void {
  if (typeof name === "number") hpackInteger(out, 4, 0x00, name);
  else {
    out.push(0x00);
    hpackString(out, name);
  }
  hpackString(out, value);
}

/** RFC 7541 Appendix A: static table entries this client uses. */
const STATIC = { authority: 1, methodPost: 3, path: 4, schemeHttp: 6, authorization: 23, contentType: 31, userAgent: 58 } as const;

/** The opening bytes of every connection to one authority: preface, SETTINGS, connection window, and the header block start. */
const openings = new Map<string, { readonly head: Buffer; readonly headerBlock: readonly number[] }>();

function openingBytes(authority: string): { readonly head: Buffer; readonly headerBlock: readonly number[] } {
  let o = openings.get(authority);
  if (o !== undefined) return o;
  const settings = Buffer.alloc(12);
  settings.writeUInt16BE(SETTINGS_ENABLE_PUSH, 0);
  settings.writeUInt32BE(0, 2);
  settings.writeUInt16BE(SETTINGS_INITIAL_WINDOW_SIZE, 6);
  settings.writeUInt32BE(RECEIVE_WINDOW, 8);
  const increment = Buffer.alloc(4);
  increment.writeUInt32BE(RECEIVE_WINDOW - DEFAULT_WINDOW, 0);
  const head = Buffer.concat([PREFACE, frame(SETTINGS, 0, 0, settings), frame(WINDOW_UPDATE, 0, 0, increment)]);
  const block: number[] = [0x80 | STATIC.methodPost, 0x80 | STATIC.schemeHttp];
  hpackLiteral(block, STATIC.path, "/im.v1.GatewayService/Connect");
  hpackLiteral(block, STATIC.authority, authority);
  hpackLiteral(block, STATIC.contentType, "application/grpc");
  hpackLiteral(block, "te", "trailers");
  hpackLiteral(block, STATIC.userAgent, "microchat-loadgen");
  o = { head, headerBlock: block };
  openings.set(authority, o);
  return o;
}

/** The LeanConnection of a socket, so that one shared function serves each event of every connection. */
const kLean = Symbol("lean");
type Tagged = net.Socket & { [kLean]?: LeanConnection };

function onSocketData(this: Tagged, chunk: Buffer): void {
  this[kLean]?.received(chunk);
}

function onSocketError(this: Tagged, error: Error): void {
  this[kLean]?.failed(error);
}

function onSocketClose(this: Tagged): void {
  this[kLean]?.socketClosed();
}

type Opening = { resolve(connection: LeanConnection): void; reject(error: Error): void };

/**
 * One device's long connection at the lowest cost a client can have: a TCP socket speaking
 * HTTP/2 by itself (RFC 9113: preface, SETTINGS, flow control, PING, GOAWAY; no HPACK
 * decoding, since nothing of the server's headers is read but where a header block ends)
 * with one `GatewayService.Connect` stream in gRPC framing, frames parsed in place (only the
 * fields of a message push that a load test reads), liveness by HTTP/2 PING. Node's own
 * HTTP/2 client costs about 40 KiB and half a millisecond of CPU per connection, as much as the
 * server it measures; this costs a socket and one object. Events of every connection go
 * through shared listeners (no closures per connection). For load generation; correctness of
 * delivery is checked by the caller on the seq / prev_seq it reports.
 */
export class LeanConnection {
  readonly #socket: net.Socket;
  readonly #events: LeanConnectionEvents;
  #opening: Opening | undefined;
  /** A partial HTTP/2 frame. */
  #frame: Buffer | undefined;
  /** The stream's body, split into gRPC messages (bounded: a message over FRAME_BYTES_MAX ends the stream). */
  readonly #envelopes = new EnvelopeReader(FRAME_BYTES_MAX);
  /** Set while a header block continues in CONTINUATION frames: whether it ends the stream. */
  #blockEndsStream: boolean | undefined;
  #responded = false;
  #localEnded = false;
  #closed = false;
  #error: Error | undefined;
  /** What the server lets this client send, and what the client received since it last said so. */
  #sendWindow = DEFAULT_WINDOW;
  #sendStreamWindow = DEFAULT_WINDOW;
  #peerInitialWindow = DEFAULT_WINDOW;
  #peerMaxFrame = DEFAULT_MAX_FRAME;
  #unacknowledged = 0;
  #streamUnacknowledged = 0;
  /** Request messages waiting for flow-control window (bounded by the caller's requests in flight). */
  #waiting: Buffer[] | undefined;
  #pingSentAt = 0;
  #pingDone: ((error: Error | null, durationMs: number) => void) | undefined;
  #nextRequestId = 1;

  private constructor(socket: net.Socket, events: LeanConnectionEvents, opening: Opening | undefined) {
    this.#socket = socket;
    this.#events = events;
    this.#opening = opening;
    (socket as Tagged)[kLean] = this;
    socket.on("data", onSocketData);
    socket.on("error", onSocketError);
    socket.on("close", onSocketClose);
  }

  /** Connects and opens the stream; resolves once the server sent the stream's response headers. */
  static open(options: LeanConnectionOptions): Promise<LeanConnection> {
    return new Promise((resolve, reject) => LeanConnection.#start(options, { resolve, reject }));
  }

  /**
   * Connects and opens the stream, returning at once: events say the rest (onOpen, or onClose
   * when it could not connect or was refused).
   */
  static start(options: LeanConnectionOptions): LeanConnection {
    return LeanConnection.#start(options, undefined);
  }

  static #start(options: LeanConnectionOptions, opening: Opening | undefined): LeanConnection {
    const url = new URL(options.url);
    const socket = net.connect({ host: url.hostname, port: Number(url.port), ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }) });
    socket.setNoDelay(true);
    const connection = new LeanConnection(socket, options.events, opening);
    // Written at once: the socket sends it when connected.
    const { head, headerBlock } = openingBytes(url.host);
    const block = [...headerBlock];
    hpackLiteral(block, STATIC.authorization, `Bearer ${options.token}`);
    const first = options.firstRequest;
    const out = Buffer.allocUnsafe(head.byteLength + FRAME_HEADER_BYTES + block.length + (first === undefined ? 0 : FRAME_HEADER_BYTES + first.byteLength));
    head.copy(out, 0);
    let at = frameHeader(out, head.byteLength, block.length, HEADERS, FLAG_END_HEADERS, STREAM_ID);
    for (let i = 0; i < block.length; i++) out[at + i] = block[i]!;
    at += block.length;
    if (first !== undefined) {
      // Well inside the initial flow-control windows.
      at = frameHeader(out, at, first.byteLength, DATA, 0, STREAM_ID);
      first.copy(out, at);
      connection.#sendWindow -= first.byteLength;
      connection.#sendStreamWindow -= first.byteLength;
      connection.#nextRequestId = 2;
    }
    socket.write(out);
    return connection;
  }

  /** A request message, enveloped, ready to write (or to pass as `firstRequest` with request id 1). */
  static encodeRequest(requestId: number, frame: ConnectRequest["frame"]): Buffer {
    const bytes = toBinary(ConnectRequestSchema, create(ConnectRequestSchema, { requestId: BigInt(requestId), frame }));
    const message = Buffer.allocUnsafe(ENVELOPE_HEADER_BYTES + bytes.byteLength);
    message[0] = 0;
    message.writeUInt32BE(bytes.byteLength, 1);
    message.set(bytes, ENVELOPE_HEADER_BYTES);
    return message;
  }

  /** Sends a request frame; returns its request id. */
  request(frame: ConnectRequest["frame"]): number {
    const requestId = this.#nextRequestId++;
    this.#send(LeanConnection.encodeRequest(requestId, frame));
    return requestId;
  }

  /** Round trip of an HTTP/2 PING in ms (rejects when the connection is gone or a PING is already out). */
  ping(): Promise<number> {
    return new Promise((resolve, reject) => {
      if (!this.pingWith((error, duration) => (error === null ? resolve(duration) : reject(error)))) reject(new Error("connection closed or a PING is already awaiting its ack"));
    });
  }

  /**
   * Sends an HTTP/2 PING; `done` gets its round trip in ms (or the error that ended the
   * connection first). One at a time: false (and no call) while one is out or when closed.
   */
  pingWith(done: (error: Error | null, durationMs: number) => void): boolean {
    if (this.#closed || this.#pingDone !== undefined) return false;
    this.#pingDone = done;
    this.#pingSentAt = performance.now();
    this.#socket.write(PING_FRAME);
    return true;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes waiting to be written (a server that does not read shows here). */
  get writableLength(): number {
    return this.#socket.writableLength;
  }

  /** Ends the stream from this side (END_STREAM); the server finishes, and the connection closes after its trailers. */
  close(): void {
    if (this.#closed) return;
    if (!this.#responded) {
      this.destroy();
      return;
    }
    if (this.#localEnded) return;
    this.#localEnded = true;
    this.#socket.write(frame(DATA, FLAG_END_STREAM, STREAM_ID, EMPTY));
  }

  /** Drops the connection without a goodbye (a device that vanished). */
  destroy(): void {
    this.#socket.destroy();
  }

  /** @internal bytes from the socket: whole HTTP/2 frames are handled, a partial one kept. */
  received(chunk: Buffer): void {
    let data = chunk;
    if (this.#frame !== undefined) {
      data = Buffer.concat([this.#frame, chunk]);
      this.#frame = undefined;
    }
    let at = 0;
    while (data.byteLength - at >= FRAME_HEADER_BYTES && !this.#closed) {
      const length = data.readUIntBE(at, 3);
      if (data.byteLength - at - FRAME_HEADER_BYTES < length) break;
      const start = at + FRAME_HEADER_BYTES;
      this.#onFrame(data[at + 3]!, data[at + 4]!, data.readUInt32BE(at + 5) & 0x7fffffff, data, start, start + length);
      at = start + length;
    }
    if (at < data.byteLength && !this.#closed) this.#frame = Buffer.from(data.subarray(at));
  }

  /** @internal the socket failed; 'close' follows. */
  failed(error: Error): void {
    this.#error ??= error;
  }

  /** @internal the socket closed. */
  socketClosed(): void {
    this.#end("", this.#error?.message ?? "the connection closed");
  }

  #onFrame(type: number, flags: number, streamId: number, data: Buffer, start: number, end: number): void {
    switch (type) {
      case DATA: {
        if (streamId !== STREAM_ID) return;
        this.#consumed(end - start);
        let from = start;
        let to = end;
        if ((flags & FLAG_PADDED) !== 0) {
          to -= data[from]!;
          from++;
        }
        this.#body(data, from, to);
        if ((flags & FLAG_END_STREAM) !== 0) this.#streamEnded("the server ended the stream");
        return;
      }
      case HEADERS:
        if (streamId !== STREAM_ID) return;
        if ((flags & FLAG_END_HEADERS) === 0) this.#blockEndsStream = (flags & FLAG_END_STREAM) !== 0;
        else this.#headers((flags & FLAG_END_STREAM) !== 0);
        return;
      case CONTINUATION:
        if (streamId !== STREAM_ID || this.#blockEndsStream === undefined || (flags & FLAG_END_HEADERS) === 0) return;
        this.#headers(this.#blockEndsStream);
        this.#blockEndsStream = undefined;
        return;
      case RST_STREAM:
        if (streamId === STREAM_ID) this.#streamEnded(`the server reset the stream (code ${end - start >= 4 ? data.readUInt32BE(start) : "?"})`, "reset");
        return;
      case SETTINGS:
        if ((flags & FLAG_ACK) !== 0) return;
        for (let at = start; at + 6 <= end; at += 6) {
          const id = data.readUInt16BE(at);
          const value = data.readUInt32BE(at + 2);
          if (id === SETTINGS_INITIAL_WINDOW_SIZE) {
            this.#sendStreamWindow += value - this.#peerInitialWindow;
            this.#peerInitialWindow = value;
          } else if (id === SETTINGS_MAX_FRAME_SIZE) {
            this.#peerMaxFrame = value;
          }
        }
        this.#socket.write(SETTINGS_ACK);
        this.#flush();
        return;
      case PING:
        if ((flags & FLAG_ACK) === 0) {
          // The server's liveness probe: answered like any HTTP/2 stack does.
          this.#socket.write(frame(PING, FLAG_ACK, 0, data.subarray(start, end)));
        } else if (this.#pingDone !== undefined) {
          const done = this.#pingDone;
          this.#pingDone = undefined;
          done(null, performance.now() - this.#pingSentAt);
        }
        return;
      case GOAWAY:
        // The server drains: the stream ends with its trailers, or the connection closes.
        if (end - start >= 4 && (data.readUInt32BE(start) & 0x7fffffff) < STREAM_ID) this.#streamEnded("the server went away before the stream", "goaway");
        return;
      case WINDOW_UPDATE: {
        const increment = data.readUInt32BE(start) & 0x7fffffff;
        if (streamId === 0) this.#sendWindow += increment;
        else if (streamId === STREAM_ID) this.#sendStreamWindow += increment;
        this.#flush();
        return;
      }
      default:
      // PRIORITY, PUSH_PROMISE (push is disabled), unknown types: nothing to do (RFC 9113 4.1).
    }
  }

  #headers(endsStream: boolean): void {
    if (!this.#responded) {
      this.#responded = true;
      if (endsStream) {
        // A trailers-only response: the server refused the stream. Its grpc-status is in the
        // HPACK-coded headers, which this client does not decode.
        this.#streamEnded("refused by the server (a trailers-only gRPC response; --device sdk shows its status)", "refused");
        return;
      }
      const opening = this.#opening;
      this.#opening = undefined;
      opening?.resolve(this);
      this.#events.onOpen?.();
      return;
    }
    if (endsStream) this.#streamEnded("the server ended the stream", "ended");
  }

  /** Flow control: what was received counts against the windows, which are reopened at half. */
  #consumed(bytes: number): void {
    this.#unacknowledged += bytes;
    this.#streamUnacknowledged += bytes;
    if (this.#unacknowledged >= RECEIVE_WINDOW / 2) {
      this.#socket.write(windowUpdate(0, this.#unacknowledged));
      this.#unacknowledged = 0;
    }
    if (this.#streamUnacknowledged >= RECEIVE_WINDOW / 2 && !this.#closed) {
      this.#socket.write(windowUpdate(STREAM_ID, this.#streamUnacknowledged));
      this.#streamUnacknowledged = 0;
    }
  }

  /** Part of the response body: split into gRPC messages (the server's own envelope reader), a partial one kept. */
  #body(data: Buffer, start: number, end: number): void {
    try {
      this.#envelopes.push(data.subarray(start, end), this);
    } catch (error) {
      this.#error = error as Error;
      this.#streamEnded((error as Error).message, "protocol");
    }
  }

  /** @internal one gRPC message of the response body, from the envelope reader. */
  message(_flags: number, bytes: Uint8Array): void {
    if (this.#closed) return;
    const data = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#onMessage(data, 0, data.byteLength);
  }

  /** Writes a request message as DATA frames, as far as the flow-control windows allow. */
  #send(message: Buffer): void {
    if (this.#closed || this.#localEnded) return;
    if (this.#waiting !== undefined) {
      this.#waiting.push(message);
      return;
    }
    const rest = this.#write(message);
    if (rest !== undefined) this.#waiting = [rest];
  }

  /** Writes what the windows allow of `message`; returns the rest. */
  #write(message: Buffer): Buffer | undefined {
    let at = 0;
    const frames: Buffer[] = [];
    while (at < message.byteLength) {
      const size = Math.min(message.byteLength - at, this.#peerMaxFrame, this.#sendWindow, this.#sendStreamWindow);
      if (size <= 0) break;
      frames.push(frame(DATA, 0, STREAM_ID, message.subarray(at, at + size)));
      this.#sendWindow -= size;
      this.#sendStreamWindow -= size;
      at += size;
    }
    if (frames.length === 1) this.#socket.write(frames[0]!);
    else if (frames.length > 1) this.#socket.write(Buffer.concat(frames));
    return at < message.byteLength ? message.subarray(at) : undefined;
  }

  #flush(): void {
    const waiting = this.#waiting;
    if (waiting === undefined) return;
    while (waiting.length > 0) {
      const rest = this.#write(waiting[0]!);
      if (rest !== undefined) {
        waiting[0] = rest;
        return;
      }
      waiting.shift();
    }
    this.#waiting = undefined;
  }

  /** The stream is over: say goodbye (GOAWAY) and end the connection. */
  #streamEnded(message: string, status = "ended"): void {
    if (this.#closed) return;
    this.#socket.end(GOAWAY_FRAME);
    this.#end(status, message);
  }

  #end(status: string, message: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#waiting = undefined;
    const opening = this.#opening;
    this.#opening = undefined;
    opening?.reject(new Error(message));
    const done = this.#pingDone;
    this.#pingDone = undefined;
    done?.(new Error(message), 0);
    this.#events.onClose?.(status, message);
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

const EMPTY = new Uint8Array(0);
const SETTINGS_ACK = frame(SETTINGS, FLAG_ACK, 0, EMPTY);
const PING_FRAME = frame(PING, 0, 0, new Uint8Array(8));
/** GOAWAY: last stream 0, NO_ERROR. */
const GOAWAY_FRAME = frame(GOAWAY, 0, 0, new Uint8Array(8));

function windowUpdate(streamId: number, increment: number): Buffer {
  const payload = Buffer.allocUnsafe(4);
  payload.writeUInt32BE(increment, 0);
  return frame(WINDOW_UPDATE, 0, streamId, payload);
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
