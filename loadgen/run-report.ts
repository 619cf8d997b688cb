import { mkdir, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { CheckReport } from "./delivery-checker.js";
import type { LatencySummary } from "./latency-histogram.js";
import { renderLatencyChart } from "./latency-chart.js";
import type { TimelinePoint } from "./progress-board.js";
import type { FleetCounters } from "./protocol.js";
import type { Figure, ReportTable } from "./scenario.js";
import type { ServerSnapshot } from "./server-stats.js";

/** The machine a run was measured on. */
export interface MachineInfo {
  readonly cpuModel: string;
  readonly cpus: number;
  readonly memoryGiB: number;
  readonly os: string;
  readonly node: string;
}

/** Everything a run produced; written as report.json. */
export interface RunReport {
  readonly scenario: string;
  readonly passed: boolean;
  readonly failures: readonly string[];
  readonly startedAt: string;
  readonly durationS: number;
  readonly command: string;
  readonly machine: MachineInfo;
  readonly options: Readonly<Record<string, unknown>>;
  readonly params: Readonly<Record<string, number>>;
  readonly clientProcesses: readonly { readonly index: number; readonly pid: number }[];
  readonly figures: readonly Figure[];
  readonly tables: readonly ReportTable[];
  readonly latencies: readonly {
    readonly name: string;
    readonly label: string;
    readonly summary: LatencySummary;
    /** The merged HdrHistogram (V2 compressed, base64; values in microseconds). */
    readonly histogram: string;
  }[];
  readonly counters: FleetCounters;
  readonly check: CheckReport;
  readonly server?: { readonly before: ServerSnapshot; readonly after: ServerSnapshot };
  /** CPU used by the server (local processes, from /proc) and the load generator, and the machine load. */
  readonly resources: {
    readonly wallS: number;
    readonly loadAvgStart: number;
    readonly loadAvgEnd: number;
    readonly serverPids: readonly number[];
    readonly serverCpuS: number | undefined;
    readonly clientCpuS: number;
    /** TCP listen queue overflows on this machine during the run (all processes; Linux). */
    readonly listenOverflows: number | undefined;
    /** Connections the server processes closed for opening no stream within --handshake-timeout-ms (all of their lifetime). */
    readonly handshakeTimeouts?: number;
  };
  readonly timeline: readonly TimelinePoint[];
  readonly phases: readonly { readonly name: string; readonly tS: number }[];
  readonly notes: readonly string[];
}

/** This machine. */
export function describeMachine(): MachineInfo {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? "unknown",
    cpus: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
  };
}

function num(v: number): string {
  if (Number.isInteger(v) || Math.abs(v) >= 100) return Math.round(v).toLocaleString("en-US");
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(Math.abs(v) >= 1 ? 2 : 3);
}

const ms = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));

