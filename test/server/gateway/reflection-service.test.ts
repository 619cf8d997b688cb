import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { create, createFileRegistry, fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import type { FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health } from "../../../gen/grpc/health/v1/health_pb.js";
import * as v1 from "../../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { ConversationService } from "../../../gen/im/v1/conversation_pb.js";
import { GatewayService } from "../../../gen/im/v1/gateway_pb.js";
import { createHealthService } from "../../../server/gateway/health-service.js";
import { createReflectionService } from "../../../server/gateway/reflection-service.js";
import type { ReflectionServiceOptions } from "../../../server/gateway/reflection-service.js";

/** A request's message_request, as plain data both versions accept. */
type Query =
  | { case: "listServices" | "fileByFilename" | "fileContainingSymbol" | "allExtensionNumbersOfType"; value: string }
  | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
  | { case: undefined };
type Response = v1.ServerReflectionResponse | v1alpha.ServerReflectionResponse;

const versions = [
  {
    name: "v1",
    path: "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    encode: (messageRequest: Query): Buffer =>
      Buffer.from(toBinary(v1.ServerReflectionRequestSchema, create(v1.ServerReflectionRequestSchema, { host: "h", messageRequest }))),
    decode: (bytes: Buffer): Response => fromBinary(v1.ServerReflectionResponseSchema, bytes),
  },
  {
    name: "v1alpha",
    path: "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    encode: (messageRequest: Query): Buffer =>
      Buffer.from(toBinary(v1alpha.ServerReflectionRequestSchema, create(v1alpha.ServerReflectionRequestSchema, { host: "h", messageRequest }))),
    decode: (bytes: Buffer): Response => fromBinary(v1alpha.ServerReflectionResponseSchema, bytes),
  },
];
type Version = (typeof versions)[number];

const bufBin = fileURLToPath(new URL("../../../node_modules/.bin/buf", import.meta.url));

/** Health and reflection on a real HTTP/2 loopback server; im.v1 is described, not served. */
async function start(options?: ReflectionServiceOptions): Promise<{ port: number; stop(): Promise<void> }> {
  const health = createHealthService();
  const reflection = createReflectionService([GatewayService, ConversationService, Health], options);
  const server = http2.createServer(
    connectNodeAdapter({
      routes: (router) => {
        health.register(router);
        reflection.register(router);
      },
    }),
  );
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session) => sessions.add(session));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    async stop() {
      health.shutdown();
      for (const session of sessions) session.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** One reflection stream: `ask` writes a request and awaits the next response. */
function open(client: grpc.Client, version: Version) {
  const call = client.makeBidiStreamRequest(version.path, version.encode, version.decode);
  const received: Response[] = [];
  const waiting: ((response: Response) => void)[] = [];
  call.on("data", (response: Response) => {
    const waiter = waiting.shift();
    if (waiter) waiter(response);
    else received.push(response);
  });
  call.on("error", () => {}); // reported through "status"
  const end = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
  const failed = end.then((status) => {
    throw new Error(`stream ended: ${status.code} ${status.details}`);
  });
  failed.catch(() => {});
  return {
    end,
    ask(query: Query): Promise<Response> {
      call.write(query);
      const response = received.shift();
      if (response) return Promise.resolve(response);
      const next = new Promise<Response>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no reflection response within 5s")), 5_000);
        waiting.push((next) => {
          clearTimeout(timer);
          resolve(next);
        });
      });
      return Promise.race([next, failed]);
    },
    close: () => call.end(),
  };
}

/** The parsed files of a file_descriptor_response, failing on any other response. */
function files(response: Response): FileDescriptorProto[] {
  const answer = response.messageResponse;
  if (answer.case !== "fileDescriptorResponse") throw new Error(`expected files, got ${answer.case}`);
  return answer.value.fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes));
}

/**
 * Orders files so that each comes after its imports, failing on an import that is missing.
 * (createFileRegistry's resolver overload mis-orders diamond imports, so the set form is used.)
 */
