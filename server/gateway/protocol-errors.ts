import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { createAsyncIterable, encodeEnvelope, readAllBytes, type UniversalHandler, type UniversalServerResponse } from "@connectrpc/connect/protocol";
import { codeToHttpStatus, endStreamFlag, endStreamFromJson, endStreamToJson, errorFromJsonBytes, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { trailerFlag, trailerParse, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import { withErrorDetail } from "./errors.js";
import { encodeGrpcMessage } from "./grpc-message.js";

/**
 * Registers `routes` and wraps every handler so that what connect-es writes on its own
 * leaves the way this server documents it:
 *
 * - Refusals raised by the protocol layer get an im.v1.ErrorDetail, and an undecodable request
 *   is INVALID_ARGUMENT (see withErrorDetail). connect-es decodes a unary request before the
 *   interceptor chain runs (the gRPC and gRPC-Web handlers await the single input message, the
 *   Connect handler parses the body, then invokeUnaryImplementation applies interceptors), and
 *   a server stream's request before the implementation starts, so neither an interceptor nor
 *   the implementation sees those errors: they exist only in the response, which is where
 *   they are rewritten, with connect-es's own encoders. This server's own refusals already
 *   carry a detail and pass untouched.
 * - grpc-message is percent-encoded as the gRPC spec says (see encodeGrpcMessage).
 */
export function withProtocolErrorDetails(routes: (router: ConnectRouter) => void): (router: ConnectRouter) => void {
  return (router) => {
    routes(router);
    const handlers = router.handlers;
    for (let i = 0; i < handlers.length; i++) handlers[i] = wrap(handlers[i]!);
  };
}

function wrap(handler: UniversalHandler): UniversalHandler {
  const requestType = handler.method.input.typeName;
  const wrapped = async (request: Parameters<UniversalHandler>[0]): Promise<UniversalServerResponse> => {
    const response = await handler(request);
    const contentType = response.header?.get("content-type") ?? "";
    if (contentType.startsWith("application/grpc-web")) {
      return mapChunks(response, (chunk) => (chunk[0] === trailerFlag ? rewriteGrpcWebTrailer(chunk, requestType) : chunk));
    }
    if (contentType.startsWith("application/grpc")) return rewriteGrpc(response, requestType);
    if (contentType.startsWith("application/connect")) {
      return mapChunks(response, (chunk) => (chunk[0] === endStreamFlag ? rewriteEndStream(chunk, requestType) : chunk));
    }
    if (response.status !== 200 && contentType.startsWith("application/json")) return rewriteConnectUnary(response, requestType);
    return response;
  };
  return Object.assign(wrapped, {
    service: handler.service,
    method: handler.method,
    requestPath: handler.requestPath,
    supportedContentType: handler.supportedContentType,
    protocolNames: handler.protocolNames,
    allowedMethods: handler.allowedMethods,
  });
}

/** gRPC: the status is in the trailer, complete once the body has been read to its end. */
function rewriteGrpc(response: UniversalServerResponse, requestType: string): UniversalServerResponse {
  const { body, trailer } = response;
  if (body === undefined || trailer === undefined) return response;
  return {
    ...response,
    body: (async function* () {
      try {
        yield* body;
      } finally {
        rewriteGrpcStatus(trailer, requestType);
      }
    })(),
  };
}

/** Rewrites grpc-status, grpc-message and grpc-status-details-bin of a trailer in place. */
function rewriteGrpcStatus(trailer: Headers, requestType: string): void {
  const status = trailer.get("grpc-status");
  if (status === null || status === "0") return;
  const message = decodeGrpcMessage(trailer.get("grpc-message") ?? "");
  if (!trailer.has("grpc-status-details-bin")) {
    setTrailerStatus(trailer, withErrorDetail(new ConnectError(message, Number(status)), requestType));
  }
  trailer.set("grpc-message", encodeGrpcMessage(decodeGrpcMessage(trailer.get("grpc-message") ?? "")));
}

/** gRPC-Web: the status travels in the body, as its last envelope (the trailer frame). */
function rewriteGrpcWebTrailer(chunk: Uint8Array, requestType: string): Uint8Array {
  const trailer = trailerParse(chunk.subarray(5));
  rewriteGrpcStatus(trailer, requestType);
  return encodeEnvelope(trailerFlag, trailerSerialize(trailer));
}

/** Connect streams: the status is the end-stream message, the body's last envelope. */
function rewriteEndStream(chunk: Uint8Array, requestType: string): Uint8Array {
  const end = endStreamFromJson(chunk.subarray(5));
  if (end.error === undefined) return chunk;
  const error = withErrorDetail(end.error, requestType);
  if (error === end.error) return chunk;
  return encodeEnvelope(endStreamFlag, new TextEncoder().encode(JSON.stringify(endStreamToJson(end.metadata, error, {}))));
}

/** Connect unary: the error is the JSON body, and the HTTP status follows its code. */
async function rewriteConnectUnary(response: UniversalServerResponse, requestType: string): Promise<UniversalServerResponse> {
  const header = response.header;
  if (response.body === undefined || header === undefined || header.has("content-encoding")) return response;
  const bytes = await readAllBytes(response.body, Number.MAX_SAFE_INTEGER);
  const error = errorFromJsonBytes(bytes, undefined, new ConnectError("unreadable error body", Code.Unknown));
  const mapped = withErrorDetail(error, requestType);
  if (mapped === error) return { ...response, body: createAsyncIterable([bytes]) };
  const body = errorToJsonBytes(mapped, {});
  header.set("content-length", String(body.byteLength));
  return { ...response, status: codeToHttpStatus(mapped.code), header, body: createAsyncIterable([body]) };
}

/** The body with each chunk (one envelope each, as connect-es writes them) passed through `map`. */
function mapChunks(response: UniversalServerResponse, map: (chunk: Uint8Array) => Uint8Array): UniversalServerResponse {
  const body = response.body;
  if (body === undefined) return response;
  return {
    ...response,
    body: (async function* () {
      for await (const chunk of body) yield map(chunk);
    })(),
  };
}

function decodeGrpcMessage(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
