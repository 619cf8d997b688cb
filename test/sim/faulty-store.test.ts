import { describe, expect, it } from "vitest";
import { createSeededRandom } from "../../server/core/clock.js";
import { StoreUnavailableError } from "../../server/core/result.js";
import type { StoredMessage } from "../../server/core/model.js";
import { Faults, NO_FAULTS, Rng, type FaultConfig } from "../../sim/fault-plan.js";
import { FaultyStore, StoreBackend, type StoreCaller } from "../../sim/faulty-store.js";
import { Scheduler } from "../../sim/scheduler.js";
import { Stats } from "../../sim/stats.js";
import { Trace } from "../../sim/trace.js";
import { describeMessageStoreContract } from "../server/store/message-store-contract.js";

function open(faults: Partial<FaultConfig> = {}, caller: StoreCaller = { alive: true, storeCut: false }, loseAckedWrite = 0) {
  const sched = new Scheduler();
  const stats = new Stats();
  const appended: StoredMessage[] = [];
  const backend = new StoreBackend((m) => appended.push(m));
  const store = new FaultyStore(backend, caller, sched, new Faults({ ...NO_FAULTS, ...faults }, new Rng(createSeededRandom(1))), stats, new Trace(undefined), { loseAckedWrite });
  return { sched, stats, backend, store, appended };
}

/** Runs `work` on virtual time until it settles. */
async function settle<T>(sched: Scheduler, work: () => Promise<T>): Promise<PromiseSettledResult<T>> {
  let outcome: PromiseSettledResult<T> | undefined;
  sched.schedule(0, () => {
    sched.touch();
    work().then((value) => (outcome = { status: "fulfilled", value }), (reason: unknown) => (outcome = { status: "rejected", reason }));
  }, undefined);
  await sched.run({ untilMs: 1_000_000, maxEvents: 100_000, stop: () => outcome !== undefined });
  return outcome!;
}

const newMessage = { conversationId: "g:t", senderId: "a", clientMsgId: "k", messageId: "m1", sentAtMs: 1, contentType: "text/plain", data: new Uint8Array(1) };

describeMessageStoreContract("FaultyStore with every fault off", () => open().store);

describe("FaultyStore", () => {
  it("a write that times out after being applied rejects with StoreUnavailableError, and the effect is there (the ambiguous case)", async () => {
    const { sched, store, backend, stats, appended } = open({ storeTimeoutAfterWrite: 1, storeTimeoutMs: 500 });
    await backend.inner.createGroup({ id: "g:t", title: "", ownerId: "a", createdAtMs: 0 }, ["a"]);
    const outcome = await settle(sched, () => store.append(newMessage));
    expect(outcome.status).toBe("rejected");
    expect((outcome as PromiseRejectedResult).reason).toBeInstanceOf(StoreUnavailableError);
    expect(sched.nowMs).toBe(500);
    expect(appended.map((m) => m.seq)).toEqual([1]);
    expect(stats.storeTimeoutsAfterWrite).toBe(1);
  });

  it("a write that fails before being applied rejects and leaves nothing", async () => {
    const { sched, store, backend, appended } = open({ storeFailBeforeWrite: 1 });
    await backend.inner.createGroup({ id: "g:t", title: "", ownerId: "a", createdAtMs: 0 }, ["a"]);
    expect((await settle(sched, () => store.append(newMessage))).status).toBe("rejected");
    expect(appended).toEqual([]);
  });

  it("a node cut off from the store, or dead, gets StoreUnavailableError", async () => {
    const cut = open({}, { alive: true, storeCut: true });
    expect(await settle(cut.sched, () => cut.store.getConversation("g:t"))).toMatchObject({ status: "rejected" });
    const dead = open({}, { alive: false, storeCut: false });
    await expect(dead.store.getConversation("g:t")).rejects.toBeInstanceOf(StoreUnavailableError);
  });

  it("takes the configured latency in virtual time", async () => {
    const { sched, store } = open({ storeLatencyMs: 7, storeJitterMs: 0 });
    expect(await settle(sched, () => store.getConversation("g:t"))).toEqual({ status: "fulfilled", value: undefined });
    expect(sched.nowMs).toBe(7);
  });

  it("appends of one conversation, each with its own latency, get seqs and settle in the order they were issued", async () => {
    const { sched, store, backend } = open({ storeLatencyMs: 1, storeJitterMs: 20, storeFailBeforeWrite: 0.2 });
    await backend.inner.createGroup({ id: "g:t", title: "", ownerId: "a", createdAtMs: 0 }, ["a"]);
    const settled: number[] = [];
    const outcome = await settle(sched, () =>
      Promise.allSettled(Array.from({ length: 40 }, (_, i) => {
        const p = store.append({ ...newMessage, clientMsgId: `k${i}`, messageId: `m${i}` });
        p.then(() => settled.push(i), () => settled.push(i));
        return p;
      })),
    );
    const results = (outcome as PromiseFulfilledResult<PromiseSettledResult<{ message: StoredMessage }>[]>).value;
    expect(settled).toEqual(Array.from({ length: 40 }, (_, i) => i));
    const seqs = results.flatMap((r) => (r.status === "fulfilled" ? [r.value.message.seq] : []));
    expect(seqs.length).toBeGreaterThan(20);
    expect(results.some((r) => r.status === "rejected")).toBe(true);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(sched.nowMs).toBeGreaterThan(20);
  });

  it("the deliberate lose-acked-write bug acknowledges an append it never wrote", async () => {
    const { sched, store, backend, appended } = open({}, undefined, 1);
    await backend.inner.createGroup({ id: "g:t", title: "", ownerId: "a", createdAtMs: 0 }, ["a"]);
    const outcome = await settle(sched, () => store.append(newMessage));
    expect(outcome).toMatchObject({ status: "fulfilled", value: { duplicate: false, message: { seq: 1 } } });
    expect(appended).toEqual([]);
    expect(await backend.inner.readRange("g:t", 0, undefined, 10)).toEqual([]);
  });
});