function dependenciesFirst(protos: readonly FileDescriptorProto[]): FileDescriptorProto[] {
  const byName = new Map(protos.map((p) => [p.name, p]));
  const ordered: FileDescriptorProto[] = [];
  const visited = new Set<string>();
  const visit = (proto: FileDescriptorProto): void => {
    if (visited.has(proto.name)) return;
    visited.add(proto.name);
    for (const name of proto.dependency) {
      const dependency = byName.get(name);
      if (dependency === undefined) throw new Error(`${proto.name} imports ${name}, which was not sent`);
      visit(dependency);
    }
    ordered.push(proto);
  };
  protos.forEach(visit);
  return ordered;
}

const GATEWAY_CLOSURE = [
  "im/v1/gateway.proto",
  "buf/validate/validate.proto",
  "im/v1/call.proto",
  "im/v1/message.proto",
  "google/protobuf/descriptor.proto",
  "google/protobuf/duration.proto",
  "google/protobuf/field_mask.proto",
  "google/protobuf/timestamp.proto",
];

let server: Awaited<ReturnType<typeof start>>;
let client: grpc.Client;
beforeAll(async () => {
  server = await start();
  client = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
});
afterAll(async () => {
  client.close();
  await server.stop();
});

describe.each(versions)("reflection $name", (version) => {
  it("lists every served service, health and both reflection services included", async () => {
    const response = await open(client, version).ask({ case: "listServices", value: "*" });
    expect(response.messageResponse.case).toBe("listServicesResponse");
    const names = response.messageResponse.case === "listServicesResponse"
      ? response.messageResponse.value.service.map((s) => s.name)
      : [];
    expect(names).toEqual([
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
      "im.v1.ConversationService",
      "im.v1.GatewayService",
    ]);
    expect(response.validHost).toBe("h");
    expect(response.originalRequest?.messageRequest).toEqual({ case: "listServices", value: "*" });
  });

  it("answers file_containing_symbol with the file first, then its transitive dependencies", async () => {
    const protos = files(await open(client, version).ask({ case: "fileContainingSymbol", value: "im.v1.GatewayService" }));
    expect(protos[0]?.name).toBe("im/v1/gateway.proto");
    expect(protos.map((p) => p.name).sort()).toEqual([...GATEWAY_CLOSURE].sort());
    // The set is self-contained: every import resolves, and the service is fully described.
    const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: dependenciesFirst(protos) }));
    const service = registry.getService("im.v1.GatewayService");
    expect(service?.methods.map((m) => m.name)).toEqual(GatewayService.methods.map((m) => m.name));
    expect(service?.method.send?.input.field.body?.message?.typeName).toBe("im.v1.MessageBody");
  });

  it("sends each file once per stream, but always the file asked for", async () => {
    const stream = open(client, version);
    files(await stream.ask({ case: "fileContainingSymbol", value: "im.v1.GatewayService" }));
    const conversation = files(await stream.ask({ case: "fileContainingSymbol", value: "im.v1.ConversationService" }));
    expect(conversation.map((p) => p.name)).toEqual(["im/v1/conversation.proto"]);
    const again = files(await stream.ask({ case: "fileByFilename", value: "im/v1/message.proto" }));
    expect(again.map((p) => p.name)).toEqual(["im/v1/message.proto"]);
  });

  it.each([
    ["a method", "im.v1.GatewayService.Send", "im/v1/gateway.proto"],
    ["a message", "im.v1.SendRequest", "im/v1/gateway.proto"],
    ["a field", "im.v1.SendRequest.client_msg_id", "im/v1/gateway.proto"],
    ["a oneof", "im.v1.SendRequest.target", "im/v1/gateway.proto"],
    ["a top-level enum", "im.v1.DisconnectReason", "im/v1/gateway.proto"],
    ["an enum value, scoped beside its enum", "im.v1.DISCONNECT_REASON_SLOW_CONSUMER", "im/v1/gateway.proto"],
    ["the nested enum a field is typed with", "grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto"],
    ["a nested message", "google.protobuf.DescriptorProto.ExtensionRange", "google/protobuf/descriptor.proto"],
    ["an extension", "buf.validate.field", "buf/validate/validate.proto"],
    ["the reflection service itself", "grpc.reflection.v1alpha.ServerReflection", "grpc/reflection/v1alpha/reflection.proto"],
  ])("finds the file containing %s", async (_what, symbol, file) => {
    const protos = files(await open(client, version).ask({ case: "fileContainingSymbol", value: symbol }));
    expect(protos[0]?.name).toBe(file);
  });

  it("answers an unknown symbol or file with NOT_FOUND and keeps the stream open", async () => {
    const stream = open(client, version);
    for (const query of [
      { case: "fileContainingSymbol", value: "im.v1.Nope" },
      { case: "fileByFilename", value: "im/v1/nope.proto" },
      { case: "fileContainingExtension", value: { containingType: "google.protobuf.FieldOptions", extensionNumber: 7 } },
      { case: "allExtensionNumbersOfType", value: "im.v1.Nope" },
    ] satisfies Query[]) {
      const response = await stream.ask(query);
      expect(response.messageResponse).toMatchObject({ case: "errorResponse", value: { errorCode: grpc.status.NOT_FOUND } });
    }
    const protos = files(await stream.ask({ case: "fileByFilename", value: "im/v1/gateway.proto" }));
    expect(protos[0]?.name).toBe("im/v1/gateway.proto");
    stream.close();
    expect((await stream.end).code).toBe(grpc.status.OK);
  });

  it("answers extension queries from the descriptors (buf.validate.field is FieldOptions 1159)", async () => {
    const stream = open(client, version);
    const numbers = await stream.ask({ case: "allExtensionNumbersOfType", value: "google.protobuf.FieldOptions" });
    expect(numbers.messageResponse).toMatchObject({
      case: "allExtensionNumbersResponse",
      value: { baseTypeName: "google.protobuf.FieldOptions", extensionNumber: expect.arrayContaining([1159]) },
    });
    const none = await stream.ask({ case: "allExtensionNumbersOfType", value: "im.v1.SendRequest" });
    expect(none.messageResponse).toMatchObject({ value: { extensionNumber: [] } });
    const extension = { containingType: "google.protobuf.FieldOptions", extensionNumber: 1159 };
    const protos = files(await stream.ask({ case: "fileContainingExtension", value: extension }));
    expect(protos[0]?.name).toBe("buf/validate/validate.proto");
  });

  it("ends the stream with INVALID_ARGUMENT on a request without message_request", async () => {
    const stream = open(client, version);
    await expect(stream.ask({ case: undefined })).rejects.toThrow();
    expect((await stream.end).code).toBe(grpc.status.INVALID_ARGUMENT);
  });
});

