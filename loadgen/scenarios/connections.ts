import { directConversationId } from "../../server/core/conversation-id.js";
import type { DeviceSpec, SendEntry } from "../protocol.js";
import type { Figure, Scenario } from "../scenario.js";
import { openRamp, shard, sum } from "../scenario.js";
import { SendLedger } from "../send-ledger.js";

const KB = 1024;

/**
 * `connections`: opens N long connections at the connect rate, holds them with heartbeats, and
 * measures connect time and rate, failures, heartbeat round trips, and the server's memory per
 * connection from its /stats endpoint. With `--probe 1` (default) every device then exchanges one
 * message with a partner device, so the run also proves the held connections still deliver.
 */
export const connectionsScenario: Scenario = {
  name: "connections",
  summary: "hold N long connections with heartbeats: connect rate, failures, heartbeat RTT, server memory per connection",
  params: [
    { name: "connections", fallback: 1000, min: 1, doc: "devices (one long connection each) to open and hold" },
    { name: "hold-s", fallback: 30, doc: "how long to hold them once all are up" },
    { name: "probe", fallback: 1, doc: "1: at the end each device sends one message to its partner device (delivery check)" },
    { name: "probe-rate", fallback: 500, min: 1, doc: "probe messages per second (all processes)" },
  ],
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
    ctx.phase("ramp");
    const opened = await openRamp(ctx, shards);
    const live = sum(opened, (r) => r.live);
    const rampS = Math.max(...opened.map((r) => r.elapsedMs)) / 1000;
    ctx.log(`connections: ${live}/${n} live after ${rampS.toFixed(1)} s`);

    ctx.phase("hold");
    // Let the server settle after the ramp before its memory is read.
    await ctx.sleep(2000);
    const held = await ctx.probe();
    await ctx.sleep(params["hold-s"]! * 1000);
    const after = await ctx.probe();
    // Heartbeat round trips of the ramp and hold only: the probe's sends load the server and
    // would show up in them.
    const atHoldEnd = await pool.each(() => ({ op: "collect" as const }));
    const dropsDuringHold = sum(atHoldEnd, (r) => r.counters.drops);
    const holdRtt = atHoldEnd.map((r) => r.histograms.rtt);

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
    const connectFailures = sum(opened, (r) => r.failed);
    const figures: Figure[] = [
      { name: "connections requested", value: n, unit: "" },
      { name: "connections live after ramp", value: live, unit: "" },
      { name: "connect failures", value: connectFailures, unit: "" },
      { name: "ramp duration", value: rampS, unit: "s" },
      { name: "connect rate achieved", value: rampS > 0 ? live / rampS : 0, unit: "/s" },
      { name: "connections lost (ramp and hold)", value: dropsDuringHold, unit: "" },
      { name: "server connections (end of hold)", value: after.connections, unit: "" },
      { name: "server processes", value: after.processes.length, unit: "" },
      { name: "server RSS before", value: before.rssBytes / KB / KB, unit: "MiB" },
      { name: "server RSS after ramp", value: held.rssBytes / KB / KB, unit: "MiB" },
      { name: "server RSS end of hold", value: after.rssBytes / KB / KB, unit: "MiB" },
      { name: "server RSS per connection (after ramp)", value: perConnection(held, held.rssBytes - before.rssBytes), unit: "KB" },
      { name: "server heap per connection (after ramp)", value: perConnection(held, held.heapUsedBytes - before.heapUsedBytes), unit: "KB" },
      { name: "server RSS per connection", value: perConnection(after, after.rssBytes - before.rssBytes), unit: "KB" },
      { name: "server heap per connection", value: perConnection(after, after.heapUsedBytes - before.heapUsedBytes), unit: "KB" },
    ];
    const failures: string[] = [];
    if (connectFailures > options.maxConnectFailures) failures.push(`${connectFailures} connect failures (allowed: ${options.maxConnectFailures})`);
    if (dropsDuringHold > options.maxDrops) failures.push(`${dropsDuringHold} connections lost during ramp and hold (allowed: ${options.maxDrops})`);
    return {
      figures,
      latencies: [
        { name: "connect", label: "connect (start to live, incl. first sync)" },
        { name: "rtt", label: "heartbeat round trip (ramp and hold)" },
        ...(probe ? [{ name: "delivery" as const, label: "probe message delivery" }] : []),
      ],
      histograms: { rtt: holdRtt },
      expect: [...ledger.expectations()],
      failures,
      notes: [
        "Server memory per connection = (RSS at the end of the hold - RSS before the ramp) / (server connections at the end - before); 'after ramp' reads it 2 s after the last connection. Both include whatever the server allocated meanwhile and has not collected yet (heartbeats, GC slack).",
      ],
      server: { before, after },
    };
  },
};
