/**
 * The `k6/net/grpc` module of the smoke harness, on @grpc/grpc-js. Messages cross the API as
 * k6 gives them to scripts: the protobuf JSON mapping with unpopulated fields emitted (64-bit
 * integers as strings, bytes as base64, enums by name, a oneof as its set field only).
 *
 * - load(importPaths, ...files) checks that each file exists under an import path (relative to
 *   the script, as k6 resolves them) and uses the generated descriptors of those files.
 * - connect(address, { reflect: true }) asks the server's reflection service, as k6 does.
 * - invoke() and connect() block the VU (the main thread makes the call); asyncInvoke() and
 *   Stream run on this VU's own channel and keep the iteration alive until they finish.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { create, fromBinary, fromJson, toBinary, toJson, type DescMessage, type DescMethod, type JsonValue, type Registry } from "@bufbuild/protobuf";
import { createFileRegistry, createRegistry } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { file_grpc_health_v1_health } from "../../../../gen/grpc/health/v1/health_pb.js";
import { file_im_v1_conversation } from "../../../../gen/im/v1/conversation_pb.js";
import { file_im_v1_gateway } from "../../../../gen/im/v1/gateway_pb.js";
import { runtime } from "../vu-runtime.js";

/** Proto files load() can stand in for, by their path under an import path. */
const KNOWN_FILES = new Map([
  ["im/v1/gateway.proto", file_im_v1_gateway],
  ["im/v1/conversation.proto", file_im_v1_conversation],
  ["grpc/health/v1/health.proto", file_grpc_health_v1_health],
]);

export const StatusOK = 0;
export const StatusCanceled = 1;
export const StatusUnknown = 2;
export const StatusInvalidArgument = 3;
export const StatusDeadlineExceeded = 4;
export const StatusNotFound = 5;
export const StatusAlreadyExists = 6;
export const StatusPermissionDenied = 7;
export const StatusResourceExhausted = 8;
export const StatusFailedPrecondition = 9;
export const StatusAborted = 10;
export const StatusOutOfRange = 11;
export const StatusUnimplemented = 12;
export const StatusInternal = 13;
export const StatusUnavailable = 14;
export const StatusDataLoss = 15;
export const StatusUnauthenticated = 16;

interface Params {
  readonly metadata?: Record<string, string>;
  readonly timeout?: string | number;
}

/** A k6 duration ("10s", "500ms", "2m") or milliseconds. */
function durationMs(v: string | number | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v === "number") return v;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(v);
  if (m === null) throw new Error(`invalid duration ${JSON.stringify(v)}`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as "ms" | "s" | "m" | "h"];
}

function metadataOf(params: Params | undefined): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(params?.metadata ?? {})) md.set(k, v);
  return md;
}

function mapOf(md: grpc.Metadata | undefined): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(md?.getMap() ?? {})) out[k] = [String(v)];
  return out;
}

function toK6<D extends DescMessage>(schema: D, bytes: Uint8Array, registry: Registry): JsonValue {
  return toJson(schema, fromBinary(schema, bytes), { alwaysEmitImplicit: true, registry });
}

function fromK6(schema: DescMessage, value: object, registry: Registry): Uint8Array {
  // k6 marshals the JS object to JSON, then protojson-unmarshals it.
  return toBinary(schema, fromJson(schema, JSON.parse(JSON.stringify(value)) as JsonValue, { registry }));
}

/**
 * Orders files so each comes after its imports (what createFileRegistry needs; reflection answers
 * name a file before its dependencies). A missing import is left for the registry to report.
 */
function dependenciesFirst(files: readonly FileDescriptorProto[]): FileDescriptorProto[] {
  const byName = new Map(files.map((f) => [f.name, f]));
  const ordered: FileDescriptorProto[] = [];
  const placed = new Set<string>();
  const place = (f: FileDescriptorProto, depth: number) => {
    if (placed.has(f.name) || depth > files.length) return;
    for (const dep of f.dependency) {
      const d = byName.get(dep);
      if (d !== undefined) place(d, depth + 1);
    }
    placed.add(f.name);
    ordered.push(f);
  };
  for (const f of files) place(f, 0);
  return ordered;
}

const passthrough = { serialize: (b: Uint8Array) => Buffer.from(b), deserialize: (b: Buffer) => new Uint8Array(b) };

export interface Response {
  status: number;
  message: JsonValue | null;
  headers: Record<string, string[]>;
  trailers: Record<string, string[]>;
  error: { code: number; message: string; details: unknown[] } | null;
}

