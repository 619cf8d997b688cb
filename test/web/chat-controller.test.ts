import { afterEach, describe, expect, it } from "vitest";
import { mintToken, DEV_JWT_SECRET } from "../../server/gateway/auth.js";
import { ChatController } from "../../web/src/app/chat-controller.js";
import { createWebTransport } from "../../web/src/app/transport.js";
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
