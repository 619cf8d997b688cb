import { directConversationId } from "../../server/core/conversation-id.js";
import { LatencyHistogram } from "../latency-histogram.js";
import type { DeviceSpec, SendEntry } from "../protocol.js";
import type { Figure, Scenario, ServerUsage } from "../scenario.js";
import { openRamp, shard, sum } from "../scenario.js";
import { SendLedger } from "../send-ledger.js";

const KB = 1024;

/**
 * `connections`: opens N long connections at the connect rate, holds them with heartbeats, and
 * measures connect time and rate, failures, heartbeat round trips, and what the server pays
 * per connection: memory (RSS of every server process, after the ramp and at the end of the
 * hold), CPU per accepted connection and CPU per heartbeat while idle. With `--probe 1`
 * (default) every device then exchanges one message with a partner device, so the run also
 * proves the held connections still deliver.
 */
export const connectionsScenario: Scenario = {
  name: "connections",
  summary: "hold N long connections with heartbeats: connect rate, failures, heartbeat RTT, server memory and CPU per connection",
  params: [
    { name: "connections", fallback: 1000, min: 1, doc: "devices (one long connection each) to open and hold" },
    { name: "hold-s", fallback: 30, doc: "how long to hold them once all are up" },
    { name: "probe", fallback: 1, doc: "1: at the end each device sends one message to its partner device (delivery check)" },
    { name: "probe-rate", fallback: 500, min: 1, doc: "probe messages per second (all processes)" },
  ],
  deviceKinds: ["lean", "sdk"],
  devices: (p) => p.connections!,
  async run(ctx) {
    const { options, params, pool } = ctx;
    const n = params.connections!;
    const probe = params.probe! > 0;
    const users = Array.from({ length: n }, (_, i) => `c${ctx.runId}-${i}`);
    const partnerOf = (i: number) => ((i ^ 1) < n ? i ^ 1 : -1);
    const specs: DeviceSpec[] = users.map((userId, i) => {
      const p = partnerOf(i);
      return { deviceId: userId, userId, conversations: probe && p >= 0 ? [directConversationId(userId, users[p]!)] : [] };
    });
    const shards = shard(specs, pool.size);

    const before = await ctx.probe();
    const usageBefore = ctx.serverUsage();
    const clientsBefore = await pool.each(() => ({ op: "window" as const }));
    ctx.phase("ramp");
    const opened = await openRamp(ctx, shards);
    const usageRamp = ctx.serverUsage();
    const live = sum(opened, (r) => r.live);
    const rampS = Math.max(...opened.map((r) => r.elapsedMs)) / 1000;
    ctx.log(`connections: ${live}/${n} live after ${rampS.toFixed(1)} s`);

    ctx.phase("hold");
    // Let the server settle after the ramp before its memory is read.
    await ctx.sleep(2000);
    const held = await ctx.probe();
    const usageHeld = ctx.serverUsage();
    const rampEnd = await pool.each(() => ({ op: "window" as const }));
    await ctx.sleep(params["hold-s"]! * 1000);
    const usageEnd = ctx.serverUsage();
    const holdWindow = await pool.each(() => ({ op: "window" as const }));
    const after = await ctx.probe();
    // Heartbeat round trips of the ramp and hold only: the probe's sends load the server and
    // would show up in them.
    const atHoldEnd = await pool.each(() => ({ op: "collect" as const }));
    const dropsDuringHold = sum(atHoldEnd, (r) => r.counters.drops);
    const holdS = params["hold-s"]!;
    const heartbeats = holdWindow.reduce((k, w) => k + countOf(w.histograms.rtt), 0);
    const clientCpuHoldMs = sum(holdWindow, (w) => w.counters.cpuMs) - sum(rampEnd, (w) => w.counters.cpuMs);
    const clientRssGrowth = sum(holdWindow, (w) => w.counters.rssBytes) - sum(clientsBefore, (w) => w.counters.rssBytes);
    const clientCpuRampMs = sum(rampEnd, (w) => w.counters.cpuMs) - sum(clientsBefore, (w) => w.counters.cpuMs);

    const ledger = new SendLedger();
    if (probe) {
      ctx.phase("probe");
      const entries: SendEntry[][] = shards.map(() => []);
      specs.forEach((s, i) => {
        const p = partnerOf(i);
        if (p >= 0) entries[i % pool.size]!.push({ deviceId: s.deviceId, toUserId: users[p]! });
      });
      const sent = await pool.each((w) => ({
        op: "send" as const,
        entries: entries[w]!,
        ratePerS: params["probe-rate"]! / pool.size,
        count: entries[w]!.length,
        durationMs: Math.max(10_000, (2 * entries[w]!.length * 1000 * pool.size) / params["probe-rate"]!),
        ackTimeoutMs: 30_000,
      }));
      for (const r of sent) ledger.merge(r.ledger);
      const expect = [...ledger.expectations()];
      const settled = await pool.each(() => ({ op: "settle" as const, expect, timeoutMs: options.settleTimeoutS * 1000 }));
      if (settled.some((s) => !s.settled)) ctx.log(`connections: probe messages still lacking: ${sum(settled, (s) => s.lacking)}`);
    }

    const perConnection = (at: typeof after, bytes: number) => {
      const added = at.connections - before.connections;
      return added > 0 ? bytes / added / KB : 0;
    };
    /** Growth of the RSS of every server process (/proc) per connection the server holds. */
    const rssPerConnection = (at: ServerUsage | undefined, snapshot: typeof after) =>
      at === undefined || usageBefore === undefined ? undefined : perConnection(snapshot, at.rssBytes - usageBefore.rssBytes);
    const connectFailures = sum(opened, (r) => r.failed);
    const figures: Figure[] = [
      { name: "connections requested", value: n, unit: "" },
      { name: "connections live after ramp", value: live, unit: "" },
      { name: "connect failures", value: connectFailures, unit: "" },
      { name: "ramp duration", value: rampS, unit: "s" },
      { name: "connect rate achieved", value: rampS > 0 ? live / rampS : 0, unit: "/s" },
      { name: "connections lost (ramp and hold)", value: dropsDuringHold, unit: "" },
      { name: "server connections (end of hold)", value: after.connections, unit: "" },
      { name: "server processes answering /stats", value: after.processes.length, unit: "" },
      { name: "server RSS before", value: before.rssBytes / KB / KB, unit: "MiB" },
      { name: "server RSS after ramp", value: held.rssBytes / KB / KB, unit: "MiB" },
      { name: "server RSS end of hold", value: after.rssBytes / KB / KB, unit: "MiB" },
      { name: "server RSS per connection (after ramp)", value: perConnection(held, held.rssBytes - before.rssBytes), unit: "KB" },
      { name: "server heap per connection (after ramp)", value: perConnection(held, held.heapUsedBytes - before.heapUsedBytes), unit: "KB" },
      { name: "server RSS per connection", value: perConnection(after, after.rssBytes - before.rssBytes), unit: "KB" },
      { name: "server heap per connection", value: perConnection(after, after.heapUsedBytes - before.heapUsedBytes), unit: "KB" },
      { name: "heartbeats answered during the hold", value: heartbeats, unit: "" },
      { name: "heartbeats per second (hold)", value: holdS > 0 ? heartbeats / holdS : 0, unit: "/s" },
      { name: "heartbeats late (the previous one unanswered)", value: sum(atHoldEnd, (r) => r.counters.heartbeatsLate), unit: "" },
      { name: "load generator RSS growth per connection (all client processes, end of hold)", value: live > 0 ? clientRssGrowth / live / KB : 0, unit: "KB" },
      { name: "load generator CPU per connection opened (ramp)", value: live > 0 ? clientCpuRampMs / live : 0, unit: "ms" },
      { name: "load generator CPU per heartbeat (hold)", value: heartbeats > 0 ? clientCpuHoldMs / heartbeats : 0, unit: "ms" },
      { name: "load generator cores while holding", value: holdS > 0 ? clientCpuHoldMs / 1000 / holdS : 0, unit: "" },
    ];
    if (usageBefore !== undefined && usageRamp !== undefined && usageHeld !== undefined && usageEnd !== undefined) {
      const rampCpuMs = usageRamp.cpuMs - usageBefore.cpuMs;
      const holdCpuMs = usageEnd.cpuMs - usageHeld.cpuMs;
      figures.push(
        { name: "server processes (/proc: workers and primary)", value: usageBefore.pids.length, unit: "" },
        { name: "server RSS per connection, all server processes (/proc, after ramp)", value: rssPerConnection(usageHeld, held) ?? 0, unit: "KB" },
        { name: "server RSS per connection, all server processes (/proc, end of hold)", value: rssPerConnection(usageEnd, after) ?? 0, unit: "KB" },
        { name: "server CPU per accepted connection (ramp)", value: live > 0 ? rampCpuMs / live : 0, unit: "ms" },
        { name: "server cores while holding", value: holdS > 0 ? holdCpuMs / 1000 / holdS : 0, unit: "" },
        { name: "server CPU per heartbeat (hold, all server CPU over heartbeats)", value: heartbeats > 0 ? holdCpuMs / heartbeats : 0, unit: "ms" },
      );
    }
    const failures: string[] = [];
    if (connectFailures > options.maxConnectFailures) failures.push(`${connectFailures} connect failures (allowed: ${options.maxConnectFailures})`);
    if (dropsDuringHold > options.maxDrops) failures.push(`${dropsDuringHold} connections lost during ramp and hold (allowed: ${options.maxDrops})`);
    return {
      figures,
      latencies: [
        { name: "connect", label: options.device === "lean" ? "connect (start to registered: stream open and a first ping frame answered)" : "connect (start to live, incl. first sync)" },
        { name: "rttHold", label: `heartbeat round trip, hold only (${options.device === "lean" ? "HTTP/2 PING" : "SDK ping frame"})` },
        { name: "rtt", label: "heartbeat round trip, ramp and hold" },
        ...(probe ? [{ name: "delivery" as const, label: "probe message delivery" }] : []),
      ],
      histograms: { rtt: atHoldEnd.map((r) => r.histograms.rtt), rttHold: holdWindow.map((w) => w.histograms.rtt) },
      expect: [...ledger.expectations()],
      failures,
      notes: [
        "Server memory per connection = (RSS at the end of the hold - RSS before the ramp) / (server connections at the end - before); 'after ramp' reads it 2 s after the last connection. Both include whatever the server allocated meanwhile and has not collected yet (heartbeats, GC slack). The /stats figures sum the processes that answered /stats; the /proc figures sum every server process (workers and their primary) read from /proc.",
        "Server CPU per heartbeat = all the CPU the server processes used during the hold (heartbeats, its own liveness checks, GC, timers) / heartbeats answered in that time.",
      ],
      server: { before, after },
    };
  },
};

/** Values in an encoded histogram. */
function countOf(encoded: string): number {
  return LatencyHistogram.decode(encoded).count;
}
