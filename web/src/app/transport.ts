import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";

/** The browser protocols the gateway serves. */
export type WebProtocol = "connect" | "grpc-web";

/**
 * fetch, with a request that got no answer (the network failed, or the connection was cut
 * and its signal aborted) turned into UNAVAILABLE. The SDK retries UNAVAILABLE sends with the
 * same client_msg_id, which is right here: the server may or may not have stored the message,
 * and a retry stores it at most once. Plain fetch failures would surface as UNKNOWN or
 * CANCELED, which the SDK treats as final.
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
