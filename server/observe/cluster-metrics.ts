import { AggregatorRegistry, Counter, Gauge, type MetricObjectWithValues, type MetricValue, type Registry } from "prom-client";
import type { IpcBrokerRelay } from "../route/ipc-broker.js";
import { IpcRequests, type PrimaryService, type WorkerChannel } from "../worker-channel.js";
import { CONNECTIONS_METRIC } from "./gateway-metrics.js";

type MetricJson = MetricObjectWithValues<MetricValue<string>>;

/** The metrics gathering protocol between a worker and its primary. */
type MetricsMessage =
  /** Worker -> primary: a scrape arrived; gather every worker's metrics. */
  | { readonly type: "im.metrics.scrape"; readonly id: number }
  /** Primary -> worker: send your metrics for gathering `id`. */
  | { readonly type: "im.metrics.collect"; readonly id: number }
  /** Worker -> primary: this worker's metrics (getMetricsAsJSON) for gathering `id`. */
  | { readonly type: "im.metrics.report"; readonly id: number; readonly metrics: MetricJson[] }
  /** Primary -> worker: the node's merged metrics in the Prometheus text format. */
  | { readonly type: "im.metrics.result"; readonly id: number; readonly text: string | undefined };

function isMetricsMessage(message: unknown): message is MetricsMessage {
  const type = (message as { type?: unknown } | null)?.type;
  return typeof type === "string" && type.startsWith("im.metrics.");
}

/**
 * One process's metrics, labelled for merging: every gauge gets `worker` (a per-process value,
 * kept apart in the sum), counters and histograms are summed over processes, and the node's
 * connection total (the HPA's metric) is summed without a label.
 */
export function labelWorker(metrics: readonly MetricJson[], worker: string): MetricJson[] {
  return metrics.map((metric) => {
    // prom-client declares `type` an enum but reports "gauge", "counter", ... at run time.
    if ((metric.type as unknown as string) !== "gauge" || metric.name === CONNECTIONS_METRIC) return metric;
    return { ...metric, aggregator: "sum", values: metric.values.map((v) => ({ ...v, labels: { ...v.labels, worker } })) };
  });
}

/** The Prometheus text of processes' metrics, each already labelled by labelWorker. */
export async function mergeMetrics(reports: readonly MetricJson[][]): Promise<string> {
  return AggregatorRegistry.aggregate(reports as MetricJson[][]).metrics();
}

/** Options of the primary's gathering. */
export interface MetricsGathererOptions {
  /** The primary's own metrics (its process, the relay), labelled worker="primary". */
  readonly registry: Registry;
  /** How long a gathering waits for the workers; one that has not answered by then is left out (and counted). Default 2000 ms. */
  readonly waitMs?: number;
  /** Gatherings at once; a scrape beyond it is answered without metrics (503). Default 8. */
  readonly pendingMax?: number;
  readonly relay?: IpcBrokerRelay;
}

interface Gathering {
  readonly requester: number;
  readonly requestId: number;
  readonly waiting: Set<number>;
  readonly reports: MetricJson[][];
  readonly timer: NodeJS.Timeout;
}

/**
 * The primary's side of a node's scrape: a worker that takes GET /metrics asks the primary,
 * which asks every live worker for its getMetricsAsJSON() over their IPC channels, waits at
 * most `waitMs` (a worker that does not answer in time is left out, and counted in
 * microchat_scrape_workers_missing), and merges the reports with AggregatorRegistry.aggregate
 * (counters and histograms summed, gauges labelled by worker). prom-client's own cluster
 * helpers expect node:cluster; these workers are child_process forks.
 */
export class MetricsGatherer implements PrimaryService {
  readonly #registry: Registry;
  readonly #waitMs: number;
  readonly #pendingMax: number;
  readonly #workers = new Map<number, (message: unknown) => void>();
  readonly #gatherings = new Map<number, Gathering>();
  readonly #missing: Gauge;
  readonly #timeouts: Counter;
  #nextId = 0;

