import { fork, type ChildProcess } from "node:child_process";
import net from "node:net";
import { availableParallelism, hostname } from "node:os";
import type { Logger } from "pino";
import type { ServerConfig } from "./config.js";
import { IpcBrokerRelay, isIpcBrokerMessage, type IpcBrokerMessage, type IpcPort } from "./route/ipc-broker.js";
import { workerIdOf, type IpcEndpoint } from "./route/routing.js";
import type { PrimaryService, WorkerChannel } from "./worker-channel.js";

/** On SIGTERM the primary SIGKILLs a worker still draining this long after the drain timeout. */
export const WORKER_STOP_MARGIN_MS = 5000;

/** Set by the primary in each worker's environment: the worker's index (0-based). */
export const WORKER_INDEX_ENV = "IM_WORKER_INDEX";

/** How the primary supervises its workers. */
export interface ClusterOptions {
  readonly workers: number;
  readonly host: string;
  /** 0: the primary picks a free port once and gives it to every worker. */
  readonly port: number;
  /** The module each worker runs (server/main.ts) and its arguments. */
  readonly modulePath: string;
  readonly args: readonly string[];
  readonly execArgv?: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  /** Relay publications and owner calls between workers through the primary (no Redis). */
  readonly relay: boolean;
  /** The node's id, which names its workers (`<node>.w<index>`). */
  readonly nodeId: string;
  readonly logger: Logger;
  /** On stop, how long workers may drain before SIGKILL. */
  readonly stopTimeoutMs: number;
  /** Restarts allowed within `restartWindowMs`; one more and the cluster gives up. Default 5. */
  readonly restartsMax?: number;
  /** Default 60 s. */
  readonly restartWindowMs?: number;
  /** How long a starting worker may take to listen. Default 60 s. */
  readonly readyTimeoutMs?: number;
  /** What the primary serves its workers beside the relay (metrics, presence), given the relay if any. */
  readonly services?: (relay: IpcBrokerRelay | undefined) => readonly PrimaryService[];
}

/** A running set of workers sharing one port. */
export interface Cluster {
  readonly port: number;
  /** Pids of the live workers, by index. */
  workerPids(): number[];
  /** Resolves (never rejects) when the supervisor gives up on a crash-looping worker. */
  readonly failed: Promise<Error>;
  /** SIGTERM to every worker (each drains: SERVER_SHUTDOWN, in-flight sends finish), SIGKILL after stopTimeoutMs. */
  stop(): Promise<void>;
}

interface Slot {
  readonly index: number;
  child: ChildProcess | undefined;
  /** Restart times within the window. */
  restarts: number[];
  timer: NodeJS.Timeout | undefined;
}

type WorkerMessage = IpcBrokerMessage | { readonly type: "im.ready"; readonly port: number };

/**
 * The number of workers to run: `requested`, or one per core when 0. The memory store lives
 * in one process, so it runs one worker (and refuses an explicit count above one).
 */
export function resolveWorkerCount(requested: number, store: string): number {
  if (store === "memory") {
    if (requested > 1) throw new Error(`--workers ${requested} needs a store shared by processes; the memory store is per process (use --workers 1)`);
    return 1;
  }
  return requested === 0 ? availableParallelism() : requested;
}

/**
 * Starts `workers` processes (child_process.fork, not node:cluster: no handle passing) that
 * each listen on the same port with SO_REUSEPORT, so the kernel spreads connections over
 * their accept queues; the primary accepts nothing. It restarts a worker that exits
 * unexpectedly, with exponential delay, and gives up (`failed`) after `restartsMax` restarts
 * within `restartWindowMs`. Resolves once every worker listens; rejects, stopping the others,
 * when one fails to start.
 */
