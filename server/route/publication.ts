import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { PublicationSchema, type Publication as WirePublication } from "../../gen/im/cluster/v1/cluster_pb.js";
import {
  ConnectResponseSchema,
  MembershipChangedSchema,
  ReadPositionSchema,
  SubscribeResponseSchema,
  type ConnectResponse,
  type MembershipChanged,
  type ReadPosition,
  type SubscribeResponse,
} from "../../gen/im/v1/gateway_pb.js";
import { MessageSchema, type Message } from "../../gen/im/v1/message_pb.js";
import { CallEventSchema, type CallEvent } from "../../gen/im/v1/call_pb.js";

/** The channel of a user: its direct messages, read positions and memberships. */
export function userChannel(userId: string): string {
  return `u:${userId}`;
}

/** The channel of a group conversation: its messages and member changes. */
export function groupChannel(conversationId: string): string {
  return `c:${conversationId}`;
}

/** The two stream kinds a device holds, whose frames number their fields differently. */
export type StreamKind = "connect" | "subscribe";

/** Field numbers of each event in ConnectResponse.frame and SubscribeResponse.frame (gateway.proto). */
const FIELDS = {
  connect: { message: 2, read: 3, membership: 11, callEvent: 20 },
  subscribe: { message: 1, read: 2, membership: 5, callEvent: 20 },
} as const;

/** The envelope before every message on a gRPC, gRPC-Web and Connect stream: flags, then a big-endian length. */
export const ENVELOPE_HEADER_BYTES = 5;

/** What a device is told, from a publication: everything but the hub-only member changes. */
type DeviceEvent = "message" | "read" | "membership" | "callEvent";

/**
 * One event published on a channel, as every process holds it: the wire form for the broker
 * and, made at most once per process and stream kind, the exact bytes each device stream
 * gets (centrifuge encodes a publication once per protocol and writes those bytes to every
 * subscriber). A message travels as its encoded im.v1.Message and is never decoded on the
 * way: a device frame is that encoding behind a field tag and a stream envelope.
 */
export class Publication {
  readonly wire: WirePublication;
  #encoded: Uint8Array | undefined;
  #inner: Uint8Array | undefined;
  readonly #frames: { connect?: Uint8Array; subscribe?: Uint8Array } = {};
  #decoded: { connect?: ConnectResponse; subscribe?: SubscribeResponse } | undefined;

  constructor(wire: WirePublication, encoded?: Uint8Array) {
    this.wire = wire;
    this.#encoded = encoded;
  }

  /** A new message, given its encoded im.v1.Message. */
  static message(origin: string, messageBytes: Uint8Array, exceptConnectionId = ""): Publication {
    return new Publication(create(PublicationSchema, { origin, exceptConnectionId, event: { case: "message", value: messageBytes } }));
  }

  /** A user's read position moved. */
  static read(origin: string, conversationId: string, readSeq: number, exceptConnectionId = ""): Publication {
    const read = create(ReadPositionSchema, { conversationId, readSeq: BigInt(readSeq) });
    return new Publication(create(PublicationSchema, { origin, exceptConnectionId, event: { case: "read", value: read } }));
  }

  /** A user joined or left a conversation. */
  static membership(origin: string, conversationId: string, joined: boolean, lastSeq: number): Publication {
    const membership = create(MembershipChangedSchema, { conversationId, joined, lastSeq: BigInt(lastSeq) });
    return new Publication(create(PublicationSchema, { origin, event: { case: "membership", value: membership } }));
  }

  /** A call event for a user's devices, given its encoded im.v1.CallEvent. */
  static callEvent(origin: string, eventBytes: Uint8Array): Publication {
    return new Publication(create(PublicationSchema, { origin, event: { case: "callEvent", value: eventBytes } }));
  }

  /** A group's member list changed (for hubs: nothing is written to devices). */
  static members(origin: string, added: readonly string[], removed: readonly string[]): Publication {
    return new Publication(create(PublicationSchema, { origin, event: { case: "members", value: { added: [...added], removed: [...removed] } } }));
  }

  /** Decodes a publication another process sent; throws on malformed bytes. */
  static decode(bytes: Uint8Array): Publication {
    return new Publication(fromBinary(PublicationSchema, bytes), bytes);
  }

  get origin(): string {
    return this.wire.origin;
  }

  /** The connection that caused the event ("" for none). */
  get exceptConnectionId(): string {
    return this.wire.exceptConnectionId;
  }

