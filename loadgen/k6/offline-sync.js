// k6 scenario `offline-sync`: setup() stores HISTORY + MESSAGES messages for each of USERS
// users (through the unary Send, from SENDERS sender users) and notes each user's cursor after
// the history: the users were offline for the last MESSAGES. Then every VU reconnects at once as
// one user, syncs from its cursor (following has_more with FetchRange) and reports the time to
// hold everything, checking the chain (prev_seq) and any gap left.
//
//   k6 run -e TARGET=127.0.0.1:8080 -e USERS=500 -e MESSAGES=50 loadgen/k6/offline-sync.js
import { check } from "k6";
import { Stream, StatusOK } from "k6/net/grpc";
import { Counter, Trend } from "k6/metrics";
import { clearTimeout, setTimeout } from "k6/timers";
import { auth, connect, CONNECT, loadBody, newClient, newRunId, RUNNERS, SEND, SUMMARY_DIR, textSummary } from "./lib/im.js";

const USERS = Number(__ENV.USERS || 100);
const MESSAGES = Number(__ENV.MESSAGES || 20);
const HISTORY = Number(__ENV.HISTORY || 2);
const SENDERS = Number(__ENV.SENDERS || 5);
const SYNC_TIMEOUT_S = Number(__ENV.SYNC_TIMEOUT_S || 60);

export const options = {
  setupTimeout: "600s",
  scenarios: {
    reconnect: {
      // All VUs start together: the reconnect wave.
      executor: "per-vu-iterations",
      vus: USERS * RUNNERS,
      iterations: 1,
      maxDuration: `${SYNC_TIMEOUT_S + 60}s`,
    },
  },
  thresholds: {
    time_to_synced: ["p(99)<10000"],
    gap_left: ["count==0"],
    chain_violations: ["count==0"],
    send_errors: ["count==0"],
    checks: ["rate==1"],
  },
};

const client = newClient();
const timeToSynced = new Trend("time_to_synced", true);
const synced = new Counter("messages_synced");
const gapLeft = new Counter("gap_left");
const chainViolations = new Counter("chain_violations");
const sendErrors = new Counter("send_errors");

/**
 * @param {string} runId
 * @param {number} u
 */
function user(runId, u) {
  return `k6o-${runId}-${u}`;
}

export function setup() {
  const runId = newRunId();
  connect(client);
  const users = [];
  for (let u = 1; u <= USERS; u++) {
    const sender = `k6s-${runId}-${u % SENDERS}`;
    let conversationId = "";
    let cursor = 0;
    let lastSeq = 0;
    for (let i = 0; i < HISTORY + MESSAGES; i++) {
      const res = client.invoke(SEND, { toUserId: user(runId, u), clientMsgId: `${u}-${i}`, body: loadBody(sender, i) }, auth(sender));
      if (res.status !== StatusOK) {
        sendErrors.add(1);
        continue;
      }
      const result = /** @type {any} */ (res.message);
      conversationId = result.conversationId;
      lastSeq = Number(result.seq);
      if (i === HISTORY - 1) cursor = lastSeq;
    }
    users.push({ conversationId, cursor, lastSeq });
  }
  client.close();
  return { runId, users };
}

/** @param {{ runId: string, users: { conversationId: string, cursor: number, lastSeq: number }[] }} data */
export default function (data) {
  // Modulo: with several operator runners, __VU may count past this runner's own users.
  const index = (__VU - 1) % USERS;
  const target = data.users[index];
  const me = user(data.runId, index + 1);
  const startedAt = Date.now();
  connect(client);
  const stream = new Stream(client, CONNECT, auth(me));
  let last = target.cursor;
  let nextId = 1;
  let done = false;

  /** @param {any[]} messages */
  const deliver = (messages) => {
    for (const m of messages) {
      const seq = Number(m.seq);
      if (seq <= last || Number(m.prevSeq) !== last) chainViolations.add(1);
      if (seq > last) {
        last = seq;
        synced.add(1);
      }
    }
  };
  const fetchMore = () => {
    stream.write({ requestId: nextId++, fetchRange: { conversationId: target.conversationId, afterSeq: last, upToSeq: 0, limit: 1000 } });
  };
  const finish = () => {
    if (done) return;
    done = true;
    clearTimeout(guard);
    timeToSynced.add(Date.now() - startedAt);
    gapLeft.add(Math.max(0, target.lastSeq - last));
    check(null, { "fully synced": () => last === target.lastSeq });
    stream.end();
  };

  stream.on("data", (/** @type {any} */ frame) => {
    if (frame.sync) {
      const update = frame.sync.sessions.find((/** @type {any} */ s) => s.session.conversationId === target.conversationId);
      if (update !== undefined) deliver(update.messages);
      if (last < target.lastSeq) fetchMore();
      else finish();
    } else if (frame.fetchRange) {
      const before = last;
      deliver(frame.fetchRange.messages);
      if (last < target.lastSeq && last > before) fetchMore();
      else finish();
    } else if (frame.error) {
      chainViolations.add(1);
      finish();
    }
  });
  stream.on("end", () => client.close());
  const guard = setTimeout(() => {
    gapLeft.add(Math.max(0, target.lastSeq - last));
    done = true;
    stream.end();
  }, SYNC_TIMEOUT_S * 1000);

  stream.write({ requestId: nextId++, sync: { cursors: [{ conversationId: target.conversationId, lastSeq: target.cursor, readSeq: 0 }] } });
}

/** @param {any} data */
export function handleSummary(data) {
  return {
    stdout: textSummary(data, "microchat offline-sync", ["time_to_synced", "messages_synced", "gap_left", "chain_violations", "send_errors", "checks"]),
    [`${SUMMARY_DIR}/k6-offline-sync-summary.json`]: JSON.stringify(data, null, 2),
  };
}
