import http2 from "node:http2";
import { create, fromJson, toJson, type DescMessage, type DescMethodStreaming, type DescMethodUnary, type JsonObject, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { createAsyncIterable, createWritableIterable } from "@connectrpc/connect/protocol";
import { errorFromJsonBytes } from "@connectrpc/connect/protocol-connect";
import { SubscribeRequestSchema } from "../../gen/im/v1/gateway_pb.js";
import { methodOf } from "./grpc-js-driver.js";
import type { ReportedError } from "./plan.js";
import type { Driver, DriverStream } from "./run-plan.js";
import { DETAIL_REGISTRY, statusJson } from "./status-details.js";

const json = (schema: DescMessage, message: Message) => toJson(schema, message, { registry: DETAIL_REGISTRY }) as JsonObject;
const flat = (headers: Headers | undefined) => (headers === undefined ? undefined : Object.fromEntries(headers.entries()));
const auth = (token: string | undefined): Record<string, string> => (token === undefined ? {} : { authorization: `Bearer ${token}` });

/** A ConnectError as the plan reports it; the Connect protocol carries details in the body, never in a trailer. */
function reported(error: ConnectError): ReportedError {
  // A client only ever holds incoming details: the type name and the encoded message.
  const details = error.details.map((d) => {
    if ("desc" in d) throw new Error("an outgoing detail on a client error");
    return { typeUrl: `type.googleapis.com/${d.type}`, value: d.value };
  });
  return { code: error.code, message: error.rawMessage, status: statusJson(error.code, error.rawMessage, details), detailsBin: null };
}

/**
 * A Connect unary POST of bytes that are no valid message, which no Connect client sends: over
 * HTTP/2 to `baseUrl`, read back with connect-es's own error decoder.
 */
async function rawConnectUnary(baseUrl: string, path: string, body: Uint8Array, token: string | undefined): Promise<{ error: ConnectError; headers: Record<string, string> }> {
  const session = http2.connect(baseUrl);
  try {
    const req = session.request({ ":method": "POST", ":path": path, "content-type": "application/proto", "connect-protocol-version": "1", ...auth(token) });
    req.end(body);
    const [headers, bytes] = await Promise.all([
      new Promise<http2.IncomingHttpHeaders>((resolve) => req.once("response", resolve)),
      new Promise<Buffer>((resolve, reject) => {
        const chunks: Buffer[] = [];
        req.on("data", (c: Buffer) => chunks.push(c));
        req.on("end", () => resolve(Buffer.concat(chunks)));
        req.on("error", reject);
      }),
    ]);
    const error = errorFromJsonBytes(bytes, undefined, new ConnectError(`HTTP ${String(headers[":status"])} without a Connect error`, Code.Unknown));
    return { error, headers: { "content-type": String(headers["content-type"]) } };
  } finally {
    session.close();
  }
}

/** The plan's calls through the project's Connect client: connect-node's Connect protocol over HTTP/2. */
export function createConnectDriver(transport: Transport, baseUrl: string): Driver {
  return {
    async unary(step, request, token) {
      const method = methodOf(step.service, step.method) as DescMethodUnary;
      if (request instanceof Uint8Array) {
        const { error, headers } = await rawConnectUnary(baseUrl, `/${step.service}/${step.method}`, request, token);
        return { error: reported(error), headers };
      }
      try {
        const res = await transport.unary(method, undefined, undefined, auth(token), fromJson(method.input, request), undefined);
        return { ok: json(method.output, res.message), headers: flat(res.header) };
      } catch (e) {
        const error = ConnectError.from(e);
        return { error: reported(error), headers: flat(error.metadata) };
      }
    },
    stream(step, token) {
      const method = methodOf("im.v1.GatewayService", step.kind === "connect" ? "Connect" : "Subscribe") as DescMethodStreaming;
      const abort = new AbortController();
      const input = step.kind === "connect" ? createWritableIterable<Message>() : undefined;
      const frames: JsonObject[] = [];
      let headers: Record<string, string> | undefined;
      const ended = (async (): Promise<ReportedError> => {
        try {
          const res = await transport.stream(method, abort.signal, undefined, auth(token), input ?? createAsyncIterable([create(SubscribeRequestSchema)]), undefined);
          headers = flat(res.header);
          for await (const frame of res.message) frames.push(json(method.output, frame));
          return { code: 0, message: "", status: null, detailsBin: null };
        } catch (e) {
          return reported(ConnectError.from(e));
        }
      })();
      const stream: DriverStream = {
        frames,
        headers: () => headers,
        write: (frame) => void input?.write(fromJson(method.input, frame)),
        closeSend: () => input?.close(),
        cancel: () => abort.abort(),
        ended,
      };
      return stream;
    },
  };
}
