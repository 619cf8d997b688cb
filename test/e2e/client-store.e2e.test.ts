import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ConnectRequest, SendResponse } from "../../gen/im/v1/gateway_pb.js";
import { GatewayService } from "../../gen/im/v1/gateway_pb.js";
import type { ClientStore } from "../../client/client-store.js";
import { ImClient } from "../../client/im-client.js";
import { SqliteClientStore } from "../../client/sqlite-client-store.js";
import { directConversationId } from "../../server/core/conversation-id.js";
import { recordMessages, startTestServer, waitFor, type TestServer } from "../support/test-server.js";

/** Records the cursors of every sync request written on the long connection. */
function recordSyncCursors(seen: string[][]): Interceptor {
  return (next) => async (req) => {
    if (!req.stream) return next(req);
    const source = req.message as AsyncIterable<ConnectRequest>;
    async function* observed() {
      for await (const frame of source) {
        if (frame.frame.case === "sync") seen.push(frame.frame.value.cursors.map((c) => `${c.conversationId}@${c.lastSeq}`));
        yield frame;
      }
    }
    return next({ ...req, message: observed() } as typeof req);
  };
}

/** A store whose outbox removals are lost: the app died between the server's ack and its own bookkeeping. */
function forgetRemovals(store: ClientStore): ClientStore {
  return {
    load: () => store.load(),
    appendMessages: (c, m, s) => store.appendMessages(c, m, s),
    setReadSeq: (c, r) => store.setReadSeq(c, r),
    messages: (c, q) => store.messages(c, q),
    removeConversation: (c) => store.removeConversation(c),
    addOutbox: (s) => store.addOutbox(s),
    removeOutbox: async () => {},
    close: () => store.close(),
  };
}

describe("the SDK's data layer across an app restart (SqliteClientStore, real server)", () => {
  let t: TestServer;
  let dir: string;
  const clients: ImClient[] = [];
  const stores: ClientStore[] = [];
  beforeEach(async () => {
    t = await startTestServer();
    dir = mkdtempSync(path.join(os.tmpdir(), "client-store-e2e-"));
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
    for (const s of stores.splice(0)) await s.close();
    await t.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** One app life of `userId` over the store file `file`. */
  async function app(userId: string, file: string, options: { transport?: ReturnType<typeof createGrpcTransport>; store?: (s: ClientStore) => ClientStore } = {}) {
    const sqlite = new SqliteClientStore({ path: path.join(dir, file) });
    stores.push(sqlite);
    const client = await ImClient.open({
      transport: options.transport ?? createGrpcTransport({ baseUrl: t.baseUrl }),
      token: await t.token(userId),
      backoff: { baseMs: 20, maxMs: 200 },
      store: options.store?.(sqlite) ?? sqlite,
    });
    clients.push(client);
    return client;
  }

  /** Ends an app life: the client closes, its store file is closed. */
  async function quit(client: ImClient): Promise<void> {
    await client.close();
    clients.splice(clients.indexOf(client), 1);
    for (const s of stores.splice(0)) await s.close();
  }

  it("resumes from its stored cursors and shows its stored history offline", async () => {
    const alice = await t.client("alice");
    await waitFor(() => alice.idle(), "alice live");
    const conv = directConversationId("alice", "bob");
    for (let i = 1; i <= 3; i++) await alice.send({ toUserId: "bob", body: `m${i}` });

    const first = await app("bob", "bob.sqlite");
    const firstSeen = recordMessages(first);
    first.start();
    await waitFor(() => firstSeen.length === 3 && first.idle(), "bob's first sync");
    await quit(first);

    for (let i = 4; i <= 5; i++) await alice.send({ toUserId: "bob", body: `m${i}` });

    const syncs: string[][] = [];
    const second = await app("bob", "bob.sqlite", { transport: createGrpcTransport({ baseUrl: t.baseUrl, interceptors: [recordSyncCursors(syncs)] }) });
    // Offline (not started): the stored history and cursors are there.
    expect((await second.history(conv)).map((m) => new TextDecoder().decode(m.data))).toEqual(["m1", "m2", "m3"]);
    expect(second.cursors()).toEqual([{ conversationId: conv, lastSeq: 3, readSeq: 0 }]);
    const secondSeen = recordMessages(second);
    second.start();
    await waitFor(() => secondSeen.length === 2 && second.idle(), "bob's second sync");
    expect(syncs[0]).toEqual([`${conv}@3`]);
    expect(secondSeen).toEqual([`${conv}:4:m4`, `${conv}:5:m5`]);
    expect((await second.history(conv, { limit: 10 })).map((m) => m.seq)).toEqual([1, 2, 3, 4, 5]);
  });

  it("resends a send made offline after the restart, with the same client_msg_id, once", async () => {
    const offline = await app("bob", "bob.sqlite", { transport: createGrpcTransport({ baseUrl: "http://127.0.0.1:1" }) });
    offline.start();
    const pending = offline.send({ toUserId: "alice", body: "written on the train" });
    const rejected = pending.then(() => "resolved", () => "rejected");
    await waitFor(() => offline.state === "offline", "bob fails to connect");
    await quit(offline);
    expect(await rejected).toBe("rejected");

    const alice = await t.client("alice");
    const aliceSeen: string[] = [];
    alice.on("message", (m) => aliceSeen.push(`${m.seq}:${m.clientMsgId}:${new TextDecoder().decode(m.data)}`));
    const online = await app("bob", "bob.sqlite");
    const sent: SendResponse[] = [];
    online.on("sent", (r) => sent.push(r));
    online.start();
    await waitFor(() => sent.length === 1 && aliceSeen.length === 1, "the resend");
    expect(sent[0]!.duplicate).toBe(false);
    expect(aliceSeen).toEqual([`1:${sent[0]!.clientMsgId}:written on the train`]);
    await waitFor(() => online.idle(), "bob idle");
    const stored = await new SqliteClientStore({ path: path.join(dir, "bob.sqlite") }).load();
    expect(stored.outbox).toEqual([]);
  });

  it("resends a send whose acknowledgement it never recorded: the server returns the original, stores it once", async () => {
    const first = await app("bob", "bob.sqlite", { store: forgetRemovals });
    first.start();
    const original = await first.send({ toUserId: "alice", body: "once", clientMsgId: "k-restart" });
    await quit(first);

    const second = await app("bob", "bob.sqlite");
    const sent: SendResponse[] = [];
    second.on("sent", (r) => sent.push(r));
    second.start();
    await waitFor(() => sent.length === 1, "the resend");
    expect(sent[0]!).toMatchObject({ clientMsgId: "k-restart", duplicate: true, seq: original.seq, messageId: original.messageId });
    const gateway = createClient(GatewayService, createGrpcTransport({ baseUrl: t.baseUrl }));
    const log = await gateway.fetchRange({ conversationId: original.conversationId }, { headers: { authorization: `Bearer ${await t.token("alice")}` } });
    expect(log.messages.map((m) => m.clientMsgId)).toEqual(["k-restart"]);
  });
});
