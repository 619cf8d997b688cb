import { describe, expect, it } from "vitest";
import { IpcDeliveryRouter, IpcPushRelay, type IpcPort, type IpcRouteMessage } from "../../../server/route/ipc-delivery-router.js";
import { waitFor } from "../../support/test-server.js";
import { describeDeliveryRouterContract, messagePush, target, type RouterFixture } from "./delivery-router-contract.js";

/**
 * Workers and a relay wired through one in-memory FIFO that structured-clones each message
 * and hands it over on a later macrotask, as process IPC does.
 */
function fakeNode(workers: number, options: { sendsMax?: number; relaySendsMax?: number } = {}) {
  const queue: (() => void)[] = [];
  let scheduled = false;
  const enqueue = (run: () => void) => {
    queue.push(run);
    if (scheduled) return;
    scheduled = true;
    setImmediate(function drain() {
      const batch = queue.splice(0);
      for (const r of batch) r();
      if (queue.length > 0) setImmediate(drain);
      else scheduled = false;
    });
  };
  const relay = new IpcPushRelay({ sendsMax: options.relaySendsMax });
  const routers: IpcDeliveryRouter[] = [];
  for (let i = 0; i < workers; i++) {
    const id = String(i);
    const toPrimary: IpcPort = {
      send(message, done) {
        const copy = structuredClone(message);
        enqueue(() => {
          relay.receive(id, copy);
          done(null);
        });
      },
    };
    const router = new IpcDeliveryRouter(toPrimary, { sendsMax: options.sendsMax });
    const toWorker: IpcPort = {
      send(message: IpcRouteMessage, done) {
        const copy = structuredClone(message);
        enqueue(() => {
          router.receive(copy);
          done(null);
        });
      },
    };
    relay.addWorker(id, toWorker);
    routers.push(router);
  }
  return { relay, routers };
}

describeDeliveryRouterContract(
  "IpcDeliveryRouter",
  async (): Promise<RouterFixture> => ({ routers: fakeNode(2).routers, close: async () => {} }),
  2,
);

describe("IpcPushRelay", () => {
  it("forwards only to workers holding the users, with only their users", async () => {
    const { relay, routers } = fakeNode(3);
    const [w0, w1, w2] = routers as [IpcDeliveryRouter, IpcDeliveryRouter, IpcDeliveryRouter];
    const bob = target("b", "bob");
    const carol = target("c", "carol");
    w1.attach(bob);
    w2.attach(carol);
    await waitFor(() => relay.workersOf("bob").length === 1 && relay.workersOf("carol").length === 1, "presence");
    w0.deliver(["bob", "dave"], messagePush(1));
    await waitFor(() => bob.got.length === 1, "bob's push");
    w0.deliver(["carol"], messagePush(2));
    await waitFor(() => carol.got.length === 1, "carol's push");
    expect(carol.seqs()).toEqual([2]);
    expect(relay.stats().forwarded).toBe(2);
    expect(w2.stats().received).toBe(1);
  });

  it("forgets every user of a worker that exits", async () => {
    const { relay, routers } = fakeNode(2);
    const bob = target("b", "bob");
    routers[1]!.attach(bob);
    await waitFor(() => relay.workersOf("bob").length === 1, "presence");
    relay.removeWorker("1");
    expect(relay.workersOf("bob")).toEqual([]);
    expect(relay.stats().users).toBe(0);
  });

  it("drops deliveries beyond the bound of unwritten messages, never presence changes", async () => {
    const { relay, routers } = fakeNode(2, { sendsMax: 3 });
    const bob = target("b", "bob");
    routers[1]!.attach(bob);
    for (let seq = 1; seq <= 10; seq++) routers[0]!.deliver(["bob"], messagePush(seq));
    await waitFor(() => relay.workersOf("bob").length === 1 && bob.got.length === 3, "bounded pushes");
    expect(routers[0]!.stats()).toMatchObject({ relayed: 3, dropped: 7 });
    expect(bob.seqs()).toEqual([1, 2, 3]);
  });
});