describe("requestsPerStreamMax", () => {
  it("ends a stream that asks more with RESOURCE_EXHAUSTED", async () => {
    const limited = await start({ requestsPerStreamMax: 2 });
    const limitedClient = new grpc.Client(`127.0.0.1:${limited.port}`, grpc.credentials.createInsecure());
    try {
      const stream = open(limitedClient, versions[0]!);
      await stream.ask({ case: "listServices", value: "" });
      await stream.ask({ case: "listServices", value: "" });
      await expect(stream.ask({ case: "listServices", value: "" })).rejects.toThrow();
      expect((await stream.end).code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    } finally {
      limitedClient.close();
      await limited.stop();
    }
  });
});

describe("buf curl through reflection", () => {
  const run = promisify(execFile);
  const curl = (...args: string[]) =>
    run(bufBin, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", ...args], { timeout: 20_000 });

  it("has the buf CLI installed", () => {
    expect(existsSync(bufBin)).toBe(true);
  });

  it.each(["grpc-v1", "grpc-v1alpha"])("lists the im.v1 methods with --reflect-protocol %s", async (protocol) => {
    const { stdout } = await curl("--reflect-protocol", protocol, "--list-methods", `http://127.0.0.1:${server.port}`);
    const listed = stdout.trim().split("\n");
    for (const service of [GatewayService, ConversationService, Health]) {
      for (const method of service.methods) expect(listed).toContain(`${service.typeName}/${method.name}`);
    }
  });

  it("calls grpc.health.v1.Health/Check with a schema learned by reflection", async () => {
    const { stdout } = await curl("-d", '{"service":""}', `http://127.0.0.1:${server.port}/grpc.health.v1.Health/Check`);
    expect(JSON.parse(stdout)).toEqual({ status: "SERVING" });
  });
});
