import { DEV_JWT_SECRET, mintToken } from "../../server/gateway/auth.js";
import { spawnServer, type ServerProcess } from "../support/server-process.js";
import { INTEROP_SERVER_FLAGS, planFile, type PlanFile, type User } from "./plan.js";

/** A real server process for one interop test file, fresh state, with the plan's limits. */
export interface InteropServer {
  readonly process: ServerProcess;
  readonly port: number;
  /** host:port. */
  readonly target: string;
  token(user: User | string): Promise<string>;
  /** The plan with this server's address and fresh tokens. */
  plan(): Promise<PlanFile>;
  stop(): Promise<void>;
}

/** Starts `node server/main.ts` on a free loopback port with INTEROP_SERVER_FLAGS. */
export async function startInteropServer(): Promise<InteropServer> {
  const process = await spawnServer(INTEROP_SERVER_FLAGS);
  const target = `127.0.0.1:${process.port}`;
  const token = (user: string) => mintToken(DEV_JWT_SECRET, user);
  return {
    process,
    port: process.port,
    target,
    token,
    plan: () => planFile(target, token),
    async stop() {
      if (process.child.exitCode === null && process.child.signalCode === null) process.child.kill("SIGTERM");
      await process.exited;
    },
  };
}