export class Client {
  #registry: Registry | undefined;
  #address: string | undefined;
  #channel: grpc.Client | undefined;

  /** Loads descriptors (init context only, as in k6). */
  load(importPaths: string[] | null, ...protoFiles: string[]): void {
    if (!runtime.initContext) throw new Error("load() can only be called in the init context");
    const files = protoFiles.map((file) => {
      const dirs = (importPaths ?? []).length === 0 ? ["."] : importPaths!;
      const found = dirs.some((dir) => existsSync(path.resolve(runtime.scriptDir, dir, file)));
      if (!found) throw new Error(`load(): ${file} not found under ${JSON.stringify(dirs)} (relative to ${runtime.scriptDir})`);
      const desc = KNOWN_FILES.get(file);
      if (desc === undefined) throw new Error(`load(): the smoke harness has no generated descriptors for ${file}`);
      return desc;
    });
    this.#registry = createRegistry(...files);
  }

  loadProtoset(_path: string): void {
    throw new Error("loadProtoset() is not supported by the smoke harness");
  }

  /** Connects (blocking); with `reflect`, descriptors come from the server's reflection service. */
  connect(address: string, params: { plaintext?: boolean; reflect?: boolean; timeout?: string | number } = {}): void {
    if (runtime.initContext) throw new Error("connect() cannot be called in the init context");
    if (params.plaintext !== true) throw new Error("the smoke harness only connects with plaintext: true");
    const answer = runtime.blocking("connect", { address, reflect: params.reflect === true, timeoutMs: durationMs(params.timeout, 60_000) }) as { files: string[] };
    if (params.reflect === true) {
      const protos = answer.files.map((b) => fromBinary(FileDescriptorProtoSchema, Buffer.from(b, "base64")));
      this.#registry = createFileRegistry(create(FileDescriptorSetSchema, { file: dependenciesFirst(protos) }));
    }
    if (this.#registry === undefined) throw new Error("connect(): no descriptors: call load() in the init context or connect with reflect: true");
    this.#address = address;
    this.#channel = new grpc.Client(address, grpc.credentials.createInsecure());
  }

  /** The method of a url "package.Service/Method" (a leading slash allowed). */
  method(url: string): { method: DescMethod; path: string; registry: Registry; channel: grpc.Client; address: string } {
    if (this.#channel === undefined || this.#registry === undefined || this.#address === undefined) throw new Error("no gRPC connection: call connect() first");
    const [serviceName, methodName] = url.replace(/^\//, "").split("/");
    const service = this.#registry.getService(serviceName ?? "");
    const method = service?.methods.find((m) => m.name === methodName);
    if (method === undefined) throw new Error(`method "${url}" not found in file descriptors`);
    return { method, path: `/${serviceName}/${methodName}`, registry: this.#registry, channel: this.#channel, address: this.#address };
  }

  /** A unary call that blocks the VU until the answer. */
  invoke(url: string, request: object, params?: Params): Response {
    const { method, path: rpcPath, registry, address } = this.method(url);
    if (method.methodKind !== "unary") throw new Error(`${url} is not unary`);
    const started = performance.now();
    const r = runtime.blocking("invoke", {
      address,
      path: rpcPath,
      request: Buffer.from(fromK6(method.input, request, registry)).toString("base64"),
      metadata: params?.metadata ?? {},
      timeoutMs: durationMs(params?.timeout, 60_000),
    }) as { code: number; details: string; response: string | null; headers: Record<string, string[]>; trailers: Record<string, string[]> };
    runtime.sample("grpc_req_duration", performance.now() - started);
    return {
      status: r.code,
      message: r.response === null ? toJson(method.output, create(method.output), { alwaysEmitImplicit: true }) : toK6(method.output, Buffer.from(r.response, "base64"), registry),
      headers: r.headers,
      trailers: r.trailers,
      error: r.code === StatusOK ? null : { code: r.code, message: r.details, details: [] },
    };
  }

  /** A unary call on this VU's channel; keeps the iteration alive until it settles. */
  asyncInvoke(url: string, request: object, params?: Params): Promise<Response> {
    const { method, path: rpcPath, registry, channel } = this.method(url);
    const release = runtime.hold();
    const started = performance.now();
    return new Promise<Response>((resolve) => {
      let headers: grpc.Metadata | undefined;
      const call = channel.makeUnaryRequest(
        rpcPath,
        passthrough.serialize,
        passthrough.deserialize,
        fromK6(method.input, request, registry),
        metadataOf(params),
        { deadline: Date.now() + durationMs(params?.timeout, 60_000) },
        (error, value) => {
          runtime.sample("grpc_req_duration", performance.now() - started);
          const status = error?.code ?? StatusOK;
          resolve({
            status,
            message: value === undefined ? null : toK6(method.output, value, registry),
            headers: mapOf(headers),
            trailers: mapOf(error?.metadata),
            error: error === null ? null : { code: error.code, message: error.details, details: [] },
          });
          release();
        },
      );
      call.on("metadata", (md) => (headers = md));
    });
  }

  close(): void {
    this.#channel?.close();
    this.#channel = undefined;
  }

  healthCheck(_service?: string): { Status: string } {
    throw new Error("healthCheck() is not supported by the smoke harness");
  }
}

type StreamEvent = "data" | "error" | "end";
type Listener = (value: unknown, metadata: { ts: number }) => void;

/** A streaming call, with k6's events: data, error (then end), end. */
export class Stream {
  readonly #listeners: Record<StreamEvent, Listener[]> = { data: [], error: [], end: [] };
  readonly #call: grpc.ClientDuplexStream<Uint8Array, Uint8Array> | grpc.ClientReadableStream<Uint8Array> | grpc.ClientWritableStream<Uint8Array>;
  readonly #method: DescMethod;
  readonly #registry: Registry;
  #writable = true;
  #closed = false;

  constructor(client: Client, url: string, params?: Params) {
    const { method, path: rpcPath, registry, channel } = client.method(url);
    if (method.methodKind === "unary") throw new Error(`${url} is not a streaming method`);
    this.#method = method;
    this.#registry = registry;
    const release = runtime.hold();
    const md = metadataOf(params);
    const options = params?.timeout === undefined ? {} : { deadline: Date.now() + durationMs(params.timeout, 0) };
    if (method.methodKind === "bidi_streaming") {
      this.#call = channel.makeBidiStreamRequest(rpcPath, passthrough.serialize, passthrough.deserialize, md, options);
    } else if (method.methodKind === "server_streaming") {
      throw new Error("server streaming takes its request at the start; not supported by the smoke harness");
    } else {
      this.#call = channel.makeClientStreamRequest(rpcPath, passthrough.serialize, passthrough.deserialize, md, options, (error, value) => {
        if (error === null && value !== undefined) this.#emit("data", toK6(method.output, value, registry));
      });
    }
    runtime.sample("grpc_streams", 1);
    const call = this.#call as NodeJS.EventEmitter;
    call.on("data", (bytes: Uint8Array) => {
      runtime.sample("grpc_streams_msgs_received", 1);
      this.#emit("data", toK6(method.output, bytes, registry));
    });
    call.on("status", (status: grpc.StatusObject) => {
      if (status.code !== grpc.status.OK && status.code !== grpc.status.CANCELLED) {
        this.#emit("error", { code: status.code, details: [], message: status.details });
      }
      this.#finish(release);
    });
    call.on("error", () => {
      // Reported through "status".
    });
  }

  on(event: StreamEvent, listener: Listener): void {
    if (!(event in this.#listeners)) throw new Error(`unknown stream event ${event}`);
    this.#listeners[event].push(listener);
  }

  write(request: object): void {
    if (!this.#writable || this.#closed) return;
    const bytes = fromK6(this.#method.input, request, this.#registry);
    (this.#call as grpc.ClientWritableStream<Uint8Array>).write(bytes);
    runtime.sample("grpc_streams_msgs_sent", 1);
  }

  end(): void {
    if (!this.#writable) return;
    this.#writable = false;
    if (this.#method.methodKind !== "server_streaming") (this.#call as grpc.ClientWritableStream<Uint8Array>).end();
  }

  #finish(release: () => void): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#writable = false;
    this.#emit("end", {});
    release();
  }

  #emit(event: StreamEvent, value: unknown): void {
    for (const l of this.#listeners[event]) runtime.guard(`stream ${event} handler`, () => l(value, { ts: Math.floor(Date.now() / 1000) }));
  }
}

export default {
  Client,
  Stream,
  StatusOK,
  StatusCanceled,
  StatusUnknown,
  StatusInvalidArgument,
  StatusDeadlineExceeded,
  StatusNotFound,
  StatusAlreadyExists,
  StatusPermissionDenied,
  StatusResourceExhausted,
  StatusFailedPrecondition,
  StatusAborted,
  StatusOutOfRange,
  StatusUnimplemented,
  StatusInternal,
  StatusUnavailable,
  StatusDataLoss,
  StatusUnauthenticated,
};
