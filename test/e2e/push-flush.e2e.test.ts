import { afterEach, describe, expect, it } from "vitest";
import { startTestServer, waitFor, type TestServer } from "../support/test-server.js";

describe("--push-flush-ms", () => {
  let t: TestServer;
  afterEach(async () => {
    await t.stop();
  });

  it("holds pushes to a long connection for the delay, then delivers every one in order, while answers leave at once", async () => {
    t = await startTestServer(["--push-flush-ms", "400"]);
    const alice = await t.client("alice");
    const bob = await t.client("bob");
    await waitFor(() => alice.idle() && bob.idle(), "both live");
    const arrived: { seq: number; atMs: number }[] = [];
    bob.on("message", (m) => arrived.push({ seq: m.seq, atMs: Date.now() }));
    const sentAtMs = Date.now();
    const seqs: number[] = [];
    for (let i = 0; i < 3; i++) seqs.push(Number((await alice.send({ toUserId: "bob", body: `m${i}` })).seq));
    // Alice's answers were not held back by the delay (held, three would take 1.2 s).
    expect(Date.now() - sentAtMs).toBeLessThan(1200);
    await waitFor(() => arrived.length === 3, "bob's pushes");
    expect(arrived.map((a) => a.seq)).toEqual(seqs);
    // The first push waited for the flush timer (set when it was published, before the answer).
    expect(arrived[0]!.atMs - sentAtMs).toBeGreaterThanOrEqual(300);
  });
});
