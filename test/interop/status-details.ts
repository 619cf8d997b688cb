import { createRegistry, create, toJson, type JsonObject } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { ViolationsSchema } from "../../gen/buf/validate/validate_pb.js";
import { ErrorDetailSchema } from "../../gen/im/v1/message_pb.js";

/** The detail types this server sends, for turning Any into proto JSON. */
export const DETAIL_REGISTRY = createRegistry(ErrorDetailSchema, ViolationsSchema);

/** One google.rpc.Status detail: an Any. */
export interface AnyDetail {
  readonly typeUrl: string;
  readonly value: Uint8Array;
}

/**
 * Decodes a google.rpc.Status (the grpc-status-details-bin trailer, base64 with or without
 * padding) into its proto JSON, as grpcio's and grpc-go's rich-error APIs print it: code and
 * message left out when zero or empty, each detail an Any with "@type".
 */
export function statusJsonFromDetailsBin(base64: string): JsonObject {
  const reader = new BinaryReader(Buffer.from(base64, "base64"));
  let code = 0;
  let message = "";
  const details: AnyDetail[] = [];
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.Varint) code = reader.int32();
    else if (field === 2 && wireType === WireType.LengthDelimited) message = reader.string();
    else if (field === 3 && wireType === WireType.LengthDelimited) details.push(decodeAny(reader.bytes()));
    else throw new Error(`unexpected field ${field} (wire type ${wireType}) in google.rpc.Status`);
  }
  return statusJson(code, message, details);
}

/** A google.rpc.Status as proto JSON, from its parts. */
export function statusJson(code: number, message: string, details: readonly AnyDetail[]): JsonObject {
  const json: JsonObject = {};
  if (code !== 0) json.code = code;
  if (message !== "") json.message = message;
  if (details.length > 0) json.details = details.map((d) => toJson(AnySchema, create(AnySchema, d), { registry: DETAIL_REGISTRY }));
  return json;
}

function decodeAny(bytes: Uint8Array): AnyDetail {
  const reader = new BinaryReader(bytes);
  let typeUrl = "";
  let value: Uint8Array = new Uint8Array(0);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) typeUrl = reader.string();
    else if (field === 2 && wireType === WireType.LengthDelimited) value = reader.bytes();
    else throw new Error(`unexpected field ${field} in google.protobuf.Any`);
  }
  return { typeUrl, value };
}
