import { createServer, type Server } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import type { Transport } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ImClient } from "../../../client/im-client.js";
import { DEV_JWT_SECRET, mintToken } from "../../../server/gateway/auth.js";
import { tracingConfigured } from "../../../server/observe/observability.js";
import { pinnedTransport, startNodeProcess, type NodeProcess } from "../../support/node-process.js";
import { waitFor } from "../../support/test-server.js";

/** A span as OTLP/HTTP JSON carries it, with the instance that sent it. */
interface OtlpSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId?: string;
  readonly name: string;
  readonly startTimeUnixNano: string;
  readonly attributes: { key: string; value: { stringValue?: string; intValue?: string | number; boolValue?: boolean } }[];
  instance: string;
}

/** A local OTLP/HTTP collector (JSON encoding) that keeps every span it is sent. */
async function startCollector(): Promise<{ server: Server; url: string; spans: OtlpSpan[] }> {
  const spans: OtlpSpan[] = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      if (req.url === "/v1/traces" && req.method === "POST") {
        const request = JSON.parse(body) as { resourceSpans: { resource: { attributes: OtlpSpan["attributes"] }; scopeSpans: { spans: OtlpSpan[] }[] }[] };
        for (const rs of request.resourceSpans) {
          const instance = rs.resource.attributes.find((a) => a.key === "service.instance.id")?.value.stringValue ?? "";
          for (const ss of rs.scopeSpans) for (const span of ss.spans) spans.push({ ...span, instance });
        }
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans };
}

function attr(span: OtlpSpan, key: string): string | undefined {
  const value = span.attributes.find((a) => a.key === key)?.value;
  return value === undefined ? undefined : String(value.stringValue ?? value.intValue ?? value.boolValue);
}

async function transportOn(port: number, pid: number): Promise<Transport> {
  for (let attempt = 0; attempt < 64; attempt++) {
    const pinned = await pinnedTransport(port);
    if (pinned.pid === pid) return pinned.transport;
    pinned.session.abort();
  }
  throw new Error(`no connection landed on worker ${pid} in 64 attempts`);
}

describe("OpenTelemetry traces of a node with 2 workers (--otlp-endpoint)", () => {
  let node: NodeProcess;
  let collector: Awaited<ReturnType<typeof startCollector>>;
  let dir: string;
  const clients: ImClient[] = [];
  beforeAll(async () => {
    collector = await startCollector();
    dir = mkdtempSync(join(tmpdir(), "tracing-test-"));
    node = await startNodeProcess(
      ["--workers", "2", "--port", "0", "--data-dir", dir, "--sqlite-sync", "normal", "--drain-timeout-ms", "2000", "--otlp-endpoint", collector.url, "--node-id", "n1"],
      { OTEL_EXPORTER_OTLP_PROTOCOL: "http/json", OTEL_BSP_SCHEDULE_DELAY: "100" },
    );
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    node?.kill("SIGTERM");
    await node?.exited;
    collector?.server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("traces a send through the gateway, the owner hop, the core, the store append and the publication, in one trace", async () => {
    const pids = (node.logs.find((l) => l.msg.startsWith("cluster of"))?.workers as number[] | undefined) ?? [];
    const alice = new ImClient({ transport: await transportOn(node.port, pids[0]!), token: await mintToken(DEV_JWT_SECRET, "alice"), heartbeatIntervalMs: 1000 });
    clients.push(alice);
    alice.start();
    await waitFor(() => alice.idle(), "alice live");
    // Conversations spread over both workers by rendezvous hashing: some are owned by the other one.
    const sent = new Map<string, number>();
    for (let i = 0; i < 12; i++) {
      const reply = await alice.send({ toUserId: `peer${i}`, body: `hello ${i}` });
      sent.set(reply.conversationId, Number(reply.seq));
    }
    const byId = () => new Map(collector.spans.map((s) => [s.spanId, s]));
    const chain = (span: OtlpSpan): OtlpSpan[] => {
      const spans = byId();
      const out = [span];
      for (let s = span; s.parentSpanId !== undefined && s.parentSpanId !== "" && spans.has(s.parentSpanId); ) out.unshift((s = spans.get(s.parentSpanId)!));
      return out;
    };
    // A store append reached through another worker: its ancestry is the whole path.
    const forwarded = () => collector.spans.filter((s) => s.name === "store.append" && chain(s).some((p) => p.name === "owner.serve"));
    await waitFor(() => forwarded().length > 0 && forwarded().every((s) => chain(s)[0]!.name === "Connect/send"), "a forwarded send's spans at the collector", 15_000);
    const append = forwarded()[0]!;
    const path = chain(append);
    expect(path.map((s) => s.name)).toEqual(["Connect/send", "owner.call", "owner.serve", "core.send", "store.append"]);
    expect(new Set(path.map((s) => s.traceId)).size).toBe(1);
    // The gateway's spans come from the worker alice is on, the owner's from the other one.
    expect(path[0]!.instance).toBe("n1.w0");
    expect(path[1]!.instance).toBe("n1.w0");
    expect(path.slice(2).every((s) => s.instance === "n1.w1")).toBe(true);
    const conversationId = attr(append, "im.conversation_id")!;
    expect(sent.has(conversationId)).toBe(true);
    expect(Number(attr(append, "im.seq"))).toBe(sent.get(conversationId));
    // The publication follows the append, under the same core.send.
    await waitFor(() => collector.spans.some((s) => s.name === "publish" && s.parentSpanId === path[3]!.spanId), "the publication's span");
    const publish = collector.spans.find((s) => s.name === "publish" && s.parentSpanId === path[3]!.spanId)!;
    expect(attr(publish, "im.conversation_id")).toBe(conversationId);
    expect(BigInt(publish.startTimeUnixNano)).toBeGreaterThanOrEqual(BigInt(append.startTimeUnixNano));
    // A send this worker owns has no hop: Connect/send -> core.send -> store.append.
    // (12 conversations all owned by the other worker: odds 2^-12.)
    const local = () => collector.spans.filter((s) => s.name === "store.append" && s.instance === "n1.w0");
    await waitFor(() => local().length > 0, "a send served where it arrived");
    expect(chain(local()[0]!).map((s) => s.name)).toEqual(["Connect/send", "core.send", "store.append"]);
  });
});

describe("tracingConfigured()", () => {
  it("is off without an endpoint, on with the flag or the standard variables, off when they disable it", () => {
    expect(tracingConfigured({ otlpEndpoint: "" }, {})).toBe(false);
    expect(tracingConfigured({ otlpEndpoint: "http://c:4318" }, {})).toBe(true);
    expect(tracingConfigured({ otlpEndpoint: "" }, { OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" })).toBe(true);
    expect(tracingConfigured({ otlpEndpoint: "" }, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://c:4318/v1/traces" })).toBe(true);
    expect(tracingConfigured({ otlpEndpoint: "http://c:4318" }, { OTEL_SDK_DISABLED: "true" })).toBe(false);
  });
});
