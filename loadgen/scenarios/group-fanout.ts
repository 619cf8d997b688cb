import { LatencyHistogram, type LatencySummary } from "../latency-histogram.js";
import type { DeviceSpec, SendEntry, SendResult, WindowResult } from "../protocol.js";
import { commandDelta } from "../redis-stats.js";
import type { Figure, Scenario, ServerUsage } from "../scenario.js";
import { openRamp, shard, sum } from "../scenario.js";
import { SendLedger } from "../send-ledger.js";

/** Members per CreateGroup / AddMembers call (the API's bound). */
const MEMBERS_PER_CALL = 1000;

/**
 * `group-fanout`: G groups of M members, one device each; S senders spread over the groups send
 * at R messages per second in total for D seconds, optionally in rate steps. Reports, per step
 * and in total, deliveries per second and the end-to-end latency from the send's due time (in
 * the body) to receipt on each other member, the server's CPU per delivery, pushes out of
 * order, and (with --redis-url) Redis commands per message.
 */
export const groupFanoutScenario: Scenario = {
  name: "group-fanout",
  summary: "G groups of M members, S senders at R msg/s (in rate steps): deliveries per second, end-to-end latency, server CPU per delivery, pushes out of order, Redis commands per message",
  params: [
    { name: "groups", fallback: 10, min: 1, doc: "groups" },
    { name: "members", fallback: 50, min: 2, doc: "members per group (one device each)" },
    { name: "senders", fallback: 10, min: 1, doc: "sending members in total, spread over the groups" },
    { name: "rate", fallback: 100, min: 1, doc: "messages per second, all senders together" },
    { name: "duration-s", fallback: 30, min: 1, doc: "how long the senders send (per step)" },
    { name: "steps", fallback: 1, min: 1, doc: "rate steps: the senders send --duration-s at each rate in turn, each step settled before the next" },
    { name: "rate-step", fallback: 0, doc: "messages per second added at each step (0: the first rate again, so R, 2R, 3R...)" },
    { name: "max-p99-ms", fallback: 0, doc: "stop stepping after a step whose end-to-end p99 is above this (0: run every step)" },
  ],
  deviceKinds: ["lean", "sdk"],
  devices: (p) => p.groups! * p.members!,
  validate(p) {
    if (p.senders! > p.groups! * p.members!) throw new Error("--senders cannot exceed --groups x --members");
  },
  async run(ctx) {
    const { options, params, pool } = ctx;
    const groups = params.groups!;
    const members = params.members!;
    const userOf = (g: number, m: number) => `f${ctx.runId}-g${g}-m${m}`;

    ctx.phase("setup");
    const groupIds: string[] = [];
    for (let g = 0; g < groups; g++) {
      const owner = userOf(g, 0);
      const others = Array.from({ length: members - 1 }, (_, m) => userOf(g, m + 1));
      const client = ctx.conversations(owner);
      const { conversation } = await client.createGroup({ title: `loadgen ${ctx.runId} ${g}`, memberUserIds: others.slice(0, MEMBERS_PER_CALL) });
      const id = conversation?.conversationId;
      if (id === undefined) throw new Error("CreateGroup returned no conversation");
      for (let i = MEMBERS_PER_CALL; i < others.length; i += MEMBERS_PER_CALL) {
        await client.addMembers({ conversationId: id, userIds: others.slice(i, i + MEMBERS_PER_CALL) });
      }
      groupIds.push(id);
    }

    const specs: DeviceSpec[] = [];
    for (let g = 0; g < groups; g++) {
      for (let m = 0; m < members; m++) specs.push({ deviceId: userOf(g, m), userId: userOf(g, m), conversations: [groupIds[g]!] });
    }
    const shards = shard(specs, pool.size);
    const shardOf = new Map(specs.map((s, i) => [s.deviceId, i % pool.size]));

    ctx.phase("ramp");
    const opened = await openRamp(ctx, shards);
    const live = sum(opened, (r) => r.live);
    ctx.log(`group-fanout: ${live}/${specs.length} devices live`);

    const entries: SendEntry[][] = shards.map(() => []);
    for (let k = 0; k < params.senders!; k++) {
      const g = k % groups;
      const deviceId = userOf(g, Math.floor(k / groups) % members);
      entries[shardOf.get(deviceId)!]!.push({ deviceId, conversationId: groupIds[g]! });
    }
    const durationMs = params["duration-s"]! * 1000;
    const ledger = new SendLedger();
    const steps: Step[] = [];
    const allSent: SendResult[] = [];
    let settledS = 0;
    await pool.each(() => ({ op: "window" as const }));
    for (let k = 0; k < params.steps!; k++) {
      const rate = params.rate! + k * (params["rate-step"]! === 0 ? params.rate! : params["rate-step"]!);
      ctx.phase(params.steps! > 1 ? `send ${rate}/s` : "send");
      const usage0 = ctx.serverUsage();
      const redis0 = await ctx.redisCommands();
      const sent = await pool.each((w) => ({
        op: "send" as const,
        entries: entries[w]!,
        ratePerS: (rate * entries[w]!.length) / params.senders!,
        count: 0,
        durationMs,
        ackTimeoutMs: 30_000,
      }));
      allSent.push(...sent);
      for (const r of sent) ledger.merge(r.ledger);
      const expect = [...ledger.expectations()];
      ctx.phase(params.steps! > 1 ? `settle ${rate}/s` : "settle");
      const settled = await pool.each(() => ({ op: "settle" as const, expect, timeoutMs: options.settleTimeoutS * 1000 }));
      settledS = Math.max(...settled.map((x) => x.elapsedMs)) / 1000;
      const usage1 = ctx.serverUsage();
      const redis1 = await ctx.redisCommands();
      const window = await pool.each(() => ({ op: "window" as const }));
      const step = summariseStep(rate, sent, window, steps[steps.length - 1]?.totals, usage0, usage1, redis0, redis1);
      steps.push(step);
      ctx.log(`group-fanout: ${rate} msg/s: ${Math.round(step.deliveriesPerS)} deliveries/s, p99 ${step.delivery.p99Ms.toFixed(1)} ms`);
      if (params["max-p99-ms"]! > 0 && step.delivery.p99Ms > params["max-p99-ms"]!) break;
    }
    const sent = allSent;
    const counters = (await pool.each(() => ({ op: "collect" as const }))).map((r) => r.counters);

    const acked = sum(sent, (r) => r.acked);
    const firstDue = Math.min(...sent.filter((r) => r.written > 0).map((r) => r.firstDueMs));
    const lastReceipt = Math.max(...counters.map((c) => c.lastReceiptMs));
    const deliveries = sum(counters, (c) => c.received);
    const windowS = lastReceipt > firstDue ? (lastReceipt - firstDue) / 1000 : 0;
    const sendS = (durationMs / 1000) * steps.length;
    const best = steps.filter((x) => x.delivery.count > 0 && x.delivery.p99Ms < P99_TARGET_MS).sort((a, b) => b.deliveriesPerS - a.deliveriesPerS)[0];
    const figures: Figure[] = [
      { name: "devices live", value: live, unit: "" },
      { name: "connect failures", value: sum(opened, (r) => r.failed), unit: "" },
      { name: "messages sent (acknowledged)", value: acked, unit: "" },
      { name: "send failures", value: sum(sent, (r) => r.failed), unit: "" },
      { name: "send rate achieved", value: acked / sendS, unit: "/s" },
      { name: "sender fell behind schedule by (max)", value: Math.max(...sent.map((r) => r.behindMaxMs)), unit: "ms" },
      { name: "deliveries to other members", value: deliveries, unit: "" },
      { name: "deliveries expected", value: acked * (members - 1), unit: "" },
      { name: "deliveries per second (first send to last receipt)", value: windowS > 0 ? deliveries / windowS : 0, unit: "/s" },
      { name: "settle time after the last send", value: settledS, unit: "s" },
      { name: "pushes out of order (delivery checker)", value: sum(counters, (c) => c.outOfOrder), unit: "" },
      { name: "pushes duplicated (delivery checker)", value: sum(counters, (c) => c.duplicates), unit: "" },
      { name: `highest deliveries per second with p99 < ${P99_TARGET_MS} ms (steps)`, value: best?.deliveriesPerS ?? 0, unit: "/s" },
      { name: `at messages per second`, value: best?.rate ?? 0, unit: "/s" },
    ];
    const usageKnown = steps.every((x) => x.serverCpuUsPerDelivery !== undefined);
    const failures: string[] = [];
    const connectFailures = sum(opened, (r) => r.failed);
    if (connectFailures > options.maxConnectFailures) failures.push(`${connectFailures} connect failures (allowed: ${options.maxConnectFailures})`);
    if (sum(sent, (r) => r.failed) > 0) failures.push(`${sum(sent, (r) => r.failed)} sends failed`);
    const redisKnown = steps.some((x) => x.redisPerMessage !== undefined);
    return {
      figures,
      tables: [
        {
          title: "Rate steps",
          columns: [
            "messages/s",
            "sent",
            "deliveries",
            "deliveries/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            ...(usageKnown ? ["server µs/delivery", "server cores"] : []),
            "load generator µs/delivery",
            "out of order",
            ...(redisKnown ? ["Redis commands/message", "Redis commands"] : []),
          ],
          rows: steps.map((x) => [
            x.rate,
            x.acked,
            x.deliveries,
            x.deliveriesPerS,
            x.delivery.p50Ms,
            x.delivery.p99Ms,
            x.delivery.p999Ms,
            x.delivery.maxMs,
            ...(usageKnown ? [x.serverCpuUsPerDelivery!, x.serverCores!] : []),
            x.clientCpuUsPerDelivery,
            x.outOfOrder,
            ...(redisKnown ? [x.redisPerMessage ?? 0, x.redisTop ?? ""] : []),
          ]),
        },
      ],
      latencies: [
        { name: "delivery", label: "end to end (send due time to receipt)" },
        { name: "deliveryFromWrite", label: "end to end (send written to receipt)" },
        { name: "ack", label: "send acknowledged (due time to ack)" },
        { name: "connect", label: "connect (start to live)" },
        { name: "rtt", label: "heartbeat round trip" },
      ],
      expect: [...ledger.expectations()],
      failures,
      notes: [
        "Latency is measured from the time the pacer scheduled each send (carried in the body), so a sender that falls behind shows up in the figures (no coordinated omission); 'send written to receipt' excludes that queueing.",
        "Sender and receiver clocks are performance.timeOrigin + performance.now() of processes on the same machine.",
        "Per step: deliveries/s over the step's first due send to its last receipt; server µs/delivery = CPU of every server process (workers and primary, /proc) from the step's first send to its settle, over the deliveries of the step; Redis commands/message = calls in INFO commandstats over the step (INFO itself excluded) over the messages acknowledged.",
        "Lean devices check every push exactly as the server sent it (out of order counts pushes whose prev_seq is not the device's last seq); SDK devices are checked after the SDK's own ordering.",
      ],
    };
  },
};

