import type { WorkerContext } from "../cluster.js";
import type { ServerConfig } from "../config.js";
import type { EventSink } from "../core/events.js";
import { Messaging, type MessagingDeps } from "../core/messaging.js";
import { ConnectionRegistry } from "../gateway/connection-registry.js";
import type { RequestObserver } from "../gateway/request-context.js";
import type { HttpRoute } from "../media/livekit-webhook.js";
import type { MessageStore } from "../store/message-store.js";
import { scrapeProcess, WorkerMetrics } from "./cluster-metrics.js";
import { GatewayMetrics, type MetricSources } from "./gateway-metrics.js";
import { createMetricsRoute } from "./metrics-route.js";

/** Metrics as configured, and where the server plugs them in. */
export interface Observability {
  /** Live connections, counted for the metrics. */
  readonly connections: ConnectionRegistry;
  /** The gateway's request observer; undefined with metrics off. */
  readonly requestObserver: RequestObserver | undefined;
  /** GET /metrics; undefined with metrics off. */
  readonly route: HttpRoute | undefined;
  /** The store, measured as configured. */
  store(store: MessageStore): MessageStore;
  /** The core's event sink. */
  events(sink: EventSink): EventSink;
  /** The messaging core. */
  messaging(deps: MessagingDeps): Messaging;
  /** What the scrape-time metrics read, once routing runs. */
  watch(sources: Omit<MetricSources, "connections">): void;
  close(): Promise<void>;
}

/**
 * Starts what `--metrics` asks for. Off, nothing is wrapped: the store, the core, the event
 * sink and the gateway run exactly as without this module.
 */
export async function startObservability(config: Pick<ServerConfig, "metrics" | "nodeId">, worker: WorkerContext | undefined): Promise<Observability> {
  const metrics = config.metrics === "on" ? new GatewayMetrics() : undefined;
  const connections = new ConnectionRegistry(metrics?.connectionObserver);
  let route: HttpRoute | undefined;
  if (metrics !== undefined) {
    const gathered = worker === undefined ? undefined : new WorkerMetrics(metrics.registry, worker.channel);
    route = createMetricsRoute(() => (gathered === undefined ? scrapeProcess(metrics.registry) : gathered.scrape()));
  }
  return {
    connections,
    requestObserver: metrics?.requestObserver,
    route,
    store: (store) => metrics?.measureStore(store) ?? store,
    events: (sink) => sink,
    messaging: (deps) => new Messaging(deps),
    watch(sources) {
      metrics?.watch({ ...sources, connections });
    },
    async close() {},
  };
}
