// k6 scenario `group-fanout`: GROUPS groups of MEMBERS members (one VU and one long connection
// each); SENDERS_PER_GROUP members of every group send RATE_PER_SENDER messages per second for
// DURATION_S seconds, each body carrying its send time. Every member measures the end-to-end
// latency of the messages it receives and checks them: no duplicate, pushes in seq order, and
// (with a final sync) nothing missing.
//
//   k6 run -e TARGET=127.0.0.1:8080 -e GROUPS=10 -e MEMBERS=50 loadgen/k6/group-fanout.js
import { check } from "k6";
import { Stream, StatusOK } from "k6/net/grpc";
import { Counter, Trend } from "k6/metrics";
import { clearInterval, clearTimeout, setInterval, setTimeout } from "k6/timers";
import { auth, connect, CONNECT, CREATE_GROUP, loadBody, newClient, newRunId, RUNNERS, sentAt, SUMMARY_DIR, textSummary } from "./lib/im.js";

const GROUPS = Number(__ENV.GROUPS || 5);
const MEMBERS = Number(__ENV.MEMBERS || 20);
const SENDERS_PER_GROUP = Number(__ENV.SENDERS_PER_GROUP || 2);
const RATE_PER_SENDER = Number(__ENV.RATE_PER_SENDER || 5);
const DURATION_S = Number(__ENV.DURATION_S || 30);
/** Time for every VU to connect before the senders start. */
const CONNECT_S = Number(__ENV.CONNECT_S || 5);
/** Time after the last send before the final check. */
const GRACE_S = Number(__ENV.GRACE_S || 3);

export const options = {
  setupTimeout: "120s",
  scenarios: {
    fanout: {
      executor: "per-vu-iterations",
      vus: GROUPS * MEMBERS * RUNNERS,
      iterations: 1,
      maxDuration: `${CONNECT_S + DURATION_S + GRACE_S + 60}s`,
    },
  },
  thresholds: {
    delivery_latency: ["p(99)<500"],
    duplicates: ["count==0"],
    out_of_order: ["count==0"],
    missing_messages: ["count==0"],
    send_errors: ["count==0"],
    checks: ["rate==1"],
  },
};

const client = newClient();
const deliveryLatency = new Trend("delivery_latency", true);
const deliveries = new Counter("deliveries");
const duplicates = new Counter("duplicates");
const outOfOrder = new Counter("out_of_order");
const missingMessages = new Counter("missing_messages");
const sendErrors = new Counter("send_errors");

/**
 * @param {string} runId
 * @param {number} g
 * @param {number} m
 */
function member(runId, g, m) {
  return `k6f-${runId}-g${g}-m${m}`;
}

export function setup() {
  const runId = newRunId();
  connect(client);
  const groups = [];
  for (let g = 0; g < GROUPS; g++) {
    const others = [];
    for (let m = 1; m < MEMBERS; m++) others.push(member(runId, g, m));
    const res = client.invoke(CREATE_GROUP, { title: `k6 ${runId} ${g}`, memberUserIds: others }, auth(member(runId, g, 0)));
    check(res, { "group created": (r) => r.status === StatusOK });
    groups.push(/** @type {any} */ (res.message).conversation.conversationId);
  }
  client.close();
  return { runId, groups, startAt: Date.now() + CONNECT_S * 1000 };
}

/** @param {{ runId: string, groups: string[], startAt: number }} data */
export default function (data) {
  const g = (__VU - 1) % GROUPS;
  const m = Math.floor((__VU - 1) / GROUPS) % MEMBERS;
  const me = member(data.runId, g, m);
  const conversationId = data.groups[g];
  connect(client);
  const stream = new Stream(client, CONNECT, auth(me));
  /** How each seq reached this member: "live" (push or send answer) or "sync". */
  /** @type {Record<number, string>} */
  const seen = {};
  let lastPushed = 0;
  let nextId = 1;
  let sent = 0;
  let acked = 0;
  let initialSync = true;
  let finalChecked = false;

  /** @param {number} seq */
  const see = (seq) => {
    if (seen[seq] === "live") duplicates.add(1);
    seen[seq] = "live";
  };

  stream.on("data", (/** @type {any} */ frame) => {
    if (frame.message && frame.message.conversationId === conversationId) {
      const seq = Number(frame.message.seq);
      see(seq);
      // Pushes of one conversation come in seq order (own messages come as send answers).
      if (seq <= lastPushed) outOfOrder.add(1);
      lastPushed = Math.max(lastPushed, seq);
      const at = sentAt(frame.message.body);
      if (at !== undefined && frame.message.senderId !== me) {
        deliveryLatency.add(Date.now() - at);
        deliveries.add(1);
      }
    } else if (frame.send) {
      acked++;
      see(Number(frame.send.seq));
    } else if (frame.error) {
      sendErrors.add(1);
    } else if (frame.sync && initialSync) {
      // Messages sent before this member's stream was up (a slow start) come from the sync.
      initialSync = false;
      for (const u of frame.sync.sessions) {
        if (u.session.conversationId !== conversationId) continue;
        for (const msg of u.messages) if (seen[Number(msg.seq)] === undefined) seen[Number(msg.seq)] = "sync";
      }
    } else if (frame.sync && !finalChecked) {
      finalChecked = true;
      const update = frame.sync.sessions.find((/** @type {any} */ u) => u.session.conversationId === conversationId);
      const lastSeq = update === undefined ? 0 : Number(update.session.lastSeq);
      let missing = 0;
      for (let seq = 1; seq <= lastSeq; seq++) if (!seen[seq]) missing++;
      missingMessages.add(missing);
      check(null, { "every send acknowledged": () => acked === sent, "nothing missing": () => missing === 0 });
      clearTimeout(guard);
      stream.end();
    }
  });
  stream.on("error", () => sendErrors.add(1));
  stream.on("end", () => client.close());
  stream.write({ requestId: nextId++, sync: { cursors: [], maxMessagesPerConversation: 1000 } });

  if (m < SENDERS_PER_GROUP) {
    setTimeout(() => {
      const timer = setInterval(() => {
        stream.write({ requestId: nextId++, send: { conversationId, clientMsgId: `${me}-${sent}`, body: loadBody(me, sent) } });
        sent++;
      }, 1000 / RATE_PER_SENDER);
      setTimeout(() => clearInterval(timer), DURATION_S * 1000);
    }, Math.max(0, data.startAt - Date.now()));
  }
  const checkAt = data.startAt + (DURATION_S + GRACE_S) * 1000;
  // The final check: the server's last seq of the group against what this member holds.
  setTimeout(() => {
    stream.write({ requestId: nextId++, sync: { cursors: [], maxMessagesPerConversation: 1 } });
  }, Math.max(0, checkAt - Date.now()));
  const guard = setTimeout(() => {
    check(null, { "final check answered": () => finalChecked });
    stream.end();
  }, Math.max(0, checkAt - Date.now()) + 30_000);
}

/** @param {any} data */
export function handleSummary(data) {
  return {
    stdout: textSummary(data, "microchat group-fanout", ["delivery_latency", "deliveries", "duplicates", "out_of_order", "missing_messages", "send_errors", "checks"]),
    [`${SUMMARY_DIR}/k6-group-fanout-summary.json`]: JSON.stringify(data, null, 2),
  };
}
