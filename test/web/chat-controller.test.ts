import { IDBFactory, IDBKeyRange } from "fake-indexeddb";
import { afterEach, describe, expect, it } from "vitest";
import type { IdbFactory, IdbKeyRangeStatics } from "../../client/indexeddb-client-store.js";
import { mintToken, DEV_JWT_SECRET } from "../../server/gateway/auth.js";
import { ChatController } from "../../web/src/app/chat-controller.js";
import { openDeviceStorage } from "../../web/src/app/device-storage.js";
import { createWebTransport } from "../../web/src/app/transport.js";
import { unreadCount } from "../../web/src/model/chat-state.js";
import { messageText } from "../../web/src/model/message-text.js";
import { freePort } from "../support/server-process.js";
import { recordMessages, startTestServer, waitFor, type TestServer } from "../support/test-server.js";

describe("ChatController", () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it("sends again, once, a send whose connection was cut before the server answered", { timeout: 60_000 }, async () => {
    const port = await freePort();
    const flags = ["--port", String(port), "--reconnect-spread-ms", "0"];
    let server: TestServer = await startTestServer(flags);
    cleanups.push(() => server.stop());
    // The first Send never gets an answer, like a request to a server that froze. When the
    // connection is then lost, the SDK aborts it, and connect-es reports CANCELED.
    let hold = true;
    const fetchImpl: typeof fetch = (input, init) => {
      if (hold && String(input instanceof Request ? input.url : input).endsWith("/im.v1.GatewayService/Send")) {
        hold = false;
        // Like fetch, it gives up when its signal is aborted.
        return new Promise<Response>((_resolve, reject) => init?.signal?.addEventListener("abort", () => reject(new DOMException("This operation was aborted", "AbortError"))));
      }
      return fetch(input, init);
    };
    const baseUrl = `http://127.0.0.1:${port}`;
    const controller = new ChatController({
      baseUrl,
      protocol: "connect",
      tokens: { userId: "alice", kind: "dev", token: () => mintToken(DEV_JWT_SECRET, "alice") },
      visible: () => true,
      transport: createWebTransport(baseUrl, "connect", fetchImpl),
    });
    cleanups.push(() => controller.close());
    void controller.start();
    await waitFor(() => controller.store.state.connection === "live", "the controller live");
    expect(controller.startDirect("bob")).toBeUndefined();
    expect(controller.send("d:alice:bob", "cut off")).toBeUndefined();
    const conversation = () => controller.store.state.conversations.get("d:alice:bob")!;
    await waitFor(() => !hold, "the send on its way");

    await server.stop();
    server = await startTestServer(flags);
    const bob = await server.client("bob");
    const seen = recordMessages(bob);
    await waitFor(() => conversation().messages.length === 1 && conversation().outgoing.length === 0, "the send delivered back", 30_000);
    expect(conversation().outgoing).toEqual([]);
    await waitFor(() => seen.length === 1, "bob's copy");
    await new Promise((r) => setTimeout(r, 300));
    expect(seen).toEqual(["d:alice:bob:1:cut off"]);
  });
});

describe("ChatController on the device's IndexedDB store (fake-indexeddb)", () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it("shows stored history while the server is unreachable, keeps an offline send across a reload, and delivers it once", { timeout: 60_000 }, async () => {
    const t = await startTestServer();
    cleanups.push(() => t.stop());
    const alice = await t.client("alice");
    const aliceSeen: string[] = [];
    alice.on("message", (m) => aliceSeen.push(`${m.seq}:${m.clientMsgId}:${new TextDecoder().decode(m.data)}`));
    await waitFor(() => alice.idle(), "alice live");
    for (const body of ["m1", "m2", "m3"]) await alice.send({ toUserId: "bob", body });
    const { conversation: group } = await alice.conversations.createGroup({ title: "team", memberUserIds: ["bob"] });
    await alice.send({ conversationId: group!.conversationId, body: "g1" });

    // One IndexedDB for every page load of this "browser".
    const impl = { factory: new IDBFactory() as unknown as IdbFactory, keyRange: IDBKeyRange as unknown as IdbKeyRangeStatics };
    const page = (reachable: boolean) => {
      const controller = new ChatController({
        baseUrl: t.baseUrl,
        protocol: "connect",
        tokens: { userId: "bob", kind: "dev", token: () => mintToken(DEV_JWT_SECRET, "bob") },
        visible: () => true,
        transport: reachable ? undefined : createWebTransport("http://127.0.0.1:1", "connect"),
        storage: (name) => openDeviceStorage(name, impl),
      });
      void controller.start();
      return controller;
    };
    const direct = "d:alice:bob";
    const texts = (c: ChatController) => c.store.state.conversations.get(direct)?.messages.map((m) => messageText(m)) ?? [];

    const first = page(true);
    await waitFor(() => first.store.state.connection === "live", "the first page live");
    expect(first.store.state.storage).toBe("indexeddb");
    first.select(direct);
    await waitFor(() => texts(first).length === 3, "the history from the server");
    await first.close();

    // Reloaded with the server out of reach: the stored history, unread count and group title.
    const offline = page(false);
    await waitFor(() => offline.store.state.connection === "offline", "the offline page");
    await waitFor(() => offline.store.state.conversations.size === 2, "the stored conversations");
    expect(offline.store.state.conversations.get(group!.conversationId)!.title).toBe("team");
    expect(unreadCount(offline.store.state.conversations.get(group!.conversationId)!, "bob")).toBe(1);
    offline.select(direct);
    await waitFor(() => texts(offline).length === 3, "the stored history");
    expect(texts(offline)).toEqual(["m1", "m2", "m3"]);
    expect(offline.send(direct, "written offline")).toBeUndefined();
    const pending = offline.store.state.conversations.get(direct)!.outgoing;
    expect(pending.map((o) => `${o.status}:${o.text}`)).toEqual(["pending:written offline"]);
    const clientMsgId = pending[0]!.clientMsgId;
    await offline.close();

    // Reloaded again, still offline: the send is still there, pending.
    const again = page(false);
    await waitFor(() => again.store.state.conversations.get(direct)?.outgoing.length === 1, "the stored send");
    expect(again.store.state.conversations.get(direct)!.outgoing[0]).toMatchObject({ clientMsgId, status: "pending", text: "written offline" });
    await again.close();

    // The server is reachable: the stored send goes out once, with its client_msg_id.
    const online = page(true);
    await waitFor(() => online.store.state.connection === "live", "the page live again");
    online.select(direct);
    await waitFor(() => texts(online).length === 4 && online.store.state.conversations.get(direct)!.outgoing.length === 0, "the send delivered back");
    expect(texts(online)).toEqual(["m1", "m2", "m3", "written offline"]);
    await waitFor(() => aliceSeen.some((s) => s.endsWith(":written offline")), "alice's copy");
    await new Promise((r) => setTimeout(r, 300));
    expect(aliceSeen.filter((s) => s.endsWith(":written offline"))).toEqual([`4:${clientMsgId}:written offline`]);
    await online.close();
  });
});
