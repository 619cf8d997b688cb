import { create, toBinary } from "@bufbuild/protobuf";
import type { DescEnum, DescExtension, DescFile, DescMessage, DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ConnectRouter } from "@connectrpc/connect";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

/** Default cap on requests answered on one `ServerReflectionInfo` stream. */
export const REFLECTION_REQUESTS_PER_STREAM_MAX_DEFAULT = 10_000;

/** Longest client-supplied name echoed back in an error message. */
const ECHO_CHARS_MAX = 200;

/** Options of {@link createReflectionService}. */
export interface ReflectionServiceOptions {
  /**
   * Files to describe beyond those of the services, e.g. files that only declare extensions.
   * Dependencies of every file are added transitively.
   */
  readonly files?: readonly DescFile[];
  /** Requests answered on one stream; the next one ends the stream with RESOURCE_EXHAUSTED. */
  readonly requestsPerStreamMax?: number;
}

/**
 * gRPC server reflection (what grpcurl, `buf curl`, Postman and k6 `reflect: true` use),
 * served as both `grpc.reflection.v1.ServerReflection` and the deprecated
 * `grpc.reflection.v1alpha.ServerReflection`, from the descriptors compiled into the process.
 */
export interface ReflectionService {
  /** Full names returned by `list_services`, sorted; the two reflection services included. */
  readonly serviceNames: readonly string[];
  /** Registers both reflection services on the router. Call once per router. */
  register(router: ConnectRouter): void;
}

/** The oneof `message_request` of a request, identical in v1 and v1alpha but for type names. */
type Query = v1.ServerReflectionRequest["messageRequest"] | v1alpha.ServerReflectionRequest["messageRequest"];

/** The oneof `message_response` of a response, as an init shape both versions accept. */
type Answer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

/** What reflection can answer from: every file reachable from the served services. */
interface Index {
  /** By file name, e.g. "im/v1/gateway.proto". */
  readonly files: Map<string, DescFile>;
  /** Every fully-qualified name (types, fields, oneofs, enum values, services, methods). */
  readonly symbols: Map<string, DescFile>;
  /** Full names of every message, for `all_extension_numbers_of_type`. */
  readonly messages: Set<string>;
  /** Extendee type name, then field number, to the file declaring the extension. */
  readonly extensions: Map<string, Map<number, DescFile>>;
}

/**
 * Creates the reflection service for `services`: the services the server serves (health
 * included); the two reflection services are added. Answers like grpc-go: a file response
 * carries the requested file and those of its transitive dependencies not yet sent on the
 * stream, each a serialized `google.protobuf.FileDescriptorProto`; an unknown file, symbol or
 * extension is an `error_response` with NOT_FOUND and the stream stays open; a request with
 * no `message_request` ends the stream with INVALID_ARGUMENT. Requests on a stream are
 * answered one at a time, in order, each only once the previous answer was taken.
 */
