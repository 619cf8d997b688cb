import { CHECKERS } from "./checkers.js";
import type { SimConfig } from "./scenarios.js";
import type { SimResult } from "./simulation.js";

/** Wall-clock figures of a run: not reproducible, so kept apart from the result. */
export interface Perf {
  readonly wallMs: number;
  readonly eventsPerSec: number;
  /** Peak resident set of the process, in MB. */
  readonly maxRssMb: number;
  /** User CPU time of the process over the run (the share of the wall time the run got). */
  readonly userCpuMs: number;
}

/** Measures wall time and peak RSS around `work`. */
export async function measure<T extends { readonly events: number }>(work: () => Promise<T>): Promise<{ result: T; perf: Perf }> {
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  const result = await work();
  const wallMs = performance.now() - started;
  const userCpuMs = Math.round(process.cpuUsage(cpuBefore).user / 1000);
  return {
    result,
    perf: { wallMs: Math.round(wallMs), eventsPerSec: Math.round(result.events / Math.max(wallMs / 1000, 1e-9)), maxRssMb: Math.round(process.resourceUsage().maxRSS / 1024), userCpuMs },
  };
}

/** The command line that reproduces a run. */
export function reproduceCommand(result: Pick<SimResult, "scenario" | "seed" | "size">, overrides: Partial<SimConfig>): string {
  const extra = Object.entries(overrides).map(([k, v]) => ` --${k} ${String(v)}`).join("");
  return `npm run sim -- ${result.scenario} --seed ${result.seed} --size ${result.size}${extra}`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function table(rows: readonly (readonly [string, string])[]): string {
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`).join("\n");
}

/**
 * The human report: summary table, one line per checker, and the first violation with its
 * trace. Deterministic: only seed-determined figures (wall-clock ones go through formatPerf).
 */
export function formatText(result: SimResult, overrides: Partial<SimConfig>): string {
  const s = result.stats;
  const lines: string[] = [];
  lines.push(`microchat simulator: scenario ${result.scenario} (${result.size}), seed ${result.seed}`);
  lines.push(`reproduce: ${reproduceCommand(result, overrides)}`);
  lines.push("");
  const converged = s.convergedAfterMs >= 0 ? `converged ${seconds(s.convergedAfterMs)} after` : "never converged";
  lines.push(
    table([
      ["events", String(result.events)],
      ["virtual time", `${seconds(result.virtualMs)} (faults healed at ${seconds(result.healAtMs)}, ${converged})`],
      ["messages", `${s.appSends} sent, ${s.acked} acked, ${s.stored} stored, ${s.sendsRejected} refused (outbox full), ${s.sendsFailed} failed, ${s.resends} resends`],
      ["deliveries", String(s.deliveries)],
      ["publications", `${s.publications} (on the hop between processes: ${s.publicationsLost} lost, ${s.publicationsDuplicated} duplicated, ${s.publicationsReordered} reordered, ${s.publicationsCut} cut by partitions or crashes)`],
      ["pushes", `${s.pushes} (${s.framesLost} frames lost on dead links)`],
      ["gaps", `${s.gapsFound} found, ${s.gapsRepaired} repaired, longest repair ${s.longestRepairMs} ms, ${s.stuck} stuck, longest wait of a push to be shown ${s.longestShownMs} ms, ${s.pagedRestOwed} has_more answers whose rest was owed at once`],
      ["connections", `${s.connects} connects, ${s.refused} refused, ${s.refusedStreams} streams refused, ${s.drops} dropped, ${s.clientTimeouts} client / ${s.serverTimeouts} server heartbeat timeouts, ${s.slowConsumerDisconnects} slow consumers, ${s.tokenExpiries} tokens expired, ${s.shutdownDisconnects} shutdowns, ${s.protocolErrors} protocol errors, ${s.failedRequests} after failed requests`],
      ["requests", `${s.syncs} syncs (${s.resyncs} idle resyncs), ${s.fetches} fetches, ${s.markReads} markReads, ${s.pings} pings`],
      ["store faults", `${s.storeTimeoutsAfterWrite} timeouts after write, ${s.storeFailuresBeforeWrite} failures before write, ${s.storeReadFailures} read failures, ${s.storeCutFailures} cut off`],
      ["node faults", `${s.storms} storms, ${s.partitions} partitions, ${s.crashes} crashes, ${s.drains} drains (${s.drainsTimedOut} timed out)`],
      ["adversaries", `${s.adversaryProbes} probes, ${s.adversaryRefused} refused as documented`],
    ]),
  );
  lines.push("");
  lines.push("checkers");
  lines.push(table(CHECKERS.map((name) => {
    const r = result.checkers[name];
    return [name, r.violations > 0 ? `${r.violations} violations` : r.on ? "ok" : "off (the run's faults reorder or lose pushes)"];
  })));
  for (const name of CHECKERS) {
    for (const v of result.checkers[name].examples) {
      lines.push(`  - ${name}: ${v.conversationId || "-"} ${v.device || "-"} at ${v.atMs} ms: ${v.detail}`);
    }
  }
  const first = result.first;
  if (first !== undefined) {
    lines.push("");
    lines.push(`VIOLATION seed ${result.seed}: ${first.checker} in conversation ${first.conversationId || "-"}, device ${first.device || "-"}, at ${first.atMs} ms (event ${first.event})`);
    lines.push(`  ${first.detail}`);
    if (result.trace.length > 0) {
      lines.push(`trace of ${first.conversationId} up to the violation (last ${result.trace.length} events):`);
      for (const line of result.trace) lines.push(`  ${line}`);
    }
  }
  lines.push("");
  lines.push(result.ok ? "OK" : "FAILED");
  return lines.join("\n") + "\n";
}

/** The wall-clock figures (printed apart: they differ between runs of one seed). */
export function formatPerf(perf: Perf): string {
  return `${table([
    ["wall time", seconds(perf.wallMs)],
    ["user CPU", seconds(perf.userCpuMs)],
    ["events/s", String(perf.eventsPerSec)],
    ["max RSS", `${perf.maxRssMb} MB`],
  ])}\n`;
}

/** The machine report: the result as JSON (deterministic). */
export function formatJson(result: SimResult, overrides: Partial<SimConfig>): string {
  return `${JSON.stringify({ ...result, overrides, reproduce: reproduceCommand(result, overrides) }, null, 2)}\n`;
}
