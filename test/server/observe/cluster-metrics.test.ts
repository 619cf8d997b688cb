import { Counter, Gauge, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { MetricsGatherer, WorkerMetrics } from "../../../server/observe/cluster-metrics.js";
import type { WorkerChannel } from "../../../server/worker-channel.js";
import { parseMetrics, sample } from "./prometheus-text.js";

/** A worker process's registry and its IPC channel to `gatherer`, both in this process. */
function worker(gatherer: MetricsGatherer, index: number, connections: number, answers = true): WorkerMetrics {
  const registry = new Registry();
  new Gauge({ name: "microchat_connections", help: "live", registers: [registry], aggregator: "sum" }).set(connections);
  new Gauge({ name: "microchat_hub_users", help: "users", registers: [registry] }).set(index + 10);
  new Counter({ name: "microchat_deliveries_total", help: "deliveries", registers: [registry] }).inc(5);
  const listeners: ((message: unknown) => void)[] = [];
  const channel: WorkerChannel = {
    send: (message) => queueMicrotask(() => gatherer.receive(index, structuredClone(message))),
    onMessage: (listener) => listeners.push(listener),
  };
  gatherer.workerStarted(index, (message) => {
    if (answers) queueMicrotask(() => listeners.forEach((l) => l(structuredClone(message))));
    else if ((message as { type: string }).type !== "im.metrics.collect") queueMicrotask(() => listeners.forEach((l) => l(structuredClone(message))));
  });
  return new WorkerMetrics(registry, channel, { waitMs: 200 });
}

describe("MetricsGatherer", () => {
  it("sums counters and the connection total over workers and keeps gauges apart by worker", async () => {
    const gatherer = new MetricsGatherer({ registry: new Registry(), waitMs: 200 });
    const w0 = worker(gatherer, 0, 3);
    worker(gatherer, 1, 4);
    const text = await w0.scrape();
    const samples = parseMetrics(text!);
    expect(sample(samples, "microchat_connections")).toBe(7);
    expect(sample(samples, "microchat_deliveries_total")).toBe(10);
    expect(sample(samples, "microchat_hub_users", { worker: "0" })).toBe(10);
    expect(sample(samples, "microchat_hub_users", { worker: "1" })).toBe(11);
    expect(sample(samples, "microchat_scrape_workers_missing", { worker: "primary" })).toBe(0);
  });

  it("leaves out a worker that does not answer within the wait, and says so", async () => {
    const gatherer = new MetricsGatherer({ registry: new Registry(), waitMs: 100 });
    const w0 = worker(gatherer, 0, 3);
    worker(gatherer, 1, 4, false);
    const samples = parseMetrics((await w0.scrape())!);
    expect(sample(samples, "microchat_connections")).toBe(3);
    expect(sample(samples, "microchat_scrape_workers_missing", { worker: "primary" })).toBe(1);
    expect(sample(samples, "microchat_scrape_worker_timeouts_total")).toBe(1);
  });

  it("stops waiting for a worker that exits", async () => {
    const gatherer = new MetricsGatherer({ registry: new Registry(), waitMs: 60_000 });
    const w0 = worker(gatherer, 0, 3);
    worker(gatherer, 1, 4, false);
    const scraping = w0.scrape();
    await new Promise((r) => setTimeout(r, 20));
    gatherer.workerExited(1);
    expect(sample(parseMetrics((await scraping)!), "microchat_connections")).toBe(3);
  });
});
