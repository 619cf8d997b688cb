import { Code } from "@connectrpc/connect";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { DisconnectReason } from "../../gen/im/v1/gateway_pb.js";
import { CONNECTION_PROTOCOLS, type ConnectionObserver, type ConnectionProtocol, type ConnectionRegistry } from "../gateway/connection-registry.js";
import type { RequestObserver } from "../gateway/request-context.js";
import type { BrokerStats } from "../route/broker.js";
import type { Hub } from "../route/hub.js";
import type { OwnerCalls } from "../route/owners.js";
import type { MessageStore } from "../store/message-store.js";
import { ObservedMessageStore } from "./observed-message-store.js";

/** The metric HPA and dashboards read for a pod's live connections (a node total, summed over its workers). */
export const CONNECTIONS_METRIC = "microchat_connections";

/** What the metrics read at scrape time (plain counters the hot path already keeps). */
export interface MetricSources {
  readonly connections: ConnectionRegistry;
  readonly hub: Pick<Hub, "stats" | "fanout">;
  readonly broker: { stats(): BrokerStats & { available?: boolean } };
  readonly ownerCalls: Pick<OwnerCalls, "stats">;
  /** Offline push counters, when push is configured. */
  readonly push?: () => OfflinePushCounters;
}

/** What offline push reports (server/push/offline-push-pipeline.ts). */
export interface OfflinePushCounters {
  readonly candidates: number;
  readonly decided: number;
  readonly dropped: number;
  readonly sent: number;
  readonly retries: number;
  readonly failed: number;
  readonly queued: number;
}

/** Latency buckets in seconds, from 0.5 ms to 10 s. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Code -> "invalid_argument" etc.; 0 is "ok". */
const CODE_NAMES: string[] = Array.from({ length: 17 }, (_, code) =>
  code === 0 ? "ok" : (Code[code] ?? `code_${code}`).replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase(),
);

/** DisconnectReason -> "slow_consumer" etc.; a stream that ended without a disconnect frame is "closed". */
function reasonName(reason: DisconnectReason | undefined): string {
  if (reason === undefined) return "closed";
  return (DisconnectReason[reason] ?? `reason_${reason}`).toLowerCase();
}

interface MethodEntry {
  readonly byCode: (Counter.Internal | undefined)[];
  readonly duration: Histogram | undefined;
}

