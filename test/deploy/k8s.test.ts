import { execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { WORKER_STOP_MARGIN_MS } from "../../server/cluster.js";
import { OPTIONS } from "../../server/config.js";
import { CONNECTIONS_METRIC } from "../../server/observe/gateway-metrics.js";
import { METRICS_PATH } from "../../server/observe/metrics-route.js";

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, "../..");
/** The Kubernetes version of the vendored schemas (deploy/k8s/schemas/SOURCE.md). */
const K8S_VERSION = "1.37.0";
const SCHEMAS = "deploy/k8s/schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json";

/** Memory per connection measured with 2 worker processes, end of hold (docs/benchmarks/loadgen.md). */
const KB_PER_CONNECTION = 165;
/** RSS of a primary with two workers right after start (docs/benchmarks/startup.md), MB. */
const BASE_MB = 340;

type K8sObject = { kind: string; metadata: { name: string }; spec: any; data?: Record<string, string> };

interface ValidationReport {
  resources: { kind: string; name: string; status: string; msg: string }[];
  summary: { valid: number; invalid: number; errors: number; skipped: number };
}

let bin: string;
let rendered: string;
let objects: K8sObject[];

/** Runs kubeconform (strict, vendored schemas only) on `yaml`. */
function kubeconform(yaml: string): Promise<{ code: number; report: ValidationReport }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      path.join(bin, "kubeconform"),
      ["-strict", "-summary", "-output", "json", "-kubernetes-version", K8S_VERSION, "-schema-location", SCHEMAS, "-"],
      { cwd: ROOT, stdio: ["pipe", "pipe", "inherit"] },
    );
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
    child.once("error", reject);
    child.once("exit", (code) => {
      try {
        resolve({ code: code ?? -1, report: JSON.parse(out) as ValidationReport });
      } catch (error) {
        reject(new Error(`kubeconform printed no report (exit ${code}):\n${out}`, { cause: error }));
      }
    });
    child.stdin.end(yaml);
  });
}

function find(kind: string, name: string): K8sObject {
  const found = objects.find((o) => o.kind === kind && o.metadata.name.startsWith(name));
  if (found === undefined) throw new Error(`no ${kind} ${name} in the kustomization`);
  return found;
}

/** The gateway's settings: the generated ConfigMap. */
function gatewayConfig(): Record<string, string> {
  return find("ConfigMap", "gateway-config").data!;
}

