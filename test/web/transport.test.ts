import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { ConversationService } from "../../gen/im/v1/conversation_pb.js";
import { answeringFetch, createWebTransport } from "../../web/src/app/transport.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

describe("answeringFetch()", () => {
  it("turns a request that got no answer into UNAVAILABLE, so sends are retried", async () => {
    const failing = answeringFetch(() => Promise.reject(new TypeError("Failed to fetch")));
    const error = await failing("http://127.0.0.1:1/").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.Unavailable);
    expect((error as ConnectError).rawMessage).toBe("Failed to fetch");
  });

  it("passes answers through, error statuses included", async () => {
    const answer = new Response("no", { status: 503 });
    expect(await answeringFetch(() => Promise.resolve(answer))("http://x/")).toBe(answer);
  });
});

describe("createWebTransport()", () => {
  let t: TestServer | undefined;
  afterEach(async () => {
    await t?.stop();
    t = undefined;
  });

  it.each(["connect", "grpc-web"] as const)("reaches the gateway over fetch with the %s protocol", async (protocol) => {
    t = await startTestServer();
    const conversations = createClient(ConversationService, createWebTransport(t.baseUrl, protocol, fetch));
    const headers = { authorization: `Bearer ${await t.token("alice")}` };
    const { conversation } = await conversations.createGroup({ title: "team", memberUserIds: ["bob"] }, { headers });
    expect(conversation?.memberCount).toBe(2);
    const refused = await conversations.addMembers({ conversationId: conversation!.conversationId, userIds: ["bad name"] }, { headers }).catch((e: unknown) => e);
    expect((refused as ConnectError).code).toBe(Code.InvalidArgument);
  });
});
