import { collectDefaultMetrics, Registry } from "prom-client";
import type { ServerConfig } from "./config.js";
import type { IpcBrokerRelay } from "./route/ipc-broker.js";
import { MetricsGatherer } from "./observe/cluster-metrics.js";
import type { PrimaryService } from "./worker-channel.js";

/**
 * What a node's primary serves its workers beside the broker relay: gathering every worker's
 * metrics for a scrape (with --metrics on, the primary's own process metrics included).
 */
export function createPrimaryServices(config: Pick<ServerConfig, "metrics">): (relay: IpcBrokerRelay | undefined) => PrimaryService[] {
  return (relay) => {
    const services: PrimaryService[] = [];
    if (config.metrics === "on") {
      const registry = new Registry();
      collectDefaultMetrics({ register: registry });
      services.push(new MetricsGatherer({ registry, relay }));
    }
    return services;
  };
}
