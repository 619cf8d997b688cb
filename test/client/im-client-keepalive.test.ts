import net from "node:net";
import type { Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import type { ConnectRequest } from "../../gen/im/v1/gateway_pb.js";
import { ImClient, type ClientState } from "../../client/im-client.js";
import { recordMessages, startTestServer, waitFor, type TestServer } from "../support/test-server.js";

/** A TCP proxy to `port` that can freeze its connections: bytes stop both ways, nothing is closed (a half-open link). */
async function freezableProxy(port: number) {
  const pairs: [net.Socket, net.Socket][] = [];
  const frozen: [net.Socket, net.Socket][] = [];
  const server = net.createServer((client) => {
    const upstream = net.connect(port, "127.0.0.1");
    client.pipe(upstream);
    upstream.pipe(client);
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
    pairs.push([client, upstream]);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    freeze() {
      for (const [client, upstream] of pairs.splice(0)) {
        frozen.push([client, upstream]);
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
      }
    },
    async close() {
      for (const [a, b] of [...pairs, ...frozen]) (a.destroy(), b.destroy());
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Counts the ping frames the client writes on its long connections. */
function countPings(counter: { pings: number }): Interceptor {
  return (next) => async (req) => {
    if (!req.stream) return next(req);
    const source = req.message as AsyncIterable<ConnectRequest>;
    async function* observed() {
      for await (const frame of source) {
        if (frame.frame.case === "ping") counter.pings++;
        yield frame;
      }
    }
    return next({ ...req, message: observed() } as typeof req);
  };
}

describe("ImClient with heartbeatIntervalMs 0: liveness from HTTP/2 PING keepalive", () => {
  let t: TestServer | undefined;
  let proxy: Awaited<ReturnType<typeof freezableProxy>> | undefined;
  const clients: ImClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
    await proxy?.close();
    await t?.stop();
  });

  it("writes no ping frame, and a half-open link is noticed by the transport and replaced", async () => {
    t = await startTestServer();
    proxy = await freezableProxy(t.port);
    const counter = { pings: 0 };
    const bob = new ImClient({
      transport: createGrpcTransport({ baseUrl: proxy.url, pingIntervalMs: 300, pingTimeoutMs: 2000, interceptors: [countPings(counter)] }),
      token: await t.token("bob"),
      heartbeatIntervalMs: 0,
      backoff: { baseMs: 20, maxMs: 100 },
    });
    clients.push(bob);
    const states: ClientState[] = [];
    bob.on("state", (s) => states.push(s));
    const seen = recordMessages(bob);
    bob.start();
    await waitFor(() => bob.idle(), "bob live");
    await new Promise((r) => setTimeout(r, 1000));
    expect(counter.pings).toBe(0);
    expect(states).toEqual(["connecting", "syncing", "live"]);

    proxy.freeze();
    await waitFor(() => states.includes("offline"), "the dead link noticed", 15_000);
    const alice = await t.client("alice");
    await waitFor(() => alice.idle(), "alice live");
    await alice.send({ toUserId: "bob", body: "after the freeze" });
    await waitFor(() => seen.length === 1 && bob.state === "live", "bob back and caught up", 15_000);
    expect(counter.pings).toBe(0);
  });

  it("with an interval, writes pings on an idle connection (the comparison)", async () => {
    t = await startTestServer();
    const counter = { pings: 0 };
    const bob = new ImClient({
      transport: createGrpcTransport({ baseUrl: t.baseUrl, interceptors: [countPings(counter)] }),
      token: await t.token("bob"),
      heartbeatIntervalMs: 200,
    });
    clients.push(bob);
    bob.start();
    await waitFor(() => counter.pings >= 2, "pings", 5000);
  });
});