  constructor(options: MetricsGathererOptions) {
    this.#registry = options.registry;
    this.#waitMs = options.waitMs ?? 2000;
    this.#pendingMax = options.pendingMax ?? 8;
    const registers = [options.registry];
    const workers = this.#workers;
    new Gauge({ name: "microchat_scrape_workers", help: "Workers the primary asked for their metrics in this scrape", registers, collect() { this.set(workers.size); } });
    this.#missing = new Gauge({ name: "microchat_scrape_workers_missing", help: "Workers left out of this scrape: they did not answer within the wait", registers });
    this.#timeouts = new Counter({ name: "microchat_scrape_worker_timeouts_total", help: "Workers left out of scrapes since the primary started", registers });
    const relay = options.relay;
    if (relay !== undefined) {
      new Counter({ name: "microchat_ipc_relay_forwarded_total", help: "Publications and direct messages the primary relayed between workers", registers, collect() { this.reset(); this.inc(relay.stats().forwarded); } });
      new Counter({ name: "microchat_ipc_relay_dropped_total", help: "Messages the primary dropped because a worker's channel was full", registers, collect() { this.reset(); this.inc(relay.stats().dropped); } });
    }
  }

  handles(message: unknown): boolean {
    return isMetricsMessage(message);
  }

  workerStarted(worker: number, send: (message: unknown) => void): void {
    this.#workers.set(worker, send);
  }

  workerExited(worker: number): void {
    this.#workers.delete(worker);
    for (const [id, gathering] of this.#gatherings) {
      if (gathering.waiting.delete(worker) && gathering.waiting.size === 0) void this.#finish(id);
    }
  }

  receive(worker: number, message: unknown): void {
    const m = message as MetricsMessage;
    if (m.type === "im.metrics.scrape") this.#start(worker, m.id);
    else if (m.type === "im.metrics.report") {
      const gathering = this.#gatherings.get(m.id);
      if (gathering === undefined || !gathering.waiting.delete(worker)) return;
      gathering.reports.push(labelWorker(m.metrics, String(worker)));
      if (gathering.waiting.size === 0) void this.#finish(m.id);
    }
  }

  #start(requester: number, requestId: number): void {
    if (this.#gatherings.size >= this.#pendingMax) {
      this.#workers.get(requester)?.({ type: "im.metrics.result", id: requestId, text: undefined } satisfies MetricsMessage);
      return;
    }
    const id = ++this.#nextId;
    const timer = setTimeout(() => void this.#finish(id), this.#waitMs);
    timer.unref();
    const gathering: Gathering = { requester, requestId, waiting: new Set(this.#workers.keys()), reports: [], timer };
    this.#gatherings.set(id, gathering);
    for (const [, send] of this.#workers) send({ type: "im.metrics.collect", id } satisfies MetricsMessage);
  }

  async #finish(id: number): Promise<void> {
    const gathering = this.#gatherings.get(id);
    if (gathering === undefined) return;
    this.#gatherings.delete(id);
    clearTimeout(gathering.timer);
    this.#missing.set(gathering.waiting.size);
    if (gathering.waiting.size > 0) this.#timeouts.inc(gathering.waiting.size);
    let text: string | undefined;
    try {
      const own = labelWorker(await this.#registry.getMetricsAsJSON(), "primary");
      text = await mergeMetrics([own, ...gathering.reports]);
    } catch {
      text = undefined;
    }
    this.#workers.get(gathering.requester)?.({ type: "im.metrics.result", id: gathering.requestId, text } satisfies MetricsMessage);
  }
}

/**
 * A worker's side: answers the primary's requests for its metrics, and scrapes the node
 * through the primary (resolving undefined when the primary does not answer in time).
 */
export class WorkerMetrics {
  readonly #requests: IpcRequests<string>;

  constructor(registry: Registry, channel: WorkerChannel, options: { readonly waitMs?: number } = {}) {
    // Longer than the primary's own wait for the workers, so its partial answer still arrives.
    this.#requests = new IpcRequests<string>((id) => channel.send({ type: "im.metrics.scrape", id } satisfies MetricsMessage), {
      timeoutMs: (options.waitMs ?? 2000) + 1000,
      pendingMax: 8,
    });
    channel.onMessage((message) => {
      if (!isMetricsMessage(message)) return;
      if (message.type === "im.metrics.collect") {
        void registry.getMetricsAsJSON().then(
          (metrics) => channel.send({ type: "im.metrics.report", id: message.id, metrics } satisfies MetricsMessage),
          () => {},
        );
      } else if (message.type === "im.metrics.result") {
        this.#requests.answered(message.id, message.text);
      }
    });
  }

  /** The node's merged metrics, or undefined when the primary could not gather them. */
  scrape(): Promise<string | undefined> {
    return this.#requests.ask();
  }
}

/** A single process's metrics in the same shape as a node's (its gauges labelled worker="0"). */
export async function scrapeProcess(registry: Registry): Promise<string> {
  return mergeMetrics([labelWorker(await registry.getMetricsAsJSON(), "0")]);
}
