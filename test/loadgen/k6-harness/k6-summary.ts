/**
 * The end-of-test summary of the smoke harness, in the shape k6 passes to handleSummary
 * (`metrics.<name>.{type, contains, values, thresholds}`, `root_group.checks`, `state`), and
 * the evaluation of the script's thresholds (`p(N)`, avg, min, max, med, count, rate, value with
 * <, <=, >, >=, ==, ===, !=). Pure.
 */
import type { MetricDecl, Sample } from "./vu-runtime.js";

export interface MetricSummary {
  readonly type: MetricDecl["type"];
  readonly contains: MetricDecl["contains"];
  readonly values: Record<string, number>;
  thresholds?: Record<string, { ok: boolean }>;
}

export interface SummaryData {
  readonly metrics: Record<string, MetricSummary>;
  readonly root_group: { name: string; path: string; id: string; groups: []; checks: { name: string; path: string; id: string; passes: number; fails: number }[] };
  readonly options: { summaryTrendStats: string[]; summaryTimeUnit: string; noColor: boolean };
  readonly state: { isStdOutTTY: boolean; isStdErrTTY: boolean; testRunDurationMs: number };
}

export interface ThresholdResult {
  readonly metric: string;
  readonly expression: string;
  readonly ok: boolean;
  /** The value the expression was evaluated on (undefined when the metric has no samples). */
  readonly actual: number | undefined;
}

const TREND_STATS = ["avg", "min", "med", "max", "p(90)", "p(95)"];

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  // k6 interpolates between the closest ranks.
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (rank - lo);
}

function statOf(values: Record<string, number>, sorted: readonly number[], stat: string): number | undefined {
  const p = /^p\((\d+(?:\.\d+)?)\)$/.exec(stat);
  if (p !== null) return sorted.length === 0 ? undefined : percentile(sorted, Number(p[1]));
  return values[stat];
}

const THRESHOLD = /^\s*(avg|min|max|med|count|rate|value|p\(\d+(?:\.\d+)?\))\s*(<=|>=|===|==|!=|<|>)\s*(-?\d+(?:\.\d+)?)\s*$/;

function compare(a: number, op: string, b: number): boolean {
  switch (op) {
    case "<":
      return a < b;
    case "<=":
      return a <= b;
    case ">":
      return a > b;
    case ">=":
      return a >= b;
    case "!=":
      return a !== b;
    default:
      return a === b;
  }
}

/** Builds the summary from every sample and evaluates `thresholds` (the script's options.thresholds). */
export function summarize(
  decls: Iterable<MetricDecl>,
  samples: readonly Sample[],
  checks: ReadonlyMap<string, { passes: number; fails: number }>,
  thresholds: Readonly<Record<string, readonly (string | { threshold: string })[]>>,
  durationMs: number,
): { data: SummaryData; thresholds: ThresholdResult[] } {
  const byMetric = new Map<string, number[]>();
  for (const s of samples) {
    let list = byMetric.get(s.metric);
    if (list === undefined) byMetric.set(s.metric, (list = []));
    list.push(s.value);
  }
  const metrics: Record<string, MetricSummary> = {};
  const sortedOf = new Map<string, number[]>();
  for (const d of decls) {
    const list = byMetric.get(d.name) ?? [];
    if (list.length === 0 && !(d.name in thresholds)) continue;
    const sorted = [...list].sort((a, b) => a - b);
    sortedOf.set(d.name, sorted);
    const sum = list.reduce((a, b) => a + b, 0);
    let values: Record<string, number>;
    if (d.type === "counter") values = { count: sum, rate: sum / Math.max(0.001, durationMs / 1000) };
    else if (d.type === "rate") values = { rate: list.length === 0 ? 0 : sum / list.length, passes: sum, fails: list.length - sum };
    else if (d.type === "gauge") values = { value: list.at(-1) ?? 0, min: sorted[0] ?? 0, max: sorted.at(-1) ?? 0 };
    else {
      values = { avg: list.length === 0 ? 0 : sum / list.length, min: sorted[0] ?? 0, med: percentile(sorted, 50), max: sorted.at(-1) ?? 0, "p(90)": percentile(sorted, 90), "p(95)": percentile(sorted, 95) };
    }
    metrics[d.name] = { type: d.type, contains: d.contains, values };
  }
  const results: ThresholdResult[] = [];
  for (const [metric, list] of Object.entries(thresholds)) {
    if (metric.includes("{")) throw new Error(`threshold on ${metric}: sub-metrics (tags) are not supported by the smoke harness`);
    const m = metrics[metric];
    if (m === undefined) throw new Error(`threshold on ${metric}: no such metric`);
    for (const entry of list) {
      const expression = typeof entry === "string" ? entry : entry.threshold;
      const parsed = THRESHOLD.exec(expression);
      if (parsed === null) throw new Error(`threshold ${JSON.stringify(expression)} on ${metric}: not understood by the smoke harness`);
      const sorted = sortedOf.get(metric) ?? [];
      const noSamples = sorted.length === 0 && m.type !== "counter";
      const actual = noSamples ? undefined : statOf(m.values, sorted, parsed[1]!);
      if (actual !== undefined && parsed[1]!.startsWith("p(")) m.values[parsed[1]!] = actual;
      // A threshold on a metric that got no samples is not evaluated (it passes), as in k6.
      const ok = actual === undefined ? true : compare(actual, parsed[2]!, Number(parsed[3]));
      (m.thresholds ??= {})[expression] = { ok };
      results.push({ metric, expression, ok, actual });
    }
  }
  return {
    data: {
      metrics,
      root_group: { name: "", path: "", id: "d41d8cd98f00b204e9800998ecf8427e", groups: [], checks: [...checks].map(([name, c]) => ({ name, path: `::${name}`, id: name, passes: c.passes, fails: c.fails })) },
      options: { summaryTrendStats: TREND_STATS, summaryTimeUnit: "", noColor: true },
      state: { isStdOutTTY: false, isStdErrTTY: false, testRunDurationMs: durationMs },
    },
    thresholds: results,
  };
}
