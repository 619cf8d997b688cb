import { createGrpcTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { ImClient } from "../../client/im-client.js";
import { MemoryClientStore } from "../../client/memory-client-store.js";

describe("ImClient.open()", () => {
  it("resumes stored conversations from the store and starts the others at the cursors given", async () => {
    const store = new MemoryClientStore();
    await store.appendMessages("d:alice:bob", [], 7);
    await store.setReadSeq("d:alice:bob", 5);
    const client = await ImClient.open({
      // Never started: nothing is dialled.
      transport: createGrpcTransport({ baseUrl: "http://127.0.0.1:1" }),
      token: "unused",
      store,
      cursors: [
        { conversationId: "d:alice:bob", lastSeq: 100, readSeq: 100 },
        { conversationId: "g:team", lastSeq: 42, readSeq: 40 },
      ],
    });
    // The stored cursor wins over the one given; the unknown group starts where it was given.
    expect(client.cursors().sort((a, b) => (a.conversationId < b.conversationId ? -1 : 1))).toEqual([
      { conversationId: "d:alice:bob", lastSeq: 7, readSeq: 5 },
      { conversationId: "g:team", lastSeq: 42, readSeq: 40 },
    ]);
    await client.close();
  });
});