  /** The event's kind. */
  get kind(): WirePublication["event"]["case"] {
    return this.wire.event.case;
  }

  /** Bytes a device stream is sent for it, counted against the device's push queue bound. */
  get bytes(): number {
    const event = this.wire.event;
    return event.case === "message" || event.case === "callEvent" ? event.value.byteLength : 0;
  }

  /** The wire form, for the broker (encoded once). */
  encode(): Uint8Array {
    return (this.#encoded ??= toBinary(PublicationSchema, this.wire));
  }

  /** True when devices are sent something for it (member changes are for hubs only). */
  get forDevices(): boolean {
    const kind = this.wire.event.case;
    return kind === "message" || kind === "read" || kind === "membership" || kind === "callEvent";
  }

  /**
   * The enveloped frame of a `kind` stream for this event, ready to write (built once per
   * process and kind): envelope, field tag, length, then the event's encoding.
   */
  frame(kind: StreamKind): Uint8Array {
    const cached = this.#frames[kind];
    if (cached !== undefined) return cached;
    const event = this.#deviceEvent();
    const inner = this.#innerBytes();
    const field = FIELDS[kind][event];
    const tag = (field << 3) | 2;
    const tagBytes = tag < 0x80 ? 1 : 2;
    const body = tagBytes + varintLength(inner.byteLength) + inner.byteLength;
    const out = new Uint8Array(ENVELOPE_HEADER_BYTES + body);
    new DataView(out.buffer).setUint32(1, body);
    let at = ENVELOPE_HEADER_BYTES;
    if (tagBytes === 1) out[at++] = tag;
    else {
      out[at++] = (tag & 0x7f) | 0x80;
      out[at++] = tag >>> 7;
    }
    at = writeVarint(out, at, inner.byteLength);
    out.set(inner, at);
    this.#frames[kind] = out;
    return out;
  }

  /** The frame as a message object, for streams that connect-node serializes (JSON, HTTP/1.1). */
  connectResponse(): ConnectResponse {
    const decoded = (this.#decoded ??= {});
    return (decoded.connect ??= create(ConnectResponseSchema, { frame: this.#deviceFrame() as ConnectResponse["frame"] }));
  }

  /** The Subscribe frame as a message object (see connectResponse). */
  subscribeResponse(): SubscribeResponse {
    const decoded = (this.#decoded ??= {});
    return (decoded.subscribe ??= create(SubscribeResponseSchema, { frame: this.#deviceFrame() as SubscribeResponse["frame"] }));
  }

  #deviceFrame():
    | { case: "message"; value: Message }
    | { case: "read"; value: ReadPosition }
    | { case: "membership"; value: MembershipChanged }
    | { case: "callEvent"; value: CallEvent } {
    const event = this.wire.event;
    switch (event.case) {
      case "message":
        return { case: "message", value: fromBinary(MessageSchema, event.value) };
      case "read":
        return { case: "read", value: event.value };
      case "membership":
        return { case: "membership", value: event.value };
      case "callEvent":
        return { case: "callEvent", value: fromBinary(CallEventSchema, event.value) };
      default:
        throw new Error(`a ${String(event.case)} publication is not for devices`);
    }
  }

  #deviceEvent(): DeviceEvent {
    const kind = this.wire.event.case;
    if (kind === "message" || kind === "read" || kind === "membership" || kind === "callEvent") return kind;
    throw new Error(`a ${String(kind)} publication is not for devices`);
  }

  #innerBytes(): Uint8Array {
    if (this.#inner !== undefined) return this.#inner;
    const event = this.wire.event;
    if (event.case === "message" || event.case === "callEvent") this.#inner = event.value;
    else if (event.case === "read") this.#inner = toBinary(ReadPositionSchema, event.value);
    else if (event.case === "membership") this.#inner = toBinary(MembershipChangedSchema, event.value);
    else throw new Error(`a ${String(event.case)} publication is not for devices`);
    return this.#inner;
  }
}

/** Encodes a message for publication (once, at the owner). */
export function encodeMessage(message: Message): Uint8Array {
  return toBinary(MessageSchema, message);
}

function varintLength(n: number): number {
  let length = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    length++;
  }
  return length;
}

function writeVarint(out: Uint8Array, at: number, n: number): number {
  while (n >= 0x80) {
    out[at++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  out[at++] = n;
  return at;
}
