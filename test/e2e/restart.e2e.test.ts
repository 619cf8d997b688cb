import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { ImClient } from "../../client/im-client.js";
import { DEV_JWT_SECRET, mintToken } from "../../server/gateway/auth.js";
import { directConversationId } from "../../server/core/conversation-id.js";
import { spawnServer, type ServerProcess } from "../support/server-process.js";
import { recordMessages, waitFor } from "../support/test-server.js";

describe("server restart on the embedded store", () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it("loses no acknowledged message when killed with SIGKILL mid-traffic", async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), "im-restart-"));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    let server: ServerProcess = await spawnServer(["--data-dir", dataDir]);
    const port = server.port;
    cleanups.push(() => {
      server.child.kill("SIGKILL");
    });
    const client = (user: string) =>
      new ImClient({
        transport: createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }),
        token: () => mintToken(DEV_JWT_SECRET, user),
        heartbeatIntervalMs: 500,
        heartbeatTimeoutMs: 2000,
        backoff: { baseMs: 50, maxMs: 300 },
      });
    const alice = client("alice");
    cleanups.push(() => alice.close());
    alice.start();
    await waitFor(() => alice.idle(), "alice live");

    const acked = new Map<string, bigint>();
    const sends: Promise<void>[] = [];
    for (let i = 0; i < 60; i++) {
      sends.push(alice.send({ toUserId: "bob", body: `m${i}`, clientMsgId: `msg-${i}` }).then((r) => void acked.set(r.clientMsgId, r.seq)));
      if (i === 30) {
        // Some sends are acknowledged, some are in flight, some not yet written.
        await waitFor(() => acked.size >= 10, "first acknowledgements");
        server.child.kill("SIGKILL");
        await server.exited;
        const ackedBeforeCrash = new Map(acked);
        server = await spawnServer(["--data-dir", dataDir], { port });
        // Everything acknowledged before the crash is in the store after it.
        const bob = client("bob");
        cleanups.push(() => bob.close());
        const bobSeen = recordMessages(bob);
        bob.start();
        await waitFor(() => bob.idle() && bobSeen.length >= ackedBeforeCrash.size, "bob's sync after restart");
        const bodies = new Set(bobSeen.map((s) => s.split(":").pop()));
        for (const id of ackedBeforeCrash.keys()) expect(bodies.has(`m${id.slice(4)}`)).toBe(true);
      }
    }
    // The client resends what was not acknowledged; each message is stored exactly once.
    await Promise.all(sends);
    expect(acked.size).toBe(60);
    const seqs = [...acked.values()].map(Number).sort((a, b) => a - b);
    expect(seqs).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    const reader = client("bob");
    cleanups.push(() => reader.close());
    const seen = recordMessages(reader);
    reader.start();
    await waitFor(() => seen.length === 60, "full history");
    const conv = directConversationId("alice", "bob");
    expect(seen.map((s) => s.split(":")[3])).toEqual(seqs.map(String));
    expect(seen.every((s) => s.startsWith(conv))).toBe(true);
  });
});
