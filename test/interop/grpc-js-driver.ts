import { fromBinary, fromJson, toBinary, toJson, type DescMessage, type DescMethod, type JsonObject } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { ConversationService } from "../../gen/im/v1/conversation_pb.js";
import { GatewayService } from "../../gen/im/v1/gateway_pb.js";
import type { Driver, DriverStream } from "./run-plan.js";
import type { ReportedError } from "./plan.js";
import { DETAIL_REGISTRY, statusJsonFromDetailsBin } from "./status-details.js";

/** A method of the plan by service and name. */
export function methodOf(service: string, name: string): DescMethod {
  const desc = [GatewayService, ConversationService].find((s) => s.typeName === service);
  const method = desc?.methods.find((m) => m.name === name);
  if (method === undefined) throw new Error(`no method ${service}/${name}`);
  return method;
}

const json = (schema: DescMessage, bytes: Uint8Array) => toJson(schema, fromBinary(schema, bytes), { registry: DETAIL_REGISTRY }) as JsonObject;
const binary = (schema: DescMessage, value: JsonObject | Uint8Array) => (value instanceof Uint8Array ? value : toBinary(schema, fromJson(schema, value)));

function metadataOf(token: string | undefined): grpc.Metadata {
  const md = new grpc.Metadata();
  if (token !== undefined) md.set("authorization", `Bearer ${token}`);
  return md;
}

function flat(md: grpc.Metadata | undefined): Record<string, string> | undefined {
  if (md === undefined) return undefined;
  return Object.fromEntries(Object.entries(md.getMap()).map(([k, v]) => [k, Buffer.isBuffer(v) ? v.toString("base64") : String(v)]));
}

/** A status as grpc-js reports it; it has no rich-error API, so details come from the raw trailer. */
function reported(status: grpc.StatusObject | grpc.ServiceError): ReportedError {
  const bin = status.metadata?.get("grpc-status-details-bin")[0];
  const detailsBin = Buffer.isBuffer(bin) ? bin.toString("base64") : null;
  return { code: status.code, message: status.details, status: detailsBin === null ? null : statusJsonFromDetailsBin(detailsBin), detailsBin };
}

/** The plan's calls through @grpc/grpc-js (gRPC over HTTP/2), with the protobuf-es codecs. */
export function createGrpcJsDriver(client: grpc.Client): Driver {
  return {
    unary(step, request, token) {
      const method = methodOf(step.service, step.method);
      return new Promise((resolve) => {
        let headers: Record<string, string> | undefined;
        const call = client.makeUnaryRequest(
          `/${step.service}/${step.method}`,
          (v: JsonObject | Uint8Array) => Buffer.from(binary(method.input, v)),
          (b: Buffer) => json(method.output, b),
          request,
          metadataOf(token),
          (err, res) => {
            if (err) resolve({ error: reported(err), headers: headers ?? {}, trailers: flat(err.metadata) });
            else resolve({ ok: res!, headers });
          },
        );
        call.on("metadata", (md: grpc.Metadata) => (headers = flat(md)));
      });
    },
    stream(step, token) {
      const method = methodOf("im.v1.GatewayService", step.kind === "connect" ? "Connect" : "Subscribe");
      const path = `/im.v1.GatewayService/${method.name}`;
      const serialize = (v: JsonObject) => Buffer.from(binary(method.input, v));
      const deserialize = (b: Buffer) => json(method.output, b);
      const call =
        step.kind === "connect"
          ? client.makeBidiStreamRequest(path, serialize, deserialize, metadataOf(token))
          : client.makeServerStreamRequest(path, serialize, deserialize, {}, metadataOf(token));
      const frames: JsonObject[] = [];
      let headers: Record<string, string> | undefined;
      call.on("data", (f: JsonObject) => frames.push(f));
      call.on("metadata", (md: grpc.Metadata) => (headers = flat(md)));
      call.on("error", () => {});
      const ended = new Promise<ReportedError>((resolve) => call.on("status", (s: grpc.StatusObject) => resolve(reported(s))));
      const writable = call as grpc.ClientDuplexStream<JsonObject, JsonObject>;
      const stream: DriverStream = {
        frames,
        headers: () => headers,
        write: (frame) => void writable.write(frame),
        closeSend: () => void writable.end(),
        cancel: () => call.cancel(),
        ended,
      };
      return stream;
    },
  };
}
