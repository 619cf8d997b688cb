import type { DeviceSpec, SendEntry } from "../protocol.js";
import type { Figure, Scenario } from "../scenario.js";
import { openRamp, shard, sum } from "../scenario.js";
import { SendLedger } from "../send-ledger.js";

/** Members per CreateGroup / AddMembers call (the API's bound). */
const MEMBERS_PER_CALL = 1000;

/**
 * `group-fanout`: G groups of M members, one device each; S senders spread over the groups send
 * at R messages per second in total for D seconds. Reports deliveries per second and the
 * end-to-end latency from the send's due time (in the body) to receipt on each other member.
 */
export const groupFanoutScenario: Scenario = {
  name: "group-fanout",
  summary: "G groups of M members, S senders at R msg/s: deliveries per second, end-to-end latency",
  params: [
    { name: "groups", fallback: 10, min: 1, doc: "groups" },
    { name: "members", fallback: 50, min: 2, doc: "members per group (one device each)" },
    { name: "senders", fallback: 10, min: 1, doc: "sending members in total, spread over the groups" },
    { name: "rate", fallback: 100, min: 1, doc: "messages per second, all senders together" },
    { name: "duration-s", fallback: 30, min: 1, doc: "how long the senders send" },
  ],
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

    ctx.phase("send");
    const entries: SendEntry[][] = shards.map(() => []);
    for (let k = 0; k < params.senders!; k++) {
      const g = k % groups;
      const deviceId = userOf(g, Math.floor(k / groups) % members);
      entries[shardOf.get(deviceId)!]!.push({ deviceId, conversationId: groupIds[g]! });
    }
    const durationMs = params["duration-s"]! * 1000;
    const sent = await pool.each((w) => ({
      op: "send" as const,
      entries: entries[w]!,
      ratePerS: (params.rate! * entries[w]!.length) / params.senders!,
      count: 0,
      durationMs,
      ackTimeoutMs: 30_000,
    }));
    const ledger = new SendLedger();
    for (const r of sent) ledger.merge(r.ledger);
    const expect = [...ledger.expectations()];

    ctx.phase("settle");
    const settled = await pool.each(() => ({ op: "settle" as const, expect, timeoutMs: options.settleTimeoutS * 1000 }));
    const counters = (await pool.each(() => ({ op: "collect" as const }))).map((r) => r.counters);

    const acked = sum(sent, (r) => r.acked);
    const firstDue = Math.min(...sent.filter((r) => r.written > 0).map((r) => r.firstDueMs));
    const lastReceipt = Math.max(...counters.map((c) => c.lastReceiptMs));
    const deliveries = sum(counters, (c) => c.received);
    const windowS = lastReceipt > firstDue ? (lastReceipt - firstDue) / 1000 : 0;
    const figures: Figure[] = [
      { name: "devices live", value: live, unit: "" },
      { name: "connect failures", value: sum(opened, (r) => r.failed), unit: "" },
      { name: "messages sent (acknowledged)", value: acked, unit: "" },
      { name: "send failures", value: sum(sent, (r) => r.failed), unit: "" },
      { name: "send rate achieved", value: acked / (durationMs / 1000), unit: "/s" },
      { name: "sender fell behind schedule by (max)", value: Math.max(...sent.map((r) => r.behindMaxMs)), unit: "ms" },
      { name: "deliveries to other members", value: deliveries, unit: "" },
      { name: "deliveries expected", value: acked * (members - 1), unit: "" },
      { name: "deliveries per second (first send to last receipt)", value: windowS > 0 ? deliveries / windowS : 0, unit: "/s" },
      { name: "settle time after the last send", value: Math.max(...settled.map((s) => s.elapsedMs)) / 1000, unit: "s" },
    ];
    const failures: string[] = [];
    const connectFailures = sum(opened, (r) => r.failed);
    if (connectFailures > options.maxConnectFailures) failures.push(`${connectFailures} connect failures (allowed: ${options.maxConnectFailures})`);
    if (sum(sent, (r) => r.failed) > 0) failures.push(`${sum(sent, (r) => r.failed)} sends failed`);
    return {
      figures,
      latencies: [
        { name: "delivery", label: "end to end (send due time to receipt)" },
        { name: "deliveryFromWrite", label: "end to end (SDK send call to receipt)" },
        { name: "ack", label: "send acknowledged (due time to ack)" },
        { name: "connect", label: "connect (start to live)" },
        { name: "rtt", label: "heartbeat round trip" },
      ],
      expect,
      failures,
      notes: [
        "Latency is measured from the time the pacer scheduled each send (carried in the body), so a sender that falls behind shows up in the figures (no coordinated omission); 'SDK send call to receipt' excludes that queueing.",
        "Sender and receiver clocks are performance.timeOrigin + performance.now() of processes on the same machine.",
      ],
    };
  },
};