export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const { logger } = options;
  const restartsMax = options.restartsMax ?? 5;
  const restartWindowMs = options.restartWindowMs ?? 60_000;
  const readyTimeoutMs = options.readyTimeoutMs ?? 60_000;
  const port = options.port !== 0 ? options.port : await freePort(options.host);
  const relay = options.relay ? new IpcBrokerRelay() : undefined;
  const services = options.services?.(relay) ?? [];
  const slots: Slot[] = Array.from({ length: options.workers }, (_, index) => ({ index, child: undefined, restarts: [], timer: undefined }));
  let stopping = false;
  let giveUp!: (error: Error) => void;
  const failed = new Promise<Error>((resolve) => (giveUp = resolve));

  /** Forks the worker of `slot`; resolves when it listens, rejects when it exits first. */
  function spawn(slot: Slot): Promise<void> {
    const child = fork(options.modulePath, [...options.args, "--port", String(port)], {
      env: { ...options.env, [WORKER_INDEX_ENV]: String(slot.index) },
      execArgv: [...(options.execArgv ?? process.execArgv)],
      serialization: "advanced",
      stdio: "inherit",
    });
    slot.child = child;
    const id = workerIdOf(options.nodeId, slot.index);
    relay?.addWorker(id, childPort(child));
    for (const service of services) service.workerStarted(slot.index, (message) => childPort(child).send(message as IpcBrokerMessage, () => {}));
    return new Promise<void>((resolve, reject) => {
      let ready = false;
      const readyTimer = setTimeout(() => {
        if (!ready) child.kill("SIGKILL");
      }, readyTimeoutMs);
      child.on("message", (message: WorkerMessage | null) => {
        if (message?.type === "im.ready") {
          ready = true;
          clearTimeout(readyTimer);
          logger.info({ worker: slot.index, workerPid: child.pid, port }, "worker listening");
          relay?.workerReady(id);
          resolve();
        } else if (isIpcBrokerMessage(message)) {
          relay?.receive(id, message);
        } else {
          for (const service of services) if (service.handles(message)) service.receive(slot.index, message);
        }
      });
      child.on("error", (err) => logger.warn({ err, worker: slot.index }, "worker channel error"));
      child.once("exit", (code, signal) => {
        clearTimeout(readyTimer);
        if (slot.child === child) slot.child = undefined;
        relay?.removeWorker(id);
        for (const service of services) service.workerExited(slot.index);
        if (!ready) reject(new Error(`worker ${slot.index} exited before listening (code ${code}, signal ${signal})`));
        if (stopping || !ready) return;
        logger.error({ worker: slot.index, workerPid: child.pid, code, signal }, "worker exited unexpectedly");
        scheduleRestart(slot);
      });
    });
  }

  function scheduleRestart(slot: Slot): void {
    const now = Date.now();
    slot.restarts = slot.restarts.filter((t) => now - t < restartWindowMs);
    if (slot.restarts.length >= restartsMax) {
      giveUp(new Error(`worker ${slot.index} exited ${restartsMax + 1} times within ${restartWindowMs} ms: giving up`));
      return;
    }
    const delayMs = Math.min(100 * 2 ** slot.restarts.length, 5000);
    slot.restarts.push(now);
    slot.timer = setTimeout(() => {
      slot.timer = undefined;
      if (stopping) return;
      spawn(slot).catch((err: unknown) => {
        logger.error({ err, worker: slot.index }, "worker restart failed");
        if (!stopping) scheduleRestart(slot);
      });
    }, delayMs);
  }

  async function stop(): Promise<void> {
    stopping = true;
    const exits: Promise<void>[] = [];
    for (const slot of slots) {
      clearTimeout(slot.timer);
      const child = slot.child;
      if (child === undefined || child.exitCode !== null || child.signalCode !== null) continue;
      exits.push(
        new Promise<void>((resolve) => {
          child.once("exit", () => resolve());
          const kill = setTimeout(() => {
            logger.warn({ worker: slot.index, workerPid: child.pid }, "worker did not drain in time: SIGKILL");
            child.kill("SIGKILL");
          }, options.stopTimeoutMs);
          child.once("exit", () => clearTimeout(kill));
          child.kill("SIGTERM");
        }),
      );
    }
    await Promise.all(exits);
  }

  try {
    await Promise.all(slots.map((slot) => spawn(slot)));
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    port,
    workerPids: () => slots.map((s) => s.child?.pid).filter((pid): pid is number => pid !== undefined),
    failed,
    stop: (() => {
      let stopped: Promise<void> | undefined;
      return () => (stopped ??= stop());
    })(),
  };
}