/** The Markdown summary of a run. */
export function renderSummary(r: RunReport): string {
  const lines: string[] = [
    `# loadgen ${r.scenario}: ${r.passed ? "PASSED" : "FAILED"}`,
    "",
    `- started ${r.startedAt}, ${r.durationS.toFixed(1)} s`,
    `- command: \`${r.command}\``,
    `- machine: ${r.machine.cpus} x ${r.machine.cpuModel}, ${r.machine.memoryGiB} GiB, ${r.machine.os}, Node ${r.machine.node}`,
    `- client processes: ${r.clientProcesses.length === 1 && r.clientProcesses[0]!.pid === process.pid ? "in-process" : r.clientProcesses.length}, devices: ${String(r.options.device)}`,
    `- parameters: ${Object.entries(r.params).map(([k, v]) => `${k}=${v}`).join(", ")}`,
    "",
  ];
  if (r.failures.length > 0) lines.push("## Failures", "", ...r.failures.map((f) => `- ${f}`), "");
  lines.push("## Figures", "", "| figure | value |", "| --- | ---: |");
  for (const f of r.figures) lines.push(`| ${f.name} | ${num(f.value)}${f.unit === "" ? "" : ` ${f.unit}`} |`);
  for (const t of r.tables) {
    lines.push("", `## ${t.title}`, "", `| ${t.columns.join(" | ")} |`, `| ${t.columns.map(() => "---:").join(" | ")} |`);
    for (const row of t.rows) lines.push(`| ${row.map((v) => (typeof v === "number" ? num(v) : v)).join(" | ")} |`);
  }
  lines.push("", "## Latency (ms)", "", "| measure | count | p50 | p90 | p99 | p99.9 | max |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const l of r.latencies) {
    const s = l.summary;
    lines.push(`| ${l.label} | ${s.count} | ${ms(s.p50Ms)} | ${ms(s.p90Ms)} | ${ms(s.p99Ms)} | ${ms(s.p999Ms)} | ${ms(s.maxMs)} |`);
  }
  const c = r.check;
  lines.push(
    "",
    "## Delivery check",
    "",
    `${c.pairsChecked} (device, conversation) pairs checked, ${c.deliveries} messages delivered, ${c.missingMessages} missing` +
      (c.devicesExcluded > 0 ? `; ${c.devicesExcluded} devices that never connected not compared (see connect failures).` : "."),
    "",
    "| finding | count |",
    "| --- | ---: |",
    ...Object.entries(c.counts).map(([k, v]) => `| ${k} | ${v} |`),
  );
  if (c.findings.length > 0) lines.push("", "First findings:", "", ...c.findings.slice(0, 20).map((f) => `- ${f.kind} at ${f.deviceId} in ${f.conversationId}: ${f.detail}`));
  const k = r.counters;
  lines.push("", "## Client counters", "", `connections opened ${k.opened}, connect failures ${k.connectFailures}, drops ${k.drops}, sends ${k.written} (acked ${k.acked}, failed ${k.sendFailures}), received ${k.received}, errors ${k.errors}.`);
  if (k.errorSamples.length > 0) lines.push("", "First errors:", "", ...k.errorSamples.map((e) => `- ${e.split("\n")[0]}`));
  const res = r.resources;
  const cores = (cpuS: number) => `${cpuS.toFixed(0)} CPU-s, ${(cpuS / res.wallS).toFixed(2)} cores on average`;
  lines.push(
    "",
    "## Resources",
    "",
    `- server (processes ${res.serverPids.join(", ") || "unknown"}, with the parent of those answering /stats): ${res.serverCpuS === undefined ? "not measured (not local)" : cores(res.serverCpuS)}`,
    `- load generator: ${cores(res.clientCpuS)}`,
    `- machine load average (1 min): ${res.loadAvgStart.toFixed(1)} at the start, ${res.loadAvgEnd.toFixed(1)} at the end, on ${r.machine.cpus} cores`,
  );
  if (res.listenOverflows !== undefined) {
    lines.push(`- TCP listen queue overflows on this machine during the run: ${res.listenOverflows}${res.listenOverflows > 0 ? " (a server did not accept connections fast enough; its clients see resets or timeouts)" : ""}`);
  }
  if (res.handshakeTimeouts !== undefined) {
    lines.push(`- connections the servers closed for opening no stream within the handshake timeout: ${res.handshakeTimeouts}${res.handshakeTimeouts > 0 ? " (their clients see a reset; a server too busy to read the first stream in time, or clients that waited; see --handshake-timeout-ms)" : ""}`);
  }
  if (r.notes.length > 0) lines.push("", "## Notes", "", ...r.notes.map((n) => `- ${n}`));
  return lines.join("\n") + "\n";
}

/** Writes report.json, summary.md and (when the run recorded latencies) latency.svg into `dir`. */
export async function writeRunReport(dir: string, r: RunReport): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const files = [path.join(dir, "report.json"), path.join(dir, "summary.md")];
  await writeFile(files[0]!, JSON.stringify(r, null, 2) + "\n");
  await writeFile(files[1]!, renderSummary(r));
  const svg = renderLatencyChart(r.timeline, r.phases, `loadgen ${r.scenario}`);
  if (svg !== undefined) {
    files.push(path.join(dir, "latency.svg"));
    await writeFile(files[2]!, svg);
  }
  return files;
}