/**
 * One process's Prometheus metrics (prom-client): counters the hot path increments in place
 * (label children are made once per label set and kept, so a request or a connection builds
 * no label object), values read at scrape time from counters the hub, broker, owner calls and
 * connection registry already keep, and Node's default process metrics (event-loop lag,
 * heap, RSS, GC). A node's scrape merges every worker's (see cluster-metrics.ts).
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly connectionObserver: ConnectionObserver;
  readonly requestObserver: RequestObserver;
  readonly #requests: Counter;
  readonly #syncSeconds: Histogram;
  readonly #sendSeconds: Histogram;
  readonly #appendSeconds: Histogram;
  readonly #storeErrors: Counter;
  readonly #storeUp: Gauge;
  readonly #methods = new Map<string, MethodEntry>();
  #sources: MetricSources | undefined;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    const connects = new Counter({ name: "microchat_connects_total", help: "Long connections and push streams opened, by protocol", labelNames: ["protocol"], registers });
    const disconnects = new Counter({ name: "microchat_disconnects_total", help: "Long connections ended, by protocol and reason (closed: without a disconnect frame)", labelNames: ["protocol", "reason"], registers });
    const opened = CONNECTION_PROTOCOLS.map((p) => connects.labels(p));
    const closed = CONNECTION_PROTOCOLS.map(() => new Map<DisconnectReason | undefined, Counter.Internal>());
    this.connectionObserver = {
      opened: (protocol) => opened[CONNECTION_PROTOCOLS.indexOf(protocol)]!.inc(),
      closed: (protocol, reason) => {
        const index = CONNECTION_PROTOCOLS.indexOf(protocol);
        const byReason = closed[index]!;
        let child = byReason.get(reason);
        if (child === undefined) byReason.set(reason, (child = disconnects.labels(protocol, reasonName(reason))));
        child.inc();
      },
    };
    this.#requests = new Counter({ name: "microchat_requests_total", help: "Requests answered, by method (Connect/<frame> on the long connection, <Service>/<Method> unary) and result code", labelNames: ["method", "code"], registers });
    this.#sendSeconds = new Histogram({ name: "microchat_send_duration_seconds", help: "Sends from arrival to answer (owner hop and store append included)", buckets: LATENCY_BUCKETS, registers });
    this.#syncSeconds = new Histogram({ name: "microchat_sync_duration_seconds", help: "Syncs from arrival to answer", buckets: LATENCY_BUCKETS, registers });
    this.#appendSeconds = new Histogram({ name: "microchat_append_duration_seconds", help: "Store appends (at the conversation's owner), until durable", buckets: LATENCY_BUCKETS, registers });
    this.#storeErrors = new Counter({ name: "microchat_store_errors_total", help: "Store calls that failed, by operation", labelNames: ["op"], registers });
    this.#storeUp = new Gauge({ name: "microchat_store_up", help: "1 when the last store call succeeded, 0 after a failure", registers });
    this.#storeUp.set(1);
    this.requestObserver = {
      observe: async (method, run) => {
        const entry = this.#entry(method);
        const start = performance.now();
        const code = await run();
        entry.duration?.observe((performance.now() - start) / 1000);
        this.#count(entry, method, code);
      },
      refused: (method, code) => this.#count(this.#entry(method), method, code),
    };
    this.#scraped(registers);
  }

  /** Sets what the scrape-time metrics read. Call once, when routing and the gateway exist. */
  watch(sources: MetricSources): void {
    this.#sources = sources;
    const registers = [this.registry];
    const counter = (name: string, help: string, read: (c: OfflinePushCounters) => number) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset();
          this.inc(read(sources.push!()));
        },
      });
    if (sources.broker.stats().available !== undefined) {
      new Gauge({
        name: "microchat_redis_up",
        help: "1 while both Redis connections (publish, subscribe) are ready",
        registers,
        collect() {
          this.set(sources.broker.stats().available === true ? 1 : 0);
        },
      });
    }
    if (sources.push !== undefined) {
      counter("microchat_offline_push_candidates_total", "Members with devices considered for offline push after an append", (c) => c.candidates);
      counter("microchat_offline_push_decided_total", "Members still offline after the grace, handed to the push providers", (c) => c.decided);
      counter("microchat_offline_push_dropped_total", "Offline push work given up to stay within a bound, or for lack of an answer on presence", (c) => c.dropped);
      counter("microchat_offline_push_sent_total", "Notifications the push providers accepted", (c) => c.sent);
      counter("microchat_offline_push_retries_total", "Provider requests retried", (c) => c.retries);
      counter("microchat_offline_push_failed_total", "Notifications given up after every attempt", (c) => c.failed);
      new Gauge({
        name: "microchat_offline_push_queued",
        help: "Notifications queued, in flight or waiting for a retry",
        registers,
        collect() {
          this.set(sources.push!().queued);
        },
      });
    }
  }

  /** `store` with its appends timed and its failures counted. */
  measureStore(store: MessageStore): MessageStore {
    const appendSeconds = this.#appendSeconds;
    const errors = this.#storeErrors;
    const up = this.#storeUp;
    return new ObservedMessageStore(store, {
      async run(op, _conversationId, call) {
        const start = op === "append" ? performance.now() : 0;
        try {
          const result = await call();
          if (op === "append") appendSeconds.observe((performance.now() - start) / 1000);
          up.set(1);
          return result;
        } catch (error) {
          errors.inc({ op });
          up.set(0);
          throw error;
        }
      },
    });
  }

  #entry(method: string): MethodEntry {
    let entry = this.#methods.get(method);
    if (entry === undefined) {
      const duration = method === "Connect/sync" || method === "GatewayService/Sync" ? this.#syncSeconds : method === "Connect/send" || method === "GatewayService/Send" ? this.#sendSeconds : undefined;
      entry = { byCode: [], duration };
      this.#methods.set(method, entry);
    }
    return entry;
  }

  #count(entry: MethodEntry, method: string, code: number): void {
    let child = entry.byCode[code];
    if (child === undefined) entry.byCode[code] = child = this.#requests.labels(method, CODE_NAMES[code] ?? String(code));
    child.inc();
  }

  /** Metrics whose values are read from the sources when scraped. */
  #scraped(registers: Registry[]): void {
    const sources = () => this.#sources;
    const gauge = (name: string, help: string, read: (s: MetricSources) => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          const s = sources();
          this.set(s === undefined ? 0 : read(s));
        },
      });
    // Counters kept elsewhere as plain numbers: reported as they stand at the scrape.
    const counter = (name: string, help: string, read: (s: MetricSources) => number) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset();
          const s = sources();
          this.inc(s === undefined ? 0 : read(s));
        },
      });
    new Gauge({
      name: CONNECTIONS_METRIC,
      help: "Live long connections and push streams of the node (summed over its workers): the HPA's metric",
      registers,
      aggregator: "sum",
      collect() {
        this.set(sources()?.connections.size ?? 0);
      },
    });
    new Gauge({
      name: "microchat_live_connections",
      help: "Live long connections and push streams, by protocol (grpc and connect: the lean HTTP/2 path; connect_json, grpc_web: connect-node on HTTP/2; http1: connect-node on HTTP/1.1)",
      labelNames: ["protocol"],
      registers,
      collect() {
        const connections = sources()?.connections;
        for (const protocol of CONNECTION_PROTOCOLS) this.set({ protocol }, connections?.liveOf(protocol as ConnectionProtocol) ?? 0);
      },
    });
    new Gauge({
      name: "microchat_push_queue_bytes",
      help: "Push bytes waiting for the transport: the sum over connections (stat=sum) and the deepest queue (stat=max)",
      labelNames: ["stat"],
      registers,
      collect() {
        let sum = 0;
        let max = 0;
        for (const conn of sources()?.connections ?? []) {
          const bytes = conn.queuedBytes();
          sum += bytes;
          if (bytes > max) max = bytes;
        }
        this.set({ stat: "sum" }, sum);
        this.set({ stat: "max" }, max);
      },
    });
    gauge("microchat_hub_users", "Users with a live connection on this worker", (s) => s.hub.stats().users);
    gauge("microchat_hub_groups", "Groups with a member connected to this worker", (s) => s.hub.stats().groups);
    gauge("microchat_broker_channels", "Channels this worker subscribes to at the broker", (s) => s.broker.stats().channels);
    counter("microchat_publications_published_total", "Publications sent to other processes through the broker", (s) => s.broker.stats().published);
    counter("microchat_publications_received_total", "Publications received from other processes through the broker", (s) => s.broker.stats().received);
    counter("microchat_publications_dropped_total", "Publications given up (broker channel full, broker down, malformed)", (s) => s.broker.stats().dropped);
    counter("microchat_hub_publications_total", "Publications the hub handled (published here or received)", (s) => s.hub.fanout().publications);
    counter("microchat_deliveries_total", "Publications handed to local connections (one per connection)", (s) => s.hub.fanout().deliveries);
    counter("microchat_owner_calls_forwarded_total", "Requests forwarded to their conversation's owner process", (s) => s.ownerCalls.stats().forwarded);
    counter("microchat_owner_calls_served_total", "Requests served as a conversation's owner for another process", (s) => s.ownerCalls.stats().served);
    counter("microchat_owner_calls_timed_out_total", "Forwarded requests whose owner did not answer in time", (s) => s.ownerCalls.stats().timedOut);
    gauge("microchat_owner_calls_pending", "Forwarded requests waiting for their owner's answer", (s) => s.ownerCalls.stats().pending);
  }
}