export function createReflectionService(
  services: readonly DescService[],
  options: ReflectionServiceOptions = {},
): ReflectionService {
  const requestsMax = options.requestsPerStreamMax ?? REFLECTION_REQUESTS_PER_STREAM_MAX_DEFAULT;
  const served = [...services, v1.ServerReflection, v1alpha.ServerReflection];
  const serviceNames = [...new Set(served.map((s) => s.typeName))].sort();
  const index = buildIndex([...served.map((s) => s.file), ...(options.files ?? [])]);
  const encoded = new Map<string, Uint8Array>();

  function encode(file: DescFile): Uint8Array {
    let bytes = encoded.get(file.proto.name);
    if (bytes === undefined) {
      bytes = toBinary(FileDescriptorProtoSchema, file.proto);
      encoded.set(file.proto.name, bytes);
    }
    return bytes;
  }

  /** One stream's state: the files already sent on it, and how many requests it made. */
  function createSession(): (query: Query) => Answer {
    const sent = new Set<string>();
    let requests = 0;

    function withDependencies(root: DescFile): Answer {
      const out: Uint8Array[] = [];
      const queue = [root];
      const queued = new Set([root.proto.name]);
      for (const file of queue) {
        // The requested file goes out even if sent before: the client asked for it.
        if (file === root || !sent.has(file.proto.name)) {
          sent.add(file.proto.name);
          out.push(encode(file));
        }
        for (const dependency of file.dependencies) {
          if (queued.has(dependency.proto.name)) continue;
          queued.add(dependency.proto.name);
          queue.push(dependency);
        }
      }
      return { case: "fileDescriptorResponse", value: { fileDescriptorProto: out } };
    }

    return (query) => {
      requests += 1;
      if (requests > requestsMax) {
        throw new ConnectError("too many reflection requests on one stream", Code.ResourceExhausted);
      }
      switch (query.case) {
        case "fileByFilename": {
          const file = index.files.get(query.value);
          return file ? withDependencies(file) : notFound("file", query.value);
        }
        case "fileContainingSymbol": {
          const file = index.symbols.get(query.value);
          return file ? withDependencies(file) : notFound("symbol", query.value);
        }
        case "fileContainingExtension": {
          const { containingType, extensionNumber } = query.value;
          const file = index.extensions.get(containingType)?.get(extensionNumber);
          return file ? withDependencies(file) : notFound("extension", `${containingType}(${extensionNumber})`);
        }
        case "allExtensionNumbersOfType": {
          const numbers = index.extensions.get(query.value);
          if (numbers === undefined && !index.messages.has(query.value)) return notFound("type", query.value);
          const extensionNumber = [...(numbers?.keys() ?? [])].sort((a, b) => a - b);
          return { case: "allExtensionNumbersResponse", value: { baseTypeName: query.value, extensionNumber } };
        }
        case "listServices":
          return { case: "listServicesResponse", value: { service: serviceNames.map((name) => ({ name })) } };
        case undefined:
          throw new ConnectError("reflection request without message_request", Code.InvalidArgument);
      }
    };
  }

  return {
    serviceNames,
    register(router) {
      router.service(v1.ServerReflection, {
        async *serverReflectionInfo(requests) {
          const answer = createSession();
          for await (const request of requests) {
            yield create(v1.ServerReflectionResponseSchema, {
              validHost: request.host,
              originalRequest: request,
              messageResponse: answer(request.messageRequest),
            });
          }
        },
      });
      router.service(v1alpha.ServerReflection, {
        async *serverReflectionInfo(requests) {
          const answer = createSession();
          for await (const request of requests) {
            yield create(v1alpha.ServerReflectionResponseSchema, {
              validHost: request.host,
              originalRequest: request,
              messageResponse: answer(request.messageRequest),
            });
          }
        },
      });
    },
  };
}

function notFound(what: string, name: string): Answer {
  const shown = name.length > ECHO_CHARS_MAX ? `${name.slice(0, ECHO_CHARS_MAX)}…` : name;
  return { case: "errorResponse", value: { errorCode: Code.NotFound, errorMessage: `${what} not found: ${shown}` } };
}

function buildIndex(roots: readonly DescFile[]): Index {
  const index: Index = { files: new Map(), symbols: new Map(), messages: new Set(), extensions: new Map() };
  const symbol = (name: string, file: DescFile): void => {
    // First declaration wins: protobuf forbids duplicates, so a second one is a stale copy.
    if (!index.symbols.has(name)) index.symbols.set(name, file);
  };
  const addEnum = (e: DescEnum, file: DescFile): void => {
    symbol(e.typeName, file);
    // Enum values are scoped as siblings of their enum (C++ scoping rules).
    const scope = e.parent?.typeName ?? file.proto.package;
    for (const value of e.values) symbol(scope ? `${scope}.${value.name}` : value.name, file);
  };
  const addMessage = (message: DescMessage, file: DescFile): void => {
    symbol(message.typeName, file);
    index.messages.add(message.typeName);
    for (const field of message.proto.field) symbol(`${message.typeName}.${field.name}`, file);
    for (const oneof of message.proto.oneofDecl) symbol(`${message.typeName}.${oneof.name}`, file);
    for (const nested of message.nestedMessages) addMessage(nested, file);
    for (const nested of message.nestedEnums) addEnum(nested, file);
    for (const extension of message.nestedExtensions) addExtension(extension, file);
  };
  const addExtension = (extension: DescExtension, file: DescFile): void => {
    symbol(extension.typeName, file);
    let byNumber = index.extensions.get(extension.extendee.typeName);
    if (byNumber === undefined) {
      byNumber = new Map();
      index.extensions.set(extension.extendee.typeName, byNumber);
    }
    if (!byNumber.has(extension.number)) byNumber.set(extension.number, file);
  };
  const addFile = (file: DescFile): void => {
    if (index.files.has(file.proto.name)) return;
    index.files.set(file.proto.name, file);
    for (const message of file.messages) addMessage(message, file);
    for (const e of file.enums) addEnum(e, file);
    for (const extension of file.extensions) addExtension(extension, file);
    for (const service of file.services) {
      symbol(service.typeName, file);
      for (const method of service.methods) symbol(`${service.typeName}.${method.name}`, file);
    }
    for (const dependency of file.dependencies) addFile(dependency);
  };
  for (const root of roots) addFile(root);
  return index;
}
