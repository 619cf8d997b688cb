/**
 * Group fan-out benchmark: `npm run bench:fanout [-- --members 1000 --rates 8,16,32,64
 * --duration-s 10 --workers 1 --receivers 2]`. One group of M members, one lean long
 * connection each (loadgen/lean-connection.ts: a raw HTTP/2 gRPC stream, so the load tool's
 * own cost stays low), spread over `receivers` client processes and four loopback source
 * addresses; one member sends at each rate in turn. Per rate it prints deliveries per
 * second, end-to-end latency from the send's due time (p50/p99/p99.9), server CPU per
 * delivery (from /proc, every server process), pushes that arrived out of seq order, and
 * deliveries missing at the end. Figures, not a test.
 *
 * `--offline-push on` configures offline push through a local webhook receiver (which answers
 * 204 at once) and adds `--offline-members` members who never connect, each with a registered
 * device (notified after a 1 s grace): the cost of the push homes beside the fan-out (every member online is still reported
 * to its home per message), and of notifying the offline ones (printed: notifications taken).
 */
import { fork } from "node:child_process";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as hdr from "hdr-histogram-js";
import { ConversationService } from "../gen/im/v1/conversation_pb.js";
import { PushPlatform, PushService } from "../gen/im/v1/push_pb.js";
import { DEV_JWT_SECRET, mintToken } from "../server/gateway/auth.js";
import { LeanConnection } from "../loadgen/lean-connection.js";
import { decodeLoadBody, encodeLoadBody, LOADGEN_CONTENT_TYPE, wallClockMs } from "../loadgen/message-body.js";
import { fetchStats, startNodeProcess } from "../test/support/node-process.js";
import { cpuSeconds, serverEnv } from "./support/proc.js";

const ROLE = process.env.FANOUT_BENCH_ROLE;

interface ReceiverReport {
  readonly received: number;
  readonly outOfOrder: number;
  readonly histogram: string;
  /** Connections that ended so far, by how (gRPC status and message). */
  readonly closed: Record<string, number>;
}

if (ROLE === "receiver") {
  await receiver();
} else {
  await coordinator();
}

/** A receiver process: opens its connections, counts and times every push. */
async function receiver(): Promise<void> {
  const { url, tokens } = JSON.parse(await new Promise<string>((resolve) => process.once("message", (m: { args: string }) => resolve(m.args)))) as { url: string; tokens: string[] };
  let histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: 3 });
  let received = 0;
  let outOfOrder = 0;
  const closed: Record<string, number> = {};
  const connections: LeanConnection[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const last = new Map<string, number>();
    connections.push(
      await LeanConnection.open({
        url,
        token: tokens[i]!,
        localAddress: `127.0.0.${2 + (i % 4)}`,
        events: {
          onPush(push) {
            received++;
            const before = last.get(push.conversationId) ?? 0;
            if (push.seq <= before) outOfOrder++;
            last.set(push.conversationId, Math.max(before, push.seq));
            const body = decodeLoadBody(LOADGEN_CONTENT_TYPE, push.data);
            if (body !== undefined) histogram.recordValue(Math.max(1, Math.round((wallClockMs() - body.dueMs) * 1000)));
          },
          onClose(status, message) {
            const how = `${status || "session"} ${message}`.trim();
            closed[how] = (closed[how] ?? 0) + 1;
          },
        },
      }),
    );
  }
  process.send!({ type: "open", connections: connections.length });
  process.on("message", (message: { type: string }) => {
    if (message.type === "report") {
      const report: ReceiverReport = { received, outOfOrder, histogram: hdr.encodeIntoCompressedBase64(histogram), closed: { ...closed } };
      process.send!({ type: "report", report });
      histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: 3 });
      received = 0;
      outOfOrder = 0;
    } else if (message.type === "stop") {
      for (const c of connections) c.close();
      setTimeout(() => process.exit(0), 200);
    }
  });
}

/** CPU seconds (user + system) of a process so far, from /proc. */

