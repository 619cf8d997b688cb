import { SpanStatusCode } from "@opentelemetry/api";
import { tracing as sdkTracing } from "@opentelemetry/sdk-node";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createSeededRandom } from "../../../server/core/clock.js";
import { discardEvents } from "../../../server/core/events.js";
import { DEFAULT_LIMITS } from "../../../server/core/limits.js";
import { createMessageIdGenerator } from "../../../server/core/message-id.js";
import type { Messaging } from "../../../server/core/messaging.js";
import { ObservedMessageStore } from "../../../server/observe/observed-message-store.js";
import { startTracing, type Tracing } from "../../../server/observe/tracing.js";
import { MemoryMessageStore } from "../../../server/store/memory-message-store.js";

const exporter = new sdkTracing.InMemorySpanExporter();
// The SDK's resource detection is asynchronous: ended spans reach the exporter once it settled.
const processor = new sdkTracing.SimpleSpanProcessor(exporter);
let traced: Tracing;
let messaging: Messaging;
const clock = { nowMs: () => 1_000 };

beforeAll(async () => {
  traced = await startTracing({ endpoint: "", instanceId: "test", env: {}, spanProcessor: processor });
  messaging = traced.messaging({
    store: new ObservedMessageStore(new MemoryMessageStore(), traced.storeObserver),
    events: traced.events(discardEvents),
    clock,
    ids: createMessageIdGenerator(clock, createSeededRandom(1)),
    limits: { ...DEFAULT_LIMITS, bodyBytesMax: 8 },
  });
});
afterAll(() => traced.shutdown());
beforeEach(() => exporter.reset());

let finished: sdkTracing.ReadableSpan[] = [];
/** Spans ended so far, exported. */
async function flush(): Promise<void> {
  await processor.forceFlush();
  finished = exporter.getFinishedSpans();
}
const spans = () => finished;
const named = (name: string) => spans().filter((s) => s.name === name);
const parentOf = (span: sdkTracing.ReadableSpan) => span.parentSpanContext?.spanId;

function send(to: string, body: string) {
  return messaging.send("alice", { target: { toUserId: to }, clientMsgId: `${to}:${body}`, contentType: "text/plain", data: new TextEncoder().encode(body) });
}

describe("spans of the messaging core, the store and the publication (in-memory exporter)", () => {
  it("nests a send's core, store append and publication under the request, with conversation id and seq", async () => {
    await traced.requestObserver.observe("Connect/send", async () => ((await send("bob", "hi")).ok ? 0 : 3));
    await flush();
    const [request] = named("Connect/send");
    const [core] = named("core.send");
    const [append] = named("store.append");
    const [publish] = named("publish");
    expect(parentOf(core!)).toBe(request!.spanContext().spanId);
    expect(parentOf(append!)).toBe(core!.spanContext().spanId);
    expect(parentOf(publish!)).toBe(core!.spanContext().spanId);
    expect(new Set(spans().map((s) => s.spanContext().traceId)).size).toBe(1);
    expect(append!.attributes["im.seq"]).toBe(1);
    expect(core!.attributes["im.seq"]).toBe(1);
    expect(publish!.attributes["im.conversation_id"]).toBe(core!.attributes["im.conversation_id"]);
    expect(request!.attributes["rpc.grpc.status_code"]).toBe(0);
    expect(request!.status.code).not.toBe(SpanStatusCode.ERROR);
  });

  it("marks a refused request as an error and says why the core refused it", async () => {
    await traced.requestObserver.observe("Connect/send", async () => ((await send("bob", "far too long a body")).ok ? 0 : 3));
    await flush();
    expect(named("core.send")[0]!.attributes["im.refused"]).toBeDefined();
    expect(named("store.append")).toEqual([]);
    const [request] = named("Connect/send");
    expect(request!.status.code).toBe(SpanStatusCode.ERROR);
    expect(request!.attributes["rpc.grpc.status_code"]).toBe(3);
  });

  it("traces sync and fetch with what they returned", async () => {
    await send("carol", "a");
    await send("carol", "b");
    await flush();
    const conversationId = named("core.send")[0]!.attributes["im.conversation_id"] as string;
    exporter.reset();
    await messaging.sync("alice", { cursors: [], maxMessagesPerConversation: 10, maxSessions: 10 });
    await messaging.fetchRange("alice", { conversationId, afterSeq: 0, upToSeq: 0, limit: 10 });
    await flush();
    expect(named("core.sync")[0]!.attributes["im.sessions"]).toBeGreaterThan(0);
    const fetch = named("core.fetchRange")[0]!;
    expect(fetch.attributes).toMatchObject({ "im.conversation_id": conversationId, "im.messages": 2, "im.last_seq": 2 });
    // The fetch's store read is its child.
    expect(named("store.readRange").filter((s) => parentOf(s) === fetch.spanContext().spanId)).toHaveLength(1);
  });

  it("continues the caller's trace at the owner through the traceparent alone", async () => {
    let carried = "";
    await traced.ownerCalls.call("w1", async (traceparent) => {
      carried = traceparent;
      // The owner side runs with no context of its own: only the string crosses the hop.
      return traced.ownerCalls.serve(traceparent, async () => send("dave", "x"));
    });
    await flush();
    expect(carried).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    const [call] = named("owner.call");
    const [serve] = named("owner.serve");
    expect(call!.attributes["im.owner"]).toBe("w1");
    expect(parentOf(serve!)).toBe(call!.spanContext().spanId);
    expect(serve!.spanContext().traceId).toBe(call!.spanContext().traceId);
    expect(parentOf(named("core.send")[0]!)).toBe(serve!.spanContext().spanId);
  });
});
