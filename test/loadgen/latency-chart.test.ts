import { describe, expect, it } from "vitest";
import { renderLatencyChart } from "../../loadgen/latency-chart.js";
import type { TimelinePoint } from "../../loadgen/progress-board.js";

const none = { count: 0, p50Ms: 0, p99Ms: 0, p999Ms: 0 };
const point = (tS: number, delivery = none, rtt = none): TimelinePoint => ({ tS, phase: "send", live: 1, sentPerS: 0, receivedPerS: 0, errors: 0, delivery, rtt });

describe("renderLatencyChart()", () => {
  it("draws p50, p99 and p99.9 of delivery latency per interval, with the phases", () => {
    const svg = renderLatencyChart(
      [point(1, { count: 10, p50Ms: 2, p99Ms: 9, p999Ms: 30 }), point(2, { count: 10, p50Ms: 3, p99Ms: 12, p999Ms: 80 })],
      [{ name: "ramp", tS: 0 }, { name: "send", tS: 0.5 }],
      "run",
    )!;
    expect(svg).toMatch(/^<svg /);
    expect(svg.match(/<polyline /g)).toHaveLength(3);
    expect(svg).toContain("end-to-end delivery latency");
    expect(svg).toContain(">p99.9<");
    expect(svg).toContain(" ramp<");
    expect(svg).toContain(" send<");
  });

  it("falls back to heartbeat round trips, and draws nothing without samples", () => {
    expect(renderLatencyChart([point(1, none, { count: 3, p50Ms: 0.5, p99Ms: 1, p999Ms: 2 })], [], "run")).toContain("heartbeat round trip");
    expect(renderLatencyChart([point(1), point(2)], [], "run")).toBeUndefined();
  });
});