async function coordinator(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      members: { type: "string", default: "1000" },
      rates: { type: "string", default: "8,16,32,64" },
      "duration-s": { type: "string", default: "10" },
      workers: { type: "string", default: "1" },
      receivers: { type: "string", default: "2" },
      "body-bytes": { type: "string", default: "100" },
      "offline-push": { type: "string", default: "off" },
      "offline-members": { type: "string", default: "0" },
    },
  });
  const offlinePush = args["offline-push"] === "on";
  const offlineMembers = offlinePush ? Number(args["offline-members"]) : 0;
  let notifications = 0;
  const webhook = offlinePush
    ? http.createServer((req, res) => {
        req.resume().on("end", () => {
          notifications++;
          res.writeHead(204).end();
        });
      })
    : undefined;
  if (webhook !== undefined) await new Promise<void>((resolve) => webhook.listen(0, "127.0.0.1", resolve));
  const pushArgs =
    webhook === undefined
      ? []
      : ["--push-webhook-url", `http://127.0.0.1:${(webhook.address() as AddressInfo).port}/push`, "--push-webhook-secret", "bench", "--push-grace-ms", "1000", "--push-group-members-max", String(1_000_000)];
  const members = Number(args.members);
  const rates = args.rates!.split(",").map(Number);
  const durationS = Number(args["duration-s"]);
  const workers = Number(args.workers);
  const receiverCount = Number(args.receivers);
  const bodyBytes = Number(args["body-bytes"]);
  const run = Math.random().toString(36).slice(2, 8);

  const dir = mkdtempSync(join(tmpdir(), "fanout-bench-"));
  // One sender carries the whole rate without waiting for answers: past the server's
  // capacity its sends pile up unanswered, which the default bound of 64 in flight per
  // connection would end with a disconnect. The bench measures the capacity, so the bound is wide.
  const node = await startNodeProcess(
    ["--workers", String(workers), "--port", "0", "--data-dir", dir, "--sqlite-sync", "normal", "--max-group-members", String(members + offlineMembers), "--inflight-max", "100000", ...pushArgs],
    serverEnv(),
  );
  const url = `http://127.0.0.1:${node.port}`;
  const pids = new Set<number>();
  for (let i = 0; i < 200 && pids.size < workers; i++) pids.add((await fetchStats(node.port)).pid);
  process.stdout.write(
    `fan-out benchmark: ${members} members${offlinePush ? ` online and ${offlineMembers} offline with a device each, offline push on` : ""}, ${workers} worker(s) ${[...pids].join(",")}, ${receiverCount} receiver processes, ${bodyBytes}-byte bodies, ${durationS} s per rate; ` +
      `${cpus().length} x ${cpus()[0]?.model ?? "?"}, Node ${process.version}, load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}\n`,
  );
  const users = Array.from({ length: members }, (_, i) => `fb${run}-m${i}`);
  const tokens = await Promise.all(users.map((u) => mintToken(DEV_JWT_SECRET, u)));
  const conversations = createClient(ConversationService, createGrpcTransport({ baseUrl: url }));
  const headers = { authorization: `Bearer ${tokens[0]}` };
  const { conversation } = await conversations.createGroup({ title: "fanout", memberUserIds: users.slice(1, 1000) }, { headers });
  const group = conversation!.conversationId;
  for (let i = 1000; i < members; i += 1000) await conversations.addMembers({ conversationId: group, userIds: users.slice(i, i + 1000) }, { headers });
  if (offlineMembers > 0) {
    const away = Array.from({ length: offlineMembers }, (_, i) => `fb${run}-away${i}`);
    const push = createClient(PushService, createGrpcTransport({ baseUrl: url }));
    for (const userId of away) {
      await push.registerDevice({ deviceId: "phone", platform: PushPlatform.FCM, token: `t-${userId}` }, { headers: { authorization: `Bearer ${await mintToken(DEV_JWT_SECRET, userId)}` } });
    }
    for (let i = 0; i < away.length; i += 1000) await conversations.addMembers({ conversationId: group, userIds: away.slice(i, i + 1000) }, { headers });
  }

  const receivers = Array.from({ length: receiverCount }, (_, r) =>
    fork(process.argv[1]!, [], {
      execArgv: process.execArgv,
      env: { ...process.env, FANOUT_BENCH_ROLE: "receiver" },
    }),
  );
  receivers.forEach((r, k) => r.send({ args: JSON.stringify({ url, tokens: tokens.slice(1).filter((_, i) => i % receiverCount === k) }) }));
  await Promise.all(receivers.map((r) => new Promise<void>((resolve) => r.once("message", () => resolve()))));
  // Sends the server refused (a RequestError answer, ConnectResponse field 9): a figure that
  // counts them as sent would hide a limit or an overload.
  let refused = 0;
  let senderClosed: string | undefined;
  const sender = await LeanConnection.open({
    url,
    token: tokens[0]!,
    events: {
      onFrame(field, _requestId, bytes) {
        if (field === 9) refused++;
        // Field 10: the server's Disconnect frame.
        if (field === 10) senderClosed = `disconnected: ${Buffer.from(bytes).toString("latin1").replace(/[^ -~]+/g, " ").trim()}`;
      },
      onClose: (status, message) => (senderClosed ??= `${status || "session"} ${message}`.trim()),
    },
  });
  const report = () =>
    Promise.all(
      receivers.map(
        (r) =>
          new Promise<ReceiverReport>((resolve) => {
            r.once("message", (m: { report: ReceiverReport }) => resolve(m.report));
            r.send({ type: "report" });
          }),
      ),
    );

  process.stdout.write("\n| messages/s | deliveries/s | p50 ms | p99 ms | p99.9 ms | server CPU µs/delivery | server cores | out of order | missing | sends refused |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
  let n = 0;
  try {
    for (const rate of rates) {
      await report();
      const refusedBefore = refused;
      const cpuBefore = [...pids].reduce((s, p) => s + cpuSeconds(p), 0);
      const started = wallClockMs();
      const total = Math.round(rate * durationS);
      for (let i = 0; i < total; i++) {
        const due = started + (i * 1000) / rate;
        const wait = due - wallClockMs();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        const body = encodeLoadBody({ dueMs: due, writtenMs: wallClockMs(), from: users[0]!, n: ++n }, bodyBytes);
        sender.request({ case: "send", value: { $typeName: "im.v1.SendRequest", target: { case: "conversationId", value: group }, clientMsgId: `b${n}`, body: { $typeName: "im.v1.MessageBody", contentType: LOADGEN_CONTENT_TYPE, data: body } } });
      }
      await new Promise((r) => setTimeout(r, 2000));
      const elapsedS = (wallClockMs() - started) / 1000 - 2;
      const cpu = [...pids].reduce((s, p) => s + cpuSeconds(p), 0) - cpuBefore;
      const reports = await report();
      const merged = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: 3 });
      for (const r of reports) merged.add(hdr.decodeFromCompressedBase64(r.histogram));
      const received = reports.reduce((s, r) => s + r.received, 0);
      const expected = total * (members - 1);
      const ms = (q: number) => (merged.getValueAtPercentile(q) / 1000).toFixed(1);
      process.stdout.write(
        `| ${rate} | ${Math.round(received / Math.max(elapsedS, durationS))} | ${ms(50)} | ${ms(99)} | ${ms(99.9)} | ${((cpu * 1e6) / Math.max(1, received)).toFixed(1)} | ${(cpu / (elapsedS + 2)).toFixed(2)} | ${reports.reduce((s, r) => s + r.outOfOrder, 0)} | ${expected - received} | ${refused - refusedBefore} |\n`,
      );
      // A rate's figures mean nothing once connections are gone (a slow consumer cut off, a
      // heartbeat missed under load): say so, and stop.
      const closed: Record<string, number> = {};
      for (const r of reports) for (const [how, count] of Object.entries(r.closed)) closed[how] = (closed[how] ?? 0) + count;
      if (senderClosed !== undefined || Object.keys(closed).length > 0) {
        process.stdout.write(`\nconnections ended: ${JSON.stringify(closed)}${senderClosed === undefined ? "" : `; the sender's: ${senderClosed}`}; stopping here\n`);
        break;
      }
    }
  } finally {
    for (const r of receivers) r.send({ type: "stop" });
    sender.close();
    node.kill("SIGTERM");
    await node.exited;
    if (webhook !== undefined) {
      process.stdout.write(`\noffline push: ${notifications} notifications taken by the webhook\n`);
      webhook.close();
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

