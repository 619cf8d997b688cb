import { randomBytes } from "node:crypto";
import { pino } from "pino";
import { inject } from "vitest";
import { NoBroker } from "../../../server/route/broker.js";
import { IpcBroker, IpcBrokerRelay, type IpcBrokerMessage, type IpcPort } from "../../../server/route/ipc-broker.js";
import { openRedisBroker } from "../../../server/route/redis-broker.js";
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
