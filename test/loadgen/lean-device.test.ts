import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { MessageSchema, type Message } from "../../gen/im/v1/message_pb.js";
import type { FindingKind } from "../../loadgen/delivery-checker.js";
import { parseLoadgenArgs, type LoadgenOptions } from "../../loadgen/options.js";
import { runLoadgen } from "../../loadgen/run-loadgen.js";
import { StreamSink } from "../../server/gateway/lean-stream.js";
import { Publication } from "../../server/route/publication.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

const quiet = { log: () => {}, progress: () => {} };

/** What the test server does to one push on its way to a device: the pushes to write instead. */
type Corruption = (message: Message, original: Publication) => Publication[];

const reencode = (original: Publication, change: (m: Message) => void): Publication => {
  const m = fromBinary(MessageSchema, original.wire.event.value as Uint8Array);
  change(m);
  return Publication.message(original.origin, toBinary(MessageSchema, create(MessageSchema, m)), original.exceptConnectionId);
};

/**
 * Lean devices check what the server pushes, as it pushed it: a server whose pushes go wrong
 * fails the run with the finding that names the fault. The faults are made in the test
 * server's own push path (StreamSink.push, where every publication's bytes are written to a
 * device's stream), on one push well inside the run.
 */
describe("lean devices against a server whose pushes go wrong", () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterAll(async () => {
    await t.stop();
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  const options = (args: string) => parseLoadgenArgs([...args.split(" "), "--target", `127.0.0.1:${t.port}`, "--out", "none", "--progress-ms", "200", "--settle-timeout-s", "3"], {}) as LoadgenOptions;
  const fanout = (device: string) => options(`group-fanout --groups 2 --members 4 --senders 4 --rate 100 --duration-s 1 --processes 0 --device ${device}`);

  /** Pushes the server writes go through `corrupt` once: at the `nth` message push overall. */
  function corruptNth(nth: number, corrupt: Corruption): { readonly applied: () => number } {
    const push = StreamSink.prototype.push;
    let seen = 0;
    let applied = 0;
    vi.spyOn(StreamSink.prototype, "push").mockImplementation(function (this: StreamSink, publication: Publication) {
      if (publication.kind !== "message" || ++seen !== nth) return push.call(this, publication);
      applied++;
      const m = fromBinary(MessageSchema, publication.wire.event.value as Uint8Array);
      for (const p of corrupt(m, publication)) push.call(this, p);
    });
    return { applied: () => applied };
  }

  it.each<[string, Corruption, FindingKind]>([
    ["drops a push", () => [], "out-of-order"],
    ["pushes a message twice", (_m, p) => [p, p], "duplicate"],
    ["pushes a message of a conversation the device is not in", (_m, p) => [p, reencode(p, (m) => (m.conversationId = "g:not-joined"))], "unexpected-conversation"],
    ["pushes a message under another message id", (_m, p) => [reencode(p, (m) => (m.messageId = "01J0000000000000000000FAKE"))], "content-mismatch"],
    ["pushes a message with a wrong prev_seq", (_m, p) => [reencode(p, (m) => (m.prevSeq += 1n))], "out-of-order"],
  ])("fails the run when the server %s", async (_what, corrupt, kind) => {
    const fault = corruptNth(20, corrupt);
    const r = await runLoadgen(fanout("lean"), quiet);
    expect(fault.applied()).toBe(1);
    expect(r.passed).toBe(false);
    expect(r.check.counts[kind]).toBeGreaterThan(0);
    expect(r.failures.join("\n")).toMatch(/delivery check failed/);
  }, 60_000);

  it("fails the run when the server swaps two pushes on their way to a device (reported, not repaired)", async () => {
    let heldBack: { sink: StreamSink; publication: Publication } | undefined;
    const push = StreamSink.prototype.push;
    let seen = 0;
    vi.spyOn(StreamSink.prototype, "push").mockImplementation(function (this: StreamSink, publication: Publication) {
      seen++;
      if (seen === 20) {
        heldBack = { sink: this, publication };
        return;
      }
      push.call(this, publication);
      if (heldBack !== undefined && heldBack.sink === this) {
        push.call(heldBack.sink, heldBack.publication);
        heldBack = undefined;
      }
    });
    const r = await runLoadgen(fanout("lean"), quiet);
    expect(r.passed).toBe(false);
    expect(r.check.counts["out-of-order"] + r.check.counts.duplicate).toBeGreaterThan(0);
  }, 60_000);

  it("passes the same run when nothing goes wrong, and counts every push", async () => {
    const r = await runLoadgen(fanout("lean"), quiet);
    expect(r.failures).toEqual([]);
    const sent = r.figures.find((f) => f.name === "messages sent (acknowledged)")!.value;
    expect(r.figures.find((f) => f.name === "deliveries to other members")!.value).toBe(sent * 3);
    expect(r.figures.find((f) => f.name === "pushes out of order (delivery checker)")!.value).toBe(0);
    // Every member holds every message: three pushed, its own from the answers to its sends.
    expect(r.check.deliveries).toBe(sent * 4);
  }, 60_000);

  it("while SDK devices repair a dropped push themselves (so the lean kind is what tests the server's pushes)", async () => {
    const fault = corruptNth(20, () => []);
    const r = await runLoadgen(fanout("sdk"), quiet);
    expect(fault.applied()).toBe(1);
    expect(r.failures).toEqual([]);
  }, 60_000);
});
