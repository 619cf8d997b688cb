import { ConnectError, type Client } from "@connectrpc/connect";
import { createWritableIterable } from "@connectrpc/connect/protocol";
import { create } from "@bufbuild/protobuf";
import { ConnectRequestSchema, type ConnectRequest, type ConnectResponse, type Disconnect, type GatewayService, type MembershipChanged, type ReadPosition } from "../gen/im/v1/gateway_pb.js";
import type { CallEvent } from "../gen/im/v1/call_pb.js";
import { ErrorDetailSchema, type Message } from "../gen/im/v1/message_pb.js";
import type { ClientRequest } from "./client-protocol.js";
import { connectRequest, errorOfFrame, requestFrame } from "./wire-codec.js";

/** What a link reports, as it arrives. */
export interface LinkSink {
  message(message: Message): void;
  read(position: ReadPosition): void;
  /** The user joined or left a conversation. */
  membership(change: MembershipChanged): void;
  /** A server heartbeat (browser push stream). */
  heartbeat(): void;
  disconnect(disconnect: Disconnect): void;
  /** The answer frame of request `requestId`. */
  answer(requestId: number, frame: ConnectResponse["frame"]): void;
  failure(requestId: number, error: unknown): void;
  /** The link is over; `error` when it failed rather than ended. */
  ended(error: unknown): void;
  /** A call event (client/call-client.ts). */
  callEvent?(event: CallEvent): void;
}

/** One open link: requests out, and a way to abort it. */
export interface LinkIo {
  write(requestId: number, request: ClientRequest): void;
  /** Writes a request frame as it is (call control on the long connection); absent in browser mode. */
  writeFrame?(requestId: number, frame: ConnectRequest["frame"]): void;
  close(): void;
}

/** The long connection: one bidi stream, requests as frames answered by frames with the same request_id. */
export function openStreamLink(gateway: Client<typeof GatewayService>, headers: Record<string, string>, sink: LinkSink): LinkIo {
  const abort = new AbortController();
  const outgoing = createWritableIterable<ConnectRequest>();
  const responses = gateway.connect(outgoing, { headers, signal: abort.signal });
  void (async () => {
    let error: unknown;
    try {
      for await (const response of responses) {
        const frame = response.frame;
        switch (frame.case) {
          case "message":
            sink.message(frame.value);
            break;
          case "read":
            sink.read(frame.value);
            break;
          case "disconnect":
            sink.disconnect(frame.value);
            break;
          case "error":
            sink.failure(Number(response.requestId), errorOfFrame(frame.value));
            break;
          case "callEvent":
            sink.callEvent?.(frame.value);
            break;
          case "membership":
            sink.membership(frame.value);
            break;
          case undefined:
            break;
          default:
            sink.answer(Number(response.requestId), frame);
        }
      }
    } catch (e) {
      error = e;
    } finally {
      outgoing.close();
      sink.ended(error);
    }
  })();
  return {
    write(requestId, request) {
      if (abort.signal.aborted) return;
      outgoing.write(connectRequest(requestId, request)).catch((e: unknown) => sink.failure(requestId, e));
    },
    writeFrame(requestId, frame) {
      if (abort.signal.aborted) return sink.failure(requestId, new Error("link closed"));
      outgoing.write(create(ConnectRequestSchema, { requestId: BigInt(requestId), frame })).catch((e: unknown) => sink.failure(requestId, e));
    },
    close() {
      outgoing.close();
      abort.abort();
    },
  };
}

/**
 * The browser mode: a Subscribe server stream for pushes and heartbeats, and each request as
 * a unary call. Pings are not sent: the server's heartbeats prove the stream alive.
 */
export function openBrowserLink(gateway: Client<typeof GatewayService>, headers: Record<string, string>, sink: LinkSink): LinkIo {
  const abort = new AbortController();
  const options = { headers, signal: abort.signal };
  void (async () => {
    let error: unknown;
    try {
      for await (const response of gateway.subscribe({}, options)) {
        const frame = response.frame;
        if (frame.case === "heartbeatMs") sink.heartbeat();
        else if (frame.case === "message") sink.message(frame.value);
        else if (frame.case === "read") sink.read(frame.value);
        else if (frame.case === "membership") sink.membership(frame.value);
        else if (frame.case === "disconnect") sink.disconnect(frame.value);
        else if (frame.case === "callEvent") sink.callEvent?.(frame.value);
      }
    } catch (e) {
      error = e;
    } finally {
      sink.ended(error);
    }
  })();
  // A refusal from the server always carries an im.v1.ErrorDetail; a call that failed without
  // one never got an answer (the network, a server that died, this link being closed), which
  // is the link failing: it ends, and the client redoes its requests on the next link, as
  // when a long connection breaks.
  let failed = false;
  const settle = <T>(requestId: number, call: Promise<T>, frame: (value: T) => ConnectResponse["frame"]) => {
    call.then(
      (value) => sink.answer(requestId, frame(value)),
      (e: unknown) => {
        if (abort.signal.aborted || failed) return;
        if (ConnectError.from(e).findDetails(ErrorDetailSchema).length > 0) {
          sink.failure(requestId, e);
          return;
        }
        failed = true;
        abort.abort();
        sink.ended(e);
      },
    );
  };
  return {
    write(requestId, request) {
      const f = requestFrame(request);
      switch (f.case) {
        case "send":
          return settle(requestId, gateway.send(f.value, options), (value) => ({ case: "send", value }));
        case "sync":
          return settle(requestId, gateway.sync(f.value, options), (value) => ({ case: "sync", value }));
        case "fetchRange":
          return settle(requestId, gateway.fetchRange(f.value, options), (value) => ({ case: "fetchRange", value }));
        case "markRead":
          return settle(requestId, gateway.markRead(f.value, options), (value) => ({ case: "markRead", value }));
        default:
          return undefined;
      }
    },
    close() {
      abort.abort();
    },
  };
}
