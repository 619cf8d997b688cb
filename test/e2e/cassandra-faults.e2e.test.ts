import { execFile } from "node:child_process";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GatewayService } from "../../gen/im/v1/gateway_pb.js";
import { ErrorDetailSchema, ErrorReason } from "../../gen/im/v1/message_pb.js";
import { directConversationId } from "../../server/core/conversation-id.js";
import { startCassandraNode, uniqueKeyspace, type CassandraNode } from "../support/cassandra.js";
import { recordMessages, startTestServer, waitFor, type TestServer } from "../support/test-server.js";

const MAIN = fileURLToPath(new URL("../../server/main.ts", import.meta.url));

/** A TCP relay in front of the gateway, so a test can cut every client connection at once (a network blip). */
async function startRelay(targetPort: number): Promise<{ url: string; cut(): void; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((inbound) => {
    const outbound = net.connect(targetPort, "127.0.0.1");
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {
        inbound.destroy();
        outbound.destroy();
      });
    }
    inbound.pipe(outbound).pipe(inbound);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    cut: () => {
      for (const s of sockets) s.destroy();
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Settles within `ms`? Used to show a send is still waiting, neither acknowledged nor rejected. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  const settled = await Promise.race([promise.then(() => true, () => true), new Promise<false>((r) => setTimeout(() => r(false), ms))]);
  return settled;
}

describe("the server on Cassandra when Cassandra fails", () => {
  it("refuses to start, with a clear message and a non-zero exit, when Cassandra is unreachable", async () => {
    // A port nobody listens on: bind one, note it, close it.
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const args = ["--import", "tsx", MAIN, "--store", "cassandra", "--cassandra-contact-points", `127.0.0.1:${port}`, "--port", "0", "--workers", "1", "--log-level", "silent"];
    const error = (await promisify(execFile)(process.execPath, args, { timeout: 60_000 }).catch((e: unknown) => e)) as { code?: number; stderr?: string };
    expect(error.code).toBe(1);
    expect(error.stderr).toContain(`microchat: cannot start: cannot reach Cassandra: no host available: 127.0.0.1:${port}: connect ECONNREFUSED`);
  });

  describe("during traffic", () => {
    // This test stops and restarts its node, so it always runs a private one (not the shared
    // node of the run, nor IM_TEST_CASSANDRA).
    let node: CassandraNode;
    beforeAll(async () => {
      node = await startCassandraNode();
    });
    afterAll(async () => {
      await node?.destroy();
    });

    it("fails sends with UNAVAILABLE while it is down, loses nothing acknowledged, and recovers when it returns", async () => {
      const t: TestServer = await startTestServer(["--store", "cassandra", "--cassandra-contact-points", node.contactPoint, "--cassandra-keyspace", uniqueKeyspace("faults")]);
      const relay = await startRelay(t.port);
      try {
        const viaRelay = { transport: createGrpcTransport({ baseUrl: relay.url }) };
        const alice = await t.client("alice", viaRelay);
        const bob = await t.client("bob", viaRelay);
        const bobSeen = recordMessages(bob);
        await waitFor(() => alice.idle() && bob.idle(), "clients live");
        const acked = [];
        for (let i = 1; i <= 3; i++) acked.push(await alice.send({ toUserId: "bob", body: `before ${i}` }));
        await waitFor(() => bobSeen.length === 3, "pushes before the outage");

        await node.stop();
        const gateway = createClient(GatewayService, createGrpcTransport({ baseUrl: t.baseUrl }));
        const headers = { authorization: `Bearer ${await t.token("alice")}` };
        const refused = ConnectError.from(
          await gateway.send({ target: { case: "toUserId", value: "bob" }, clientMsgId: "raw-1", body: { contentType: "text/plain", data: new Uint8Array(1) } }, { headers }).catch((e: unknown) => e),
        );
        expect(refused.code).toBe(Code.Unavailable);
        expect(refused.findDetails(ErrorDetailSchema)[0]).toMatchObject({ reason: ErrorReason.UNAVAILABLE, retryable: true });
        // The SDK keeps failed sends and sends them again: nothing resolves or rejects meanwhile.
        const during = [alice.send({ toUserId: "bob", body: "during 1" }), alice.send({ toUserId: "bob", body: "during 2" })];
        // A device that connects during the outage cannot sync; it keeps reconnecting.
        const carol = await t.client("carol");
        const fromCarol = carol.send({ toUserId: "bob", body: "from carol" });
        expect(await settlesWithin(Promise.race([...during, fromCarol]), 1_500)).toBe(false);

        await node.start();
        // Carol's reconnects carry her send as soon as Cassandra answers again.
        const carolResult = await fromCarol;
        expect(carolResult.duplicate).toBe(false);
        // Alice's connection never broke, so her sends go out again when it does.
        relay.cut();
        const duringResults = await Promise.all(during);
        acked.push(...duringResults);
        await waitFor(() => bobSeen.length === 6, "bob's messages after the outage", 30_000);

        const conv = directConversationId("alice", "bob");
        const log = await t.server.store.readRange(conv, 0, undefined, 100);
        const texts = log.map((m) => new TextDecoder().decode(m.data));
        expect(texts).toEqual(["before 1", "before 2", "before 3", "during 1", "during 2"]);
        expect(log.map((m) => m.seq)).toEqual(acked.map((r) => Number(r.seq)));
        log.forEach((m, i) => expect(m.prevSeq).toBe(i === 0 ? 0 : log[i - 1]!.seq));
        // Bob saw every message once, in log order, across his reconnect.
        expect(bobSeen.filter((s) => s.startsWith(conv))).toEqual(log.map((m) => `${conv}:${m.seq}:${new TextDecoder().decode(m.data)}`));
        expect(bobSeen.filter((s) => !s.startsWith(conv))).toEqual([`${directConversationId("bob", "carol")}:${carolResult.seq}:from carol`]);
        // And the server takes sends again right away.
        const after = await alice.send({ toUserId: "bob", body: "after" });
        expect(after.prevSeq).toBe(acked[acked.length - 1]!.seq);
      } finally {
        await t.stop();
        relay.cut();
        await relay.close();
      }
    }, 180_000);
  });
});
