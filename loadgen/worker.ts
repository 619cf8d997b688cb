/**
 * Entry point of a load generator client process (forked by the coordinator): runs one Fleet
 * and carries out the coordinator's commands over the IPC channel. Exits when told to, or when
 * the coordinator goes away (no orphaned load).
 */
import { Fleet } from "./fleet.js";
import type { FromFleet, ToFleet } from "./protocol.js";

function send(message: FromFleet): void {
  // The coordinator may be gone (killed): then the channel is closed, and 'disconnect' stops us.
  if (process.connected) process.send?.(message, undefined, undefined, () => {});
}

if (process.send === undefined) {
  process.stderr.write("loadgen worker: must be started by the coordinator (child_process.fork)\n");
  process.exit(2);
}

let fleet: Fleet | undefined;
let queue = Promise.resolve();

async function stop(code: number): Promise<never> {
  await fleet?.shutdown();
  if (process.connected) process.disconnect();
  process.exit(code);
}

process.on("message", (raw) => {
  const message = raw as ToFleet;
  switch (message.type) {
    case "init":
      fleet = new Fleet(message.config, (sample) => send({ type: "progress", sample }));
      send({ type: "ready", pid: process.pid });
      break;
    case "command": {
      const { id, command } = message;
      // One command at a time, in order.
      queue = queue.then(async () => {
        try {
          if (fleet === undefined) throw new Error("not initialised");
          send({ type: "result", id, ok: true, value: await fleet.run(command) });
        } catch (error) {
          send({ type: "result", id, ok: false, error: (error as Error).stack ?? String(error) });
        }
      });
      break;
    }
    case "shutdown":
      void queue.then(() => stop(0));
      break;
  }
});

process.on("disconnect", () => void stop(1));
