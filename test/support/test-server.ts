import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { pino } from "pino";
import { ImClient, type ImClientOptions } from "../../client/im-client.js";
import { loadConfig } from "../../server/config.js";
import { DEV_JWT_SECRET, mintToken } from "../../server/gateway/auth.js";
import { startServer, type RunningServer } from "../../server/main.js";

/** A server on a free loopback port with the given flags, plus helpers to reach it. */
export interface TestServer {
  readonly server: RunningServer;
  readonly port: number;
  readonly baseUrl: string;
  token(userId: string, ttlS?: number): Promise<string>;
  /** An SDK client for `userId` over gRPC (HTTP/2); started; closed by stop(). */
  client(userId: string, options?: Partial<ImClientOptions>): Promise<ImClient>;
  stop(): Promise<void>;
}

/** Flags that turn the rate limits off, for load scenarios that measure the server rather than its limits. */
export const NO_RATE_LIMITS: readonly string[] = ["--rate-user-sends-per-s", "0", "--rate-connection-sends-per-s", "0", "--rate-user-bytes-per-s", "0", "--rate-connection-bytes-per-s", "0"];

/** Starts a server in this process (memory store unless flags say otherwise). */
export async function startTestServer(flags: string[] = []): Promise<TestServer> {
  const config = loadConfig(["--port", "0", "--store", "memory", "--log-level", "silent", ...flags], {});
  const server = await startServer(config, pino({ level: "silent" }));
  const port = server.gateway.port;
  const baseUrl = `http://127.0.0.1:${port}`;
  const clients: ImClient[] = [];
  const token = (userId: string, ttlS?: number) => mintToken(DEV_JWT_SECRET, userId, ttlS);
  return {
    server,
    port,
    baseUrl,
    token,
    async client(userId, options = {}) {
      const client = new ImClient({
        transport: createGrpcTransport({ baseUrl }),
        token: await token(userId),
        heartbeatIntervalMs: 1000,
        backoff: { baseMs: 20, maxMs: 200 },
        ...options,
      });
      clients.push(client);
      client.start();
      return client;
    },
    async stop() {
      await Promise.all(clients.map((c) => c.close()));
      await server.stop();
    },
  };
}

/** A Connect-protocol transport over HTTP/1.1, as a browser would use. */
export function browserTransport(baseUrl: string) {
  return createConnectTransport({ baseUrl, httpVersion: "1.1" });
}

/** Polls `condition` until it holds; fails with `what` after `timeoutMs`. */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Collects the messages a client delivers, as "conversation:seq:text". */
export function recordMessages(client: ImClient): string[] {
  const seen: string[] = [];
  client.on("message", (m) => seen.push(`${m.conversationId}:${m.seq}:${new TextDecoder().decode(m.data)}`));
  return seen;
}
