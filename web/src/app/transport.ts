import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { ErrorDetailSchema } from "../../../gen/im/v1/message_pb.js";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";

/** The browser protocols the gateway serves. */
export type WebProtocol = "connect" | "grpc-web";

/**
 * fetch, with a request that got no answer (the network failed) turned into UNAVAILABLE. The
 * SDK retries UNAVAILABLE sends with the same client_msg_id, which is right here: the server
 * may or may not have stored the message, and a retry stores it at most once. A plain fetch
 * failure would surface as UNKNOWN, which the SDK treats as final. (When the SDK aborted the
 * call first, connect-es reports CANCELED whatever fetch threw: see isUnanswered.)
 */
export function answeringFetch(inner: typeof fetch): typeof fetch {
  return async (input, init) => {
    try {
      return await inner(input, init);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new ConnectError(message, Code.Unavailable, undefined, undefined, error);
    }
  };
}

/** A transport to the gateway at `baseUrl` in `protocol`, binary-encoded. */
export function createWebTransport(baseUrl: string, protocol: WebProtocol, inner: typeof fetch = globalThis.fetch.bind(globalThis)): Transport {
  const options = { baseUrl, useBinaryFormat: true, fetch: answeringFetch(inner) };
  return protocol === "grpc-web" ? createGrpcWebTransport(options) : createConnectTransport(options);
}

/**
 * Whether a call failed without an answer from the server: cancelled because its connection
 * was cut (the SDK aborts a lost connection's calls, which connect-es reports as CANCELED
 * before fetch itself fails), or a transport failure. The server's own refusals always carry
 * an ErrorDetail, so they never count.
 */
export function isUnanswered(error: unknown): boolean {
  const e = ConnectError.from(error);
  if (e.findDetails(ErrorDetailSchema).length > 0) return false;
  return e.code === Code.Canceled || e.code === Code.Unknown || e.code === Code.Unavailable;
}
