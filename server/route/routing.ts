import { hostname } from "node:os";
import type { Logger } from "pino";
import type { Clock } from "../core/clock.js";
import type { DeliveryRouter } from "./delivery-router.js";
import { IpcDeliveryRouter, type IpcPort, type IpcRouteMessage } from "./ipc-delivery-router.js";
import { LocalDeliveryRouter } from "./local-delivery-router.js";
import { openRedisDeliveryRouter } from "./redis-delivery-router.js";

/** A worker's channel to its primary, for relaying pushes when there is no Redis. */
export interface IpcEndpoint {
  readonly port: IpcPort;
  onMessage(listener: (message: IpcRouteMessage) => void): void;
}

/** What routing is chosen from. */
export interface RoutingOptions {
  /** "" for no Redis. */
  readonly redisUrl: string;
  /** The node's id ("" for `<hostname>-<pid>`). */
  readonly nodeId: string;
  /** Set when this process is worker `index` of a local cluster. */
  readonly worker?: { readonly index: number; readonly relay: IpcEndpoint | undefined };
  readonly presenceTtlMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
}

/** The chosen DeliveryRouter with its lifecycle. */
export interface Routing {
  readonly router: DeliveryRouter;
  /** "local", "ipc" or "redis". */
  readonly kind: string;
  /** Unique among every process sharing the routing; also the prefix of connection ids. */
  readonly workerId: string;
  stats(): Record<string, unknown>;
  /** Call after the gateway has drained. */
  close(): Promise<void>;
}

/**
 * Picks the DeliveryRouter: Redis when a URL is configured (any number of processes and
 * nodes); else, in a worker of a local cluster, the primary's IPC relay; else in-process.
 * Runs the presence heartbeat (the only timer of routing; the router itself is advanced by
 * `tick(now)`).
 */
export async function startRouting(options: RoutingOptions): Promise<Routing> {
  const nodeId = options.nodeId !== "" ? options.nodeId : `${hostname()}-${process.pid}`;
  const workerId = options.worker === undefined ? nodeId : `${nodeId}.w${options.worker.index}`;
  if (options.redisUrl !== "") {
    if (options.presenceTtlMs < 100) throw new Error(`--presence-ttl-ms must be at least 100, got ${options.presenceTtlMs}`);
    const router = await openRedisDeliveryRouter({ url: options.redisUrl, workerId, presenceTtlMs: options.presenceTtlMs, logger: options.logger });
    const heartbeatMs = Math.max(10, Math.min(1000, Math.floor(options.presenceTtlMs / 6)));
    const timer = setInterval(() => router.tick(options.clock.nowMs()), heartbeatMs);
    timer.unref();
    router.tick(options.clock.nowMs());
    return {
      router,
      kind: "redis",
      workerId,
      stats: () => ({ kind: "redis", ...router.stats() }),
      async close() {
        clearInterval(timer);
        await router.close();
      },
    };
  }
  const relay = options.worker?.relay;
  if (relay !== undefined) {
    const router = new IpcDeliveryRouter(relay.port);
    relay.onMessage((message) => router.receive(message));
    return { router, kind: "ipc", workerId, stats: () => ({ kind: "ipc", workerId, ...router.stats() }), close: async () => {} };
  }
  const router = new LocalDeliveryRouter();
  return { router, kind: "local", workerId, stats: () => ({ kind: "local", workerId, connections: router.connectionCount() }), close: async () => {} };
}
