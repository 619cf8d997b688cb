import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import {
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
} from "../../../gen/grpc/health/v1/health_pb.js";
import type { HealthCheckResponse } from "../../../gen/grpc/health/v1/health_pb.js";
import { createHealthService, ServingStatus } from "../../../server/gateway/health-service.js";
import type { HealthService, HealthServiceOptions } from "../../../server/gateway/health-service.js";

const CHECK = "/grpc.health.v1.Health/Check";
const WATCH = "/grpc.health.v1.Health/Watch";
const serialize = (service: string): Buffer =>
  Buffer.from(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service })));
const deserialize = (bytes: Buffer): HealthCheckResponse => fromBinary(HealthCheckResponseSchema, bytes);

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A health service on a real HTTP/2 loopback server, and a grpc-js client for it. */
async function start(options?: HealthServiceOptions): Promise<{ health: HealthService; client: grpc.Client; callsClosed: (n: number) => Promise<void> }> {
  const health = createHealthService(options);
  const server = http2.createServer(connectNodeAdapter({ routes: (router) => health.register(router) }));
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session) => sessions.add(session));
  // Calls the server has seen end: the adapter's own close listener (registered first) aborts
  // the handler's signal; one macrotask later the handler has run its finally.
  let closedCalls = 0;
  const waiting: { n: number; resolve: () => void }[] = [];
  server.on("request", (request: http2.Http2ServerRequest) => {
    request.once("close", () =>
      setImmediate(() => {
        closedCalls += 1;
        for (const w of waiting.filter((w) => w.n <= closedCalls)) w.resolve();
      }),
    );
  });
  const callsClosed = (n: number): Promise<void> => (n <= closedCalls ? Promise.resolve() : new Promise((resolve) => waiting.push({ n, resolve })));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  cleanups.push(async () => {
    health.shutdown();
    client.close();
    for (const session of sessions) session.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return { health, client, callsClosed };
}

function check(client: grpc.Client, service: string): Promise<HealthCheckResponse> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(CHECK, serialize, deserialize, service, (error, response) => {
      if (error) reject(error);
      else if (response) resolve(response);
      else reject(new Error("no response"));
    });
  });
}

/** An open Watch call: `next()` awaits the next status, `end` settles with the final status. */
interface Watch {
  next(): Promise<ServingStatus>;
  readonly end: Promise<grpc.StatusObject>;
  cancel(): void;
}

function watch(client: grpc.Client, service: string): Watch {
  const call = client.makeServerStreamRequest(WATCH, serialize, deserialize, service);
  const received: ServingStatus[] = [];
  const waiting: ((status: ServingStatus) => void)[] = [];
  call.on("data", (response: HealthCheckResponse) => {
    const waiter = waiting.shift();
    if (waiter) waiter(response.status);
    else received.push(response.status);
  });
  call.on("error", () => {}); // reported through "status"
  const end = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
  return {
    next: () => {
      const status = received.shift();
      if (status !== undefined) return Promise.resolve(status);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no status for ${service} within 5s`)), 5_000);
        waiting.push((next) => {
          clearTimeout(timer);
          resolve(next);
        });
      });
    },
    end,
    cancel: () => call.cancel(),
  };
}

describe("Check", () => {
  it("reports the overall server, named by the empty string, as SERVING", async () => {
    const { client } = await start();
    expect((await check(client, "")).status).toBe(ServingStatus.SERVING);
  });

  it("fails with NOT_FOUND for a service that has no status", async () => {
    const { client } = await start();
    await expect(check(client, "im.v1.Nope")).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });

  it("reports the status last set for a service", async () => {
    const { health, client } = await start();
    health.setStatus("im.v1.GatewayService", ServingStatus.SERVING);
    health.setStatus("im.v1.GatewayService", ServingStatus.NOT_SERVING);
    expect((await check(client, "im.v1.GatewayService")).status).toBe(ServingStatus.NOT_SERVING);
  });
});

describe("Watch", () => {
  it("sends the current status at once, then each change", async () => {
    const { health, client } = await start();
    const call = watch(client, "");
    expect(await call.next()).toBe(ServingStatus.SERVING);
    health.setStatus("", ServingStatus.NOT_SERVING);
    expect(await call.next()).toBe(ServingStatus.NOT_SERVING);
    health.setStatus("", ServingStatus.SERVING);
    expect(await call.next()).toBe(ServingStatus.SERVING);
    call.cancel();
    expect((await call.end).code).toBe(grpc.status.CANCELLED);
  });

  it("sends SERVICE_UNKNOWN for an unknown service without ending, then its first status", async () => {
    const { health, client } = await start();
    const call = watch(client, "im.v1.GatewayService");
    expect(await call.next()).toBe(ServingStatus.SERVICE_UNKNOWN);
    health.setStatus("im.v1.GatewayService", ServingStatus.SERVING);
    expect(await call.next()).toBe(ServingStatus.SERVING);
  });

  it("does not repeat a status that did not change, and ignores other services", async () => {
    const { health, client } = await start();
    const call = watch(client, "");
    expect(await call.next()).toBe(ServingStatus.SERVING);
    health.setStatus("", ServingStatus.SERVING);
    health.setStatus("im.v1.GatewayService", ServingStatus.NOT_SERVING);
    health.setStatus("", ServingStatus.NOT_SERVING);
    expect(await call.next()).toBe(ServingStatus.NOT_SERVING);
  });

  it("sends NOT_SERVING and ends with OK on shutdown(), after which setStatus is ignored", async () => {
    const { health, client } = await start();
    health.setStatus("im.v1.GatewayService", ServingStatus.SERVING);
    const server = watch(client, "");
    const gateway = watch(client, "im.v1.GatewayService");
    expect(await server.next()).toBe(ServingStatus.SERVING);
    expect(await gateway.next()).toBe(ServingStatus.SERVING);
    health.shutdown();
    expect(await server.next()).toBe(ServingStatus.NOT_SERVING);
    expect(await gateway.next()).toBe(ServingStatus.NOT_SERVING);
    expect((await server.end).code).toBe(grpc.status.OK);
    expect((await gateway.end).code).toBe(grpc.status.OK);
    health.setStatus("", ServingStatus.SERVING);
    expect((await check(client, "")).status).toBe(ServingStatus.NOT_SERVING);
    const late = watch(client, "");
    expect(await late.next()).toBe(ServingStatus.NOT_SERVING);
    expect((await late.end).code).toBe(grpc.status.OK);
  });

  it("refuses a watcher beyond watchersMax with RESOURCE_EXHAUSTED, and frees the slot on cancel", async () => {
    const { client, callsClosed } = await start({ watchersMax: 2 });
    const first = watch(client, "");
    const second = watch(client, "");
    expect(await first.next()).toBe(ServingStatus.SERVING);
    expect(await second.next()).toBe(ServingStatus.SERVING);
    const third = watch(client, "");
    expect((await third.end).code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    first.cancel();
    await first.end;
    // The refused call and the cancelled one have ended on the server: the slot is free now.
    await callsClosed(2);
    const retry = watch(client, "");
    expect(await Promise.race([retry.next(), retry.end])).toBe(ServingStatus.SERVING);
    const fourth = watch(client, "");
    expect((await fourth.end).code).toBe(grpc.status.RESOURCE_EXHAUSTED);
  });
});
