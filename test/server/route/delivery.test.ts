import { randomBytes } from "node:crypto";
import { pino } from "pino";
import { afterAll, beforeAll, inject } from "vitest";
import { NoBroker } from "../../../server/route/broker.js";
import { IpcBroker, IpcBrokerRelay, type IpcBrokerMessage, type IpcPort } from "../../../server/route/ipc-broker.js";
import { openRedisBroker } from "../../../server/route/redis-broker.js";
import { startRedisCluster, type RedisCluster } from "../../support/redis.js";
import { deliveryProcess, describeDeliveryContract } from "./delivery-contract.js";

describeDeliveryContract("one process (no broker)", async (memberships) => ({
  processes: [deliveryProcess("solo", new NoBroker(), memberships)],
  close: async () => {},
}), 1);

/** Like a child_process channel: structured clones, delivered in order on a later turn. */
function channel(deliver: (message: IpcBrokerMessage) => void): IpcPort {
  return {
    send(message, done) {
      const copy = structuredClone(message);
      setImmediate(() => {
        deliver(copy);
        done(null);
      });
    },
  };
}

describeDeliveryContract("IPC relay through the primary", async (memberships) => {
  const relay = new IpcBrokerRelay();
  const processes = ["node.w0", "node.w1", "node.w2"].map((id) => {
    let broker!: IpcBroker;
    relay.addWorker(id, channel((m) => broker.receive(m)));
    broker = new IpcBroker(channel((m) => relay.receive(id, m)));
    return deliveryProcess(id, broker, memberships);
  });
  return { processes, close: async () => void (await Promise.all(processes.map((p) => p.broker.close()))) };
}, 3);

const redisUrl = inject("redisUrl");
if (redisUrl !== "") {
  describeDeliveryContract("Redis sharded pub/sub", async (memberships) => {
    const keyPrefix = `t${randomBytes(4).toString("hex")}:`;
    const logger = pino({ level: "silent" });
    const processes = await Promise.all(
      ["a.w0", "b.w0", "c.w0"].map(async (id) => deliveryProcess(id, await openRedisBroker({ url: redisUrl, workerId: id, logger, keyPrefix }), memberships)),
    );
    return { processes, close: async () => void (await Promise.all(processes.map((p) => p.broker.close()))) };
  }, 3);
}

// A real Redis Cluster on loopback: sharded channels land on different shards, and a
// subscription batch spans slots. The test run installs redis-server when missing, as for Redis.
let cluster: RedisCluster | undefined;
beforeAll(async () => {
  if (redisUrl !== "" || process.env.CI === "true") cluster = await startRedisCluster();
}, 120_000);
afterAll(async () => {
  await cluster?.destroy();
});
describeDeliveryContract("Redis Cluster sharded pub/sub", async (memberships) => {
  if (cluster === undefined) throw new Error("no Redis Cluster could be started");
  const keyPrefix = `t${randomBytes(4).toString("hex")}:`;
  const logger = pino({ level: "silent" });
  const processes = await Promise.all(
    ["a.w0", "b.w0", "c.w0"].map(async (id) => deliveryProcess(id, await openRedisBroker({ url: cluster!.url, workerId: id, logger, keyPrefix, connectWaitMs: 10_000 }), memberships)),
  );
  return { processes, close: async () => void (await Promise.all(processes.map((p) => p.broker.close()))) };
}, 3);
