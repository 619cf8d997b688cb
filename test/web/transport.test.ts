import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { ConversationService } from "../../gen/im/v1/conversation_pb.js";
import { create } from "@bufbuild/protobuf";
import { ErrorDetailSchema, ErrorReason } from "../../gen/im/v1/message_pb.js";
import { answeringFetch, createWebTransport, isUnanswered } from "../../web/src/app/transport.js";
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

describe("isUnanswered()", () => {
  const refusal = (code: Code) => new ConnectError("no", code, undefined, [{ desc: ErrorDetailSchema, value: create(ErrorDetailSchema, { reason: ErrorReason.UNAVAILABLE, retryable: true }) }]);
  it.each([
    ["a call cancelled with its connection", new ConnectError("This operation was aborted", Code.Canceled), true],
    ["a fetch that failed", new ConnectError("Failed to fetch", Code.Unknown), true],
    ["no connection", new ConnectError("not connected", Code.Unavailable), true],
    ["the server's refusal", refusal(Code.InvalidArgument), false],
    ["the server's UNAVAILABLE (the SDK retries those itself)", refusal(Code.Unavailable), false],
    ["an answer without detail that is not a transport failure", new ConnectError("bad", Code.InvalidArgument), false],
  ])("%s: %s", (_what, error, unanswered) => {
    expect(isUnanswered(error)).toBe(unanswered);
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