describe("deploy/k8s", () => {
  beforeAll(async () => {
    // Builds kustomize and kubeconform from the Go module proxy the first time (~1 min).
    bin = (await run("bash", [path.join(ROOT, "scripts/k8s-tools.sh")], { cwd: ROOT, encoding: "utf8" })).stdout.trim();
    rendered = (await run(path.join(bin, "kustomize"), ["build", "deploy/k8s"], { cwd: ROOT, encoding: "utf8" })).stdout;
    objects = parseAllDocuments(rendered).map((d) => d.toJS() as K8sObject);
  }, 600_000);

  it("renders the gateway, its Service, PDB and HPA, Redis and a Cassandra StatefulSet", () => {
    expect(objects.map((o) => `${o.kind}/${o.metadata.name.replace(/-[a-z0-9]{10}$/, "")}`).sort()).toEqual([
      "ConfigMap/gateway-config",
      "Deployment/gateway",
      "Deployment/redis",
      "HorizontalPodAutoscaler/gateway",
      "PodDisruptionBudget/cassandra",
      "PodDisruptionBudget/gateway",
      "Service/cassandra",
      "Service/gateway",
      "Service/redis",
      "StatefulSet/cassandra",
    ]);
  });

  it("validates every rendered object against the Kubernetes schemas", async () => {
    const { code, report } = await kubeconform(rendered);
    expect(report.resources.filter((r) => r.status !== "statusValid")).toEqual([]);
    expect(report.summary).toEqual({ valid: objects.length, invalid: 0, errors: 0, skipped: 0 });
    expect(code).toBe(0);
  });

  it("rejects an object with a field Kubernetes does not have, and a kind it has no schema for", async () => {
    const typo = rendered.replace("terminationGracePeriodSeconds:", "terminationGracePeriodSecond:");
    const bad = await kubeconform(typo);
    expect(bad.code).not.toBe(0);
    expect(bad.report.resources.map((r) => r.msg).join("\n")).toMatch(/terminationGracePeriodSecond/);
    const unknown = await kubeconform("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers: []\n");
    expect(unknown.code).not.toBe(0);
  });

  it("sets only settings the server knows", () => {
    const known = new Set(OPTIONS.map((o) => o.env));
    expect(Object.keys(gatewayConfig()).filter((k) => !known.has(k))).toEqual([]);
  });

  it("probes the gateway with grpc.health.v1 on its serving port", () => {
    const container = find("Deployment", "gateway").spec.template.spec.containers[0];
    const port = Number(gatewayConfig().IM_PORT);
    expect(container.ports).toContainEqual({ name: "grpc", containerPort: port });
    for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) expect(container[probe].grpc).toEqual({ port });
  });

  it("gives a terminating gateway the time its drain takes before SIGKILL", () => {
    const pod = find("Deployment", "gateway").spec.template.spec;
    const preStopS: number = pod.containers[0].lifecycle.preStop.sleep.seconds;
    const drainS = Number(gatewayConfig().IM_DRAIN_TIMEOUT_MS) / 1000;
    expect(preStopS).toBeGreaterThan(0);
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(preStopS + drainS + WORKER_STOP_MARGIN_MS / 1000);
    // And liveness cannot fail during a drain (health is NOT_SERVING from SIGTERM on).
    const live = pod.containers[0].livenessProbe;
    expect(live.periodSeconds * live.failureThreshold).toBeGreaterThan(pod.terminationGracePeriodSeconds - preStopS);
  });

  it("sizes gateway memory for the connections the autoscaler aims at", () => {
    const target = Number(find("HorizontalPodAutoscaler", "gateway").spec.metrics[0].pods.target.averageValue);
    const { requests, limits } = find("Deployment", "gateway").spec.template.spec.containers[0].resources;
    const gib = (q: string) => Number(/^(\d+)Gi$/.exec(q)![1]) * 1024;
    expect(gib(requests.memory)).toBeGreaterThanOrEqual(BASE_MB + (target * KB_PER_CONNECTION) / 1024);
    // A burst of 50 % over the target fits under the limit.
    expect(gib(limits.memory)).toBeGreaterThanOrEqual(BASE_MB + (1.5 * target * KB_PER_CONNECTION) / 1024);
  });

  it("scales the gateway on microchat_connections per pod", () => {
    const hpa = find("HorizontalPodAutoscaler", "gateway").spec;
    expect(hpa.scaleTargetRef).toEqual({ apiVersion: "apps/v1", kind: "Deployment", name: "gateway" });
    expect(hpa.metrics).toEqual([{ type: "Pods", pods: { metric: { name: "microchat_connections" }, target: { type: "AverageValue", averageValue: "8000" } } }]);
    expect(hpa.minReplicas).toBeGreaterThanOrEqual(2);
    // The name the gateway serves its node total under.
    expect(hpa.metrics[0].pods.metric.name).toBe(CONNECTIONS_METRIC);
  });

  it("has Prometheus scrape the pods' /metrics on the serving port", () => {
    const pod = find("Deployment", "gateway").spec.template.metadata;
    expect(pod.annotations).toEqual({ "prometheus.io/scrape": "true", "prometheus.io/port": gatewayConfig().IM_PORT, "prometheus.io/path": METRICS_PATH });
    expect(gatewayConfig().IM_METRICS ?? "on").toBe("on");
  });

  it("runs Cassandra as 3 nodes with RF 3 and LOCAL_QUORUM in the gateway's data centre", () => {
    const sts = find("StatefulSet", "cassandra").spec;
    const env = Object.fromEntries(sts.template.spec.containers[0].env.map((e: { name: string; value?: string }) => [e.name, e.value]));
    const config = gatewayConfig();
    expect(sts.replicas).toBe(3);
    expect(config.IM_CASSANDRA_REPLICATION_FACTOR).toBe("3");
    expect(config.IM_CASSANDRA_CONSISTENCY).toBe("LOCAL_QUORUM");
    expect(config.IM_STORE).toBe("cassandra");
    expect(env.CASSANDRA_DC).toBe(config.IM_CASSANDRA_LOCAL_DC);
    expect((config.IM_CASSANDRA_CONTACT_POINTS ?? "").split(",").map((h) => h.replace(/:\d+$/, ""))).toEqual(
      Array.from({ length: 3 }, (_, i) => `cassandra-${i}.${sts.serviceName}`),
    );
    // Quorum of 3 survives one node down: one voluntary disruption at a time.
    expect(find("PodDisruptionBudget", "cassandra").spec.maxUnavailable).toBe(1);
  });

  it("selects real pods with every Service and PodDisruptionBudget", () => {
    const podLabels = objects.filter((o) => o.kind === "Deployment" || o.kind === "StatefulSet").map((o) => o.spec.template.metadata.labels as Record<string, string>);
    const matches = (selector: Record<string, string>) => podLabels.some((labels) => Object.entries(selector).every(([k, v]) => labels[k] === v));
    for (const o of objects) {
      if (o.kind === "Service") expect(matches(o.spec.selector), `Service ${o.metadata.name}`).toBe(true);
      if (o.kind === "PodDisruptionBudget") expect(matches(o.spec.selector.matchLabels), `PDB ${o.metadata.name}`).toBe(true);
    }
  });

  it("builds an image that starts the way npm start does", () => {
    const dockerfile = readFileSync(path.join(ROOT, "Dockerfile"), "utf8");
    const start = (JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { scripts: { start: string } }).scripts.start;
    expect(dockerfile).toMatch(/^FROM node:24\S* AS build$/m);
    expect(dockerfile).toContain(`CMD ${JSON.stringify(start.split(" "))}`);
  });
});