/** This process's role when the primary forked it. */
export interface WorkerContext {
  readonly index: number;
  /** The relay through the primary; undefined when Redis routes (the primary relays nothing then). */
  readonly relay: IpcEndpoint | undefined;
  /** The IPC channel to the primary, for the primary's services (metrics, presence). */
  readonly channel: WorkerChannel;
  /** Tells the primary this worker listens. */
  ready(port: number): void;
  /** Runs `listener` when the primary goes away (the IPC channel closes). */
  onPrimaryGone(listener: () => void): void;
}

/** The worker context when this process was forked by `startCluster`, else undefined. */
export function workerContext(relay: boolean): WorkerContext | undefined {
  const raw = process.env[WORKER_INDEX_ENV];
  if (raw === undefined || process.send === undefined) return undefined;
  const index = Number(raw);
  const send = process.send.bind(process);
  const port: IpcPort = {
    send(message, done) {
      try {
        send(message, undefined, {}, (error: Error | null) => done(error));
      } catch (error) {
        done(error as Error);
      }
    },
  };
  return {
    index,
    relay: relay
      ? {
          port,
          onMessage(listener) {
            process.on("message", (message: unknown) => {
              if (isIpcBrokerMessage(message)) listener(message);
            });
          },
        }
      : undefined,
    channel: {
      send(message) {
        port.send(message as IpcBrokerMessage, () => {});
      },
      onMessage(listener) {
        process.on("message", listener);
      },
    },
    ready(listeningPort) {
      send({ type: "im.ready", port: listeningPort });
    },
    onPrimaryGone(listener) {
      process.once("disconnect", listener);
    },
  };
}

function childPort(child: ChildProcess): IpcPort {
  return {
    send(message, done) {
      try {
        if (!child.connected) {
          done(new Error("worker channel closed"));
          return;
        }
        child.send(message, undefined, {}, (error: Error | null) => done(error));
      } catch (error) {
        done(error as Error);
      }
    },
  };
}

/** A free TCP port on `host`, found by binding port 0 once. */
async function freePort(host: string): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once("error", reject);
    probe.listen({ host, port: 0 }, () => resolve());
  });
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/**
 * Runs this process as the primary of `workers` workers, each running server/main.ts with the
 * same arguments, until SIGTERM or SIGINT (drain all, exit 0) or a crash loop (exit 1).
 */
export async function runPrimary(config: ServerConfig, logger: Logger, workers: number, services?: ClusterOptions["services"]): Promise<void> {
  const nodeId = config.nodeId !== "" ? config.nodeId : `${hostname()}-${process.pid}`;
  const routing = config.redisUrl === "" ? "ipc relay through the primary" : "redis";
  let cluster: Cluster;
  try {
    cluster = await startCluster({
      workers,
      host: config.host,
      port: config.port,
      modulePath: process.argv[1]!,
      args: process.argv.slice(2),
      // Every worker of the node shares the node id; presence tells them apart by worker index.
      env: { ...process.env, IM_NODE_ID: nodeId },
      relay: config.redisUrl === "",
      nodeId,
      logger,
      stopTimeoutMs: config.drainTimeoutMs + WORKER_STOP_MARGIN_MS,
      services,
    });
  } catch (err) {
    logger.error({ err }, "cluster did not start");
    process.exit(1);
  }
  logger.info(
    { port: cluster.port, workers: cluster.workerPids(), nodeId, routing },
    `cluster of ${workers} workers listening on ${config.host}:${cluster.port} (SO_REUSEPORT)`,
  );
  let stopping = false;
  const stop = (reason: string, exitCode: number) => {
    if (stopping) return;
    stopping = true;
    logger.info({ reason }, "draining workers");
    cluster.stop().then(
      () => {
        logger.info("stopped");
        process.exit(exitCode);
      },
      (err: unknown) => {
        logger.error({ err }, "stop failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM", 0));
  process.on("SIGINT", () => stop("SIGINT", 0));
  void cluster.failed.then((err) => {
    logger.error({ err }, "a worker keeps crashing: stopping the node");
    stop("crash loop", 1);
  });
}
