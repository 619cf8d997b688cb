import type { IntervalLatency, TimelinePoint } from "./progress-board.js";

const W = 960;
const H = 400;
const M = { left: 64, right: 150, top: 36, bottom: 44 };
const SERIES: readonly { key: keyof Pick<IntervalLatency, "p50Ms" | "p99Ms" | "p999Ms">; label: string; color: string }[] = [
  { key: "p50Ms", label: "p50", color: "#1f77b4" },
  { key: "p99Ms", label: "p99", color: "#ff7f0e" },
  { key: "p999Ms", label: "p99.9", color: "#d62728" },
];

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/**
 * An SVG chart of latency percentiles per progress interval over the run (log scale), with the
 * phases marked: end-to-end delivery latency when the run delivered messages, else heartbeat
 * round trips. Undefined when no interval recorded anything.
 */
export function renderLatencyChart(timeline: readonly TimelinePoint[], phases: readonly { readonly name: string; readonly tS: number }[], title: string): string | undefined {
  const useDelivery = timeline.some((p) => p.delivery.count > 0);
  const pick = (p: TimelinePoint) => (useDelivery ? p.delivery : p.rtt);
  const points = timeline.filter((p) => pick(p).count > 0);
  if (points.length === 0) return undefined;
  const tMax = Math.max(1, ...timeline.map((p) => p.tS));
  const values = points.flatMap((p) => SERIES.map((s) => pick(p)[s.key])).filter((v) => v > 0);
  const lo = Math.pow(10, Math.floor(Math.log10(Math.max(0.001, Math.min(...values)))));
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(lo * 10, ...values))));
  const x = (t: number) => M.left + (t / tMax) * (W - M.left - M.right);
  const y = (v: number) => M.top + (1 - (Math.log10(Math.max(lo, v)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * (H - M.top - M.bottom);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${M.left}" y="20" font-size="14" font-weight="bold">${esc(title)}: ${useDelivery ? "end-to-end delivery latency" : "heartbeat round trip"} per interval (ms, log scale)</text>`,
  ];
  for (let d = lo; d <= hi * 1.0001; d *= 10) {
    out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${y(d).toFixed(1)}" y2="${y(d).toFixed(1)}" stroke="#ddd"/>`);
    out.push(`<text x="${M.left - 6}" y="${(y(d) + 4).toFixed(1)}" text-anchor="end">${d >= 1 ? d.toFixed(0) : d.toPrecision(1)}</text>`);
  }
  const step = [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600].find((s) => tMax / s <= 12) ?? 7200;
  for (let t = 0; t <= tMax; t += step) {
    out.push(`<text x="${x(t).toFixed(1)}" y="${H - M.bottom + 16}" text-anchor="middle">${t.toFixed(0)}</text>`);
  }
  out.push(`<text x="${((M.left + W - M.right) / 2).toFixed(0)}" y="${H - 8}" text-anchor="middle">seconds since start</text>`);
  out.push(`<rect x="${M.left}" y="${M.top}" width="${W - M.left - M.right}" height="${H - M.top - M.bottom}" fill="none" stroke="#333"/>`);
  phases.forEach((p, i) => {
    const px = x(Math.min(tMax, p.tS)).toFixed(1);
    out.push(`<line x1="${px}" x2="${px}" y1="${M.top}" y2="${H - M.bottom}" stroke="#999" stroke-dasharray="4 3"/>`);
    // Alternate label heights so phases that start close together stay readable.
    out.push(`<text x="${px}" y="${M.top + 12 + (i % 2) * 12}" fill="#666"> ${esc(p.name)}</text>`);
  });
  SERIES.forEach((s, i) => {
    const path = points.map((p) => `${x(p.tS).toFixed(1)},${y(pick(p)[s.key]).toFixed(1)}`).join(" ");
    out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="1.5" points="${path}"/>`);
    if (points.length <= 60) {
      for (const p of points) out.push(`<circle cx="${x(p.tS).toFixed(1)}" cy="${y(pick(p)[s.key]).toFixed(1)}" r="2.5" fill="${s.color}"/>`);
    }
    out.push(`<line x1="${W - M.right + 12}" x2="${W - M.right + 36}" y1="${M.top + 14 + i * 18}" y2="${M.top + 14 + i * 18}" stroke="${s.color}" stroke-width="2"/>`);
    out.push(`<text x="${W - M.right + 42}" y="${M.top + 18 + i * 18}">${s.label}</text>`);
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}
