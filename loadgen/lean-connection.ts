import http2 from "node:http2";
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
  /** The body bytes (a view into the received frame: copy to keep). */
  readonly data: Uint8Array;
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

const textDecoder = new TextDecoder();

/**
 * One device's long connection at the lowest cost a client can have: one HTTP/2 session, one
 * `GatewayService.Connect` stream in gRPC framing, frames parsed in place (only the fields of a
 * message push that a load test reads), liveness by HTTP/2 PING (which the server's stack
 * answers without the application). For load generation, where the SDK's own cost would
 * bound what one machine can drive; correctness of delivery is checked by the caller on the
 * seq / prev_seq it reports.
 */
export class LeanConnection {
  readonly #session: http2.ClientHttp2Session;
  readonly #stream: http2.ClientHttp2Stream;
  readonly #events: LeanConnectionEvents;
  readonly #envelopes = new EnvelopeReader(FRAME_BYTES_MAX);
  #closed = false;
  #status = "";
  #statusMessage = "";
  #nextRequestId = 1;

  private constructor(session: http2.ClientHttp2Session, stream: http2.ClientHttp2Stream, events: LeanConnectionEvents) {
    this.#session = session;
    this.#stream = stream;
    this.#events = events;
    stream.on("data", (chunk: Buffer) => this.#onData(chunk));
    stream.on("trailers", (trailers) => {
      this.#status = String(trailers["grpc-status"] ?? "");
      this.#statusMessage = decodeURIComponent(String(trailers["grpc-message"] ?? ""));
    });
    stream.on("response", (headers) => {
      if (headers["grpc-status"] !== undefined) {
        this.#status = String(headers["grpc-status"]);
        this.#statusMessage = decodeURIComponent(String(headers["grpc-message"] ?? ""));
      }
    });
    stream.on("error", () => {});
    stream.on("close", () => this.#close());
    session.on("close", () => this.#close());
  }

  /** Opens the session and the stream; resolves once the server sent the stream's headers. */
  static open(options: LeanConnectionOptions): Promise<LeanConnection> {
    return new Promise((resolve, reject) => {
      const target = new URL(options.url);
      const session = http2.connect(options.url, {
        settings: { enablePush: false },
        createConnection: () => net.connect({ host: target.hostname, port: Number(target.port), localAddress: options.localAddress }),
      });
      session.on("error", (error) => reject(error));
      const stream = session.request({
        ":method": "POST",
        ":path": "/im.v1.GatewayService/Connect",
        "content-type": "application/grpc",
        te: "trailers",
        authorization: `Bearer ${options.token}`,
      });
      const connection = new LeanConnection(session, stream, options.events);
      stream.once("response", (headers) => {
        if (headers["grpc-status"] !== undefined && headers["grpc-status"] !== "0") reject(new Error(`refused: grpc-status ${String(headers["grpc-status"])} ${decodeURIComponent(String(headers["grpc-message"] ?? ""))}`));
        else resolve(connection);
      });
      stream.once("close", () => reject(new Error("the stream closed before it opened")));
    });
  }

  /** Sends a request frame; returns its request id. */
  request(frame: ConnectRequest["frame"]): number {
    const requestId = this.#nextRequestId++;
    const bytes = toBinary(ConnectRequestSchema, create(ConnectRequestSchema, { requestId: BigInt(requestId), frame }));
    const out = new Uint8Array(5 + bytes.byteLength);
    new DataView(out.buffer).setUint32(1, bytes.byteLength);
    out.set(bytes, 5);
    this.#stream.write(out);
    return requestId;
  }

  /** Round trip of an HTTP/2 PING in ms (rejects when the session is gone). */
  ping(): Promise<number> {
    return new Promise((resolve, reject) => {
      if (this.#session.destroyed) {
        reject(new Error("session closed"));
        return;
      }
      this.#session.ping((error, duration) => (error ? reject(error) : resolve(duration)));
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Ends the stream and the session. */
  close(): void {
    if (!this.#stream.destroyed) this.#stream.close();
    this.#session.close();
  }

  /** Drops the connection without a goodbye (a device that vanished). */
  destroy(): void {
    this.#session.destroy();
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#events.onClose?.(this.#status, this.#statusMessage);
  }

  #onData(chunk: Buffer): void {
    this.#envelopes.push(chunk, this);
  }

  /** One enveloped message from the envelope reader. */
  message(_flags: number, bytes: Uint8Array): void {
    this.#onMessage(bytes);
  }

  /** One ConnectResponse: find its request id and frame field; parse a message push in place. */
  #onMessage(bytes: Uint8Array): void {
    const reader = new Reader(bytes);
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
      const inner = reader.bytes();
      if (field === 2) this.#events.onPush?.(parseMessage(inner));
      else this.#events.onFrame?.(field, requestId, inner);
    }
  }
}

/** The fields of an im.v1.Message a load test reads. */
function parseMessage(bytes: Uint8Array): LeanPush {
  const reader = new Reader(bytes);
  let conversationId = "";
  let seq = 0;
  let prevSeq = 0;
  let data: Uint8Array = new Uint8Array(0);
  while (!reader.done) {
    const tag = reader.varint();
    const field = tag >>> 3;
    const wire = tag & 7;
    if (field === 1 && wire === 2) conversationId = textDecoder.decode(reader.bytes());
    else if (field === 2 && wire === 0) seq = reader.varint();
    else if (field === 3 && wire === 0) prevSeq = reader.varint();
    else if (field === 7 && wire === 2) {
      const body = new Reader(reader.bytes());
      while (!body.done) {
        const t = body.varint();
        if (t >>> 3 === 2 && (t & 7) === 2) data = body.bytes();
        else body.skip(t & 7);
      }
    } else reader.skip(wire);
  }
  return { conversationId, seq, prevSeq, data };
}

/** A minimal protobuf wire reader (varints up to 2^53, length-delimited fields). */
class Reader {
  readonly #bytes: Uint8Array;
  #at = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  get done(): boolean {
    return this.#at >= this.#bytes.byteLength;
  }

  varint(): number {
    let result = 0;
    let scale = 1;
    for (;;) {
      const b = this.#bytes[this.#at++];
      if (b === undefined) throw new Error("truncated varint");
      result += (b & 0x7f) * scale;
      if (b < 0x80) return result;
      scale *= 128;
    }
  }

  bytes(): Uint8Array {
    const length = this.varint();
    const out = this.#bytes.subarray(this.#at, this.#at + length);
    this.#at += length;
    return out;
  }

  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.#at += 8;
    else if (wire === 2) {
      const length = this.varint();
      this.#at += length;
    }
    else if (wire === 5) this.#at += 4;
    else throw new Error(`unsupported wire type ${wire}`);
  }
}