/** The latency bound the highest-rate figure is read against. */
const P99_TARGET_MS = 100;

/** One rate step's figures. */
interface Step {
  readonly rate: number;
  readonly acked: number;
  readonly deliveries: number;
  readonly deliveriesPerS: number;
  readonly delivery: LatencySummary;
  readonly serverCpuUsPerDelivery: number | undefined;
  readonly serverCores: number | undefined;
  readonly clientCpuUsPerDelivery: number;
  readonly outOfOrder: number;
  readonly redisPerMessage: number | undefined;
  /** The commands behind redisPerMessage, most frequent first. */
  readonly redisTop: string | undefined;
  /** Counters summed over the client processes at the step's end, for the next step's deltas. */
  readonly totals: { readonly received: number; readonly cpuMs: number; readonly outOfOrder: number };
}

function summariseStep(
  rate: number,
  sent: readonly SendResult[],
  window: readonly WindowResult[],
  previous: Step["totals"] | undefined,
  usage0: ServerUsage | undefined,
  usage1: ServerUsage | undefined,
  redis0: ReadonlyMap<string, number> | undefined,
  redis1: ReadonlyMap<string, number> | undefined,
): Step {
  const totals = {
    received: sum(window, (w) => w.counters.received),
    cpuMs: sum(window, (w) => w.counters.cpuMs),
    outOfOrder: sum(window, (w) => w.counters.outOfOrder),
  };
  const deliveries = totals.received - (previous?.received ?? 0);
  const acked = sum(sent, (r) => r.acked);
  const firstDue = Math.min(...sent.filter((r) => r.written > 0).map((r) => r.firstDueMs));
  const lastReceipt = Math.max(...window.map((w) => w.counters.lastReceiptMs));
  const spanS = lastReceipt > firstDue ? (lastReceipt - firstDue) / 1000 : 0;
  const delivery = LatencyHistogram.merge(window.map((w) => w.histograms.delivery)).summary();
  const serverCpuMs = usage0 !== undefined && usage1 !== undefined ? usage1.cpuMs - usage0.cpuMs : undefined;
  let redisPerMessage: number | undefined;
  let redisTop: string | undefined;
  if (redis0 !== undefined && redis1 !== undefined) {
    const delta = [...commandDelta(redis0, redis1)].sort((a, b) => b[1] - a[1]);
    redisPerMessage = acked > 0 ? delta.reduce((n, [, calls]) => n + calls, 0) / acked : 0;
    redisTop = delta.slice(0, 4).map(([command, calls]) => `${command} ${(calls / Math.max(1, acked)).toFixed(2)}`).join(", ");
  }
  return {
    rate,
    acked,
    deliveries,
    deliveriesPerS: spanS > 0 ? deliveries / spanS : 0,
    delivery,
    serverCpuUsPerDelivery: serverCpuMs === undefined ? undefined : deliveries > 0 ? (serverCpuMs * 1000) / deliveries : 0,
    serverCores: serverCpuMs === undefined || spanS === 0 ? undefined : serverCpuMs / 1000 / spanS,
    clientCpuUsPerDelivery: deliveries > 0 ? ((totals.cpuMs - (previous?.cpuMs ?? 0)) * 1000) / deliveries : 0,
    outOfOrder: totals.outOfOrder - (previous?.outOfOrder ?? 0),
    redisPerMessage,
    redisTop,
    totals,
  };
}
