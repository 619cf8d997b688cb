import type { Client } from "@connectrpc/connect";
import type { ConversationService } from "../gen/im/v1/conversation_pb.js";
import type { LoadgenOptions } from "./options.js";
import type { DeviceKind, DeviceSpec, ExpectationList } from "./protocol.js";
import type { ServerSnapshot } from "./server-stats.js";
import type { WorkerPool } from "./worker-pool.js";

/** A scenario's own integer parameter (flag `--<name>`). */
export interface ScenarioParam {
  readonly name: string;
  readonly fallback: number;
  readonly doc: string;
  /** Smallest accepted value (default 0). */
  readonly min?: number;
}

/** A headline number of a run. */
export interface Figure {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
}

/** CPU and memory of every local server process, summed, at one moment (from /proc). */
export interface ServerUsage {
  readonly pids: readonly number[];
  readonly cpuMs: number;
  readonly rssBytes: number;
}

/** A table of figures (e.g. one row per rate step), rendered in the summary. */
export interface ReportTable {
  readonly title: string;
  readonly columns: readonly string[];
  readonly rows: readonly (readonly (string | number)[])[];
}

/** What the coordinator gives a scenario. */
export interface ScenarioContext {
  readonly options: LoadgenOptions;
  /** The scenario's parameters, by name. */
  readonly params: Readonly<Record<string, number>>;
  readonly pool: WorkerPool;
  /** Short random tag for this run's user ids, so runs against one server never share conversations. */
  readonly runId: string;
  log(line: string): void;
  /** Marks the start of a phase on the timeline. */
  phase(name: string): void;
  /** Reads the server's /stats (every process behind every target). */
  probe(): Promise<ServerSnapshot>;
  /** CPU and RSS of every server process now, when they run on this machine; else undefined. */
  serverUsage(): ServerUsage | undefined;
  /** The Redis command counts now (with --redis-url); else undefined. */
  redisCommands(): Promise<ReadonlyMap<string, number> | undefined>;
  /** The conversation service as `userId` (setup calls such as creating groups). */
  conversations(userId: string): Client<typeof ConversationService>;
  /** Sleeps, bounded by the run's deadline. */
  sleep(ms: number): Promise<void>;
}

/** What a scenario hands back to the coordinator. */
export interface ScenarioResult {
  readonly figures: readonly Figure[];
  readonly tables?: readonly ReportTable[];
  /**
   * Histograms to report, with their labels, in order: one the client processes collect
   * (HistogramName), or one of `histograms` under a name of the scenario's own.
   */
  readonly latencies: readonly { readonly name: string; readonly label: string }[];
  /**
   * Histograms the scenario collected itself (encoded, one per process), reported instead of the
   * end-of-run ones: e.g. a measure limited to one phase.
   */
  readonly histograms?: Readonly<Record<string, readonly string[]>>;
  /** What every device must hold at the end (checked by every process's DeliveryChecker). */
  readonly expect: ExpectationList;
  /** Failed acceptance conditions of the scenario (besides the delivery check). */
  readonly failures: readonly string[];
  readonly notes: readonly string[];
  readonly server?: { readonly before: ServerSnapshot; readonly after: ServerSnapshot };
}

/** A load scenario. */
export interface Scenario {
  readonly name: string;
  readonly summary: string;
  readonly params: readonly ScenarioParam[];
  /** The device kinds the scenario can run with; the first is its default (`--device`). */
  readonly deviceKinds: readonly DeviceKind[];
  /** Devices (long connections) the scenario opens with these parameters. */
  devices(params: Readonly<Record<string, number>>): number;
  /** Throws an Error naming the problem when the parameters do not fit together. */
  validate?(params: Readonly<Record<string, number>>): void;
  run(ctx: ScenarioContext): Promise<ScenarioResult>;
}

/** Splits items round-robin into `n` shards (one per client process). */
export function shard<T>(items: readonly T[], n: number): T[][] {
  const shards = Array.from({ length: n }, () => [] as T[]);
  items.forEach((item, i) => shards[i % n]!.push(item));
  return shards;
}

/** Sum of a numeric field over results. */
export function sum<T>(items: readonly T[], field: (item: T) => number): number {
  return items.reduce((n, item) => n + field(item), 0);
}

/**
 * The ramp every scenario starts with: each client process opens its shard of devices at its
 * share of the connect rate, recording connect latency.
 */
export function openRamp(ctx: ScenarioContext, shards: readonly (readonly DeviceSpec[])[]) {
  const { options, pool } = ctx;
  return pool.each((w) => ({
    op: "open" as const,
    devices: [...shards[w]!],
    ratePerS: options.connectRate / pool.size,
    parallel: options.connectParallel,
    timeoutMs: options.connectTimeoutS * 1000,
    recordLatency: true,
  }));
}
