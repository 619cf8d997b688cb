import { directConversationId } from "../../server/core/conversation-id.js";
import type { DeviceSpec, SendEntry } from "../protocol.js";
import type { Figure, Scenario } from "../scenario.js";
import { openRamp, shard, sum } from "../scenario.js";
import { SendLedger } from "../send-ledger.js";

/**
 * `offline-sync`: N users, each in C direct conversations with sender users, receive H messages
 * per conversation while online, go offline, receive K more each, then all reconnect at once
 * (or at `--reconnect-rate`) resuming from their cursors. Reports the time from the reconnect to
 * holding every message (distribution and completion) and any gap left.
 */
export const offlineSyncScenario: Scenario = {
  name: "offline-sync",
  summary: "N users offline, K messages arrive for them, all reconnect at once: time to fully synced, gap left",
  params: [
    { name: "users", fallback: 1000, min: 1, doc: "users that go offline (one device each)" },
    { name: "messages", fallback: 20, min: 1, doc: "messages per user while offline (spread over its conversations)" },
    { name: "conversations", fallback: 1, min: 1, doc: "direct conversations per user, each with a different sender" },
    { name: "senders", fallback: 10, min: 1, doc: "sender users (online throughout)" },
    { name: "history", fallback: 2, doc: "messages per conversation delivered live before going offline" },
    { name: "send-rate", fallback: 2000, min: 1, doc: "messages per second while the users are offline (all senders)" },
    { name: "reconnect-rate", fallback: 0, doc: "reconnects per second (0: all at once)" },
  ],
  // Resuming from cursors and syncing is the SDK's work: lean devices do not sync.
  deviceKinds: ["sdk"],
  devices: (p) => p.users! + p.senders!,
  validate(p) {
    if (p.conversations! > p.senders!) throw new Error("--conversations cannot exceed --senders (one sender per conversation)");
    if (p.messages! % p.conversations! !== 0) throw new Error("--messages must be a multiple of --conversations");
  },
  async run(ctx) {
    const { options, params, pool } = ctx;
    const n = params.users!;
    const c = params.conversations!;
    const users = Array.from({ length: n }, (_, i) => `o${ctx.runId}-${i}`);
    const senders = Array.from({ length: params.senders! }, (_, j) => `s${ctx.runId}-${j}`);
    const pairs: { user: string; sender: string; conversationId: string }[] = [];
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < c; k++) {
        const sender = senders[(i * c + k) % senders.length]!;
        pairs.push({ user: users[i]!, sender, conversationId: directConversationId(users[i]!, sender) });
      }
    }
    const conversationsOf = new Map<string, string[]>();
    for (const p of pairs) {
      for (const who of [p.user, p.sender]) {
        const list = conversationsOf.get(who) ?? [];
        list.push(p.conversationId);
        conversationsOf.set(who, list);
      }
    }
    const spec = (userId: string): DeviceSpec => ({ deviceId: userId, userId, conversations: conversationsOf.get(userId) ?? [] });
    const userSpecs = users.map(spec);
    const all = [...userSpecs, ...senders.map(spec)];
    const shards = shard(all, pool.size);
    const shardOf = new Map(all.map((s, i) => [s.deviceId, i % pool.size]));
    const senderSet = new Set(senders);
    const userShards = shards.map((s) => s.filter((d) => !senderSet.has(d.userId)));
    const entries: SendEntry[][] = shards.map(() => []);
    for (const p of pairs) entries[shardOf.get(p.sender)!]!.push({ deviceId: p.sender, toUserId: p.user });
    const ledger = new SendLedger();
    const sendPhase = async (perPair: number) => {
      const results = await pool.each((w) => ({
        op: "send" as const,
        entries: entries[w]!,
        ratePerS: (params["send-rate"]! * entries[w]!.length) / pairs.length,
        count: entries[w]!.length * perPair,
        durationMs: Math.ceil(((pairs.length * perPair) / params["send-rate"]!) * 1000 * 2) + 10_000,
        ackTimeoutMs: 30_000,
      }));
      for (const r of results) ledger.merge(r.ledger);
      return results;
    };

    ctx.phase("ramp");
    const opened = await openRamp(ctx, shards);
    ctx.log(`offline-sync: ${sum(opened, (r) => r.live)}/${all.length} devices live`);

    if (params.history! > 0) {
      ctx.phase("history");
      await sendPhase(params.history!);
      const expect = [...ledger.expectations()];
      await pool.each(() => ({ op: "settle" as const, expect, timeoutMs: options.settleTimeoutS * 1000 }));
    }

    ctx.phase("offline");
    await pool.each((w) => ({ op: "close" as const, deviceIds: userShards[w]!.map((d) => d.deviceId) }));
    const offlineSends = await sendPhase(params.messages! / c);
    const offlineAcked = sum(offlineSends, (r) => r.acked);
    const expect = [...ledger.expectations()];

    ctx.phase("reconnect");
    ctx.log(`offline-sync: ${offlineAcked} messages stored for ${n} offline users; reconnecting`);
    const wave = await pool.each((w) => ({
      op: "open" as const,
      devices: userShards[w]!,
      ratePerS: params["reconnect-rate"]! / pool.size,
      timeoutMs: options.settleTimeoutS * 1000,
      expect,
      recordLatency: false,
    }));
    const completionS = Math.max(...wave.map((r) => r.elapsedMs)) / 1000;
    const synced = sum(wave, (r) => r.synced);
    const gap = sum(wave, (r) => r.lacking);
    const figures: Figure[] = [
      { name: "users", value: n, unit: "" },
      { name: "conversations per user", value: c, unit: "" },
      { name: "messages stored while offline", value: offlineAcked, unit: "" },
      { name: "reconnect failures", value: sum(wave, (r) => r.failed), unit: "" },
      { name: "users fully synced", value: synced, unit: "" },
      { name: "gap left (messages not delivered)", value: gap, unit: "" },
      { name: "completion time (last user fully synced)", value: completionS, unit: "s" },
      { name: "catch-up throughput", value: completionS > 0 ? offlineAcked / completionS : 0, unit: "msg/s" },
    ];
    const failures: string[] = [];
    if (synced < n) failures.push(`${n - synced} of ${n} users were not fully synced within ${options.settleTimeoutS} s (gap: ${gap} messages)`);
    const sendFailures = ledger.totals().failures;
    if (sendFailures > 0) failures.push(`${sendFailures} sends failed`);
    return {
      figures,
      latencies: [
        { name: "sync", label: "time to fully synced (reconnect start to last message)" },
        { name: "connect", label: "connect (start to live, incl. sync)" },
        { name: "ack", label: "send acknowledged (due time to ack)" },
        { name: "rtt", label: "heartbeat round trip" },
      ],
      expect,
      failures,
      notes: ["Every user resumes from the cursors its SDK client held when it went offline; sync pages (has_more) are followed by the SDK."],
    };
  },
};
