import { DisconnectReason } from "../../gen/im/v1/gateway_pb.js";
import type { Clock } from "../core/clock.js";
import type { Connection } from "./connection.js";

/** What a drain needs from its surroundings: time, randomness, and a way to wait. */
export interface DrainDeps {
  readonly clock: Clock;
  /** A uniform integer in [0, maxExclusive). */
  readonly randomInt: (maxExclusive: number) => number;
  /** Resolves after `ms`: real time in the server, virtual time in the simulator. */
  readonly wait: (ms: number) => Promise<void>;
}

/** The live connections as a drain sees them: the gateway's ConnectionRegistry, or a simulated node's set. */
export interface DrainRegistry extends Iterable<Pick<Connection, "disconnect">> {
  readonly size: number;
}

/** How a drain goes. */
export interface DrainOptions {
  /** How long in-flight requests may take to finish. */
  readonly drainTimeoutMs: number;
  /** Each client is told to reconnect after a uniform delay in [0, reconnectSpreadMs]. */
  readonly reconnectSpreadMs: number;
  /** How often the drain looks whether it is done. Default 20. */
  readonly pollMs?: number;
}

/**
 * The gateway's graceful drain: tells every live connection SERVER_SHUTDOWN with a jittered
 * reconnect delay (so a restarting server is not hit by every client at once), then waits
 * until every connection has closed (a connection leaves the registry when its stream closes,
 * after its requests in flight), for at most drainTimeoutMs.
 * Resolves true when it drained in time, false when the deadline passed first.
 */
export async function drainConnections(registry: DrainRegistry, options: DrainOptions, deps: DrainDeps): Promise<boolean> {
  const pollMs = options.pollMs ?? 20;
  for (const conn of registry) {
    conn.disconnect(DisconnectReason.SERVER_SHUTDOWN, "server shutting down: reconnect after reconnect_after_ms", deps.randomInt(options.reconnectSpreadMs + 1));
  }
  const deadline = deps.clock.nowMs() + options.drainTimeoutMs;
  for (;;) {
    if (registry.size === 0) return true;
    if (deps.clock.nowMs() >= deadline) return false;
    await deps.wait(pollMs);
  }
}
