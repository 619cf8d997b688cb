// k6 scenario `connections`: every VU opens one long connection (the bidirectional Connect
// stream) at its slot of a RAMP_S ramp-up, holds it with heartbeats for HOLD_S seconds, then
// closes it. Measures connect time (stream open to the first sync answer), heartbeat round
// trips and failures.
//
//   k6 run -e TARGET=127.0.0.1:8080 -e VUS=1000 -e RAMP_S=30 -e HOLD_S=60 loadgen/k6/connections.js
import { check, sleep } from "k6";
import { Stream } from "k6/net/grpc";
import { Counter, Trend } from "k6/metrics";
import { clearInterval, setInterval, setTimeout } from "k6/timers";
import { auth, connect, CONNECT, newClient, newRunId, RUNNERS, SUMMARY_DIR, textSummary } from "./lib/im.js";

const VUS = Number(__ENV.VUS || 100);
const RAMP_S = Number(__ENV.RAMP_S || 10);
const HOLD_S = Number(__ENV.HOLD_S || 30);
const HEARTBEAT_MS = Number(__ENV.HEARTBEAT_MS || 5000);

export const options = {
  scenarios: {
    connections: {
      // One connection per VU, for the whole hold: the ramp is done by each VU waiting for its
      // slot, so no VU reconnects mid-run.
      executor: "per-vu-iterations",
      vus: VUS * RUNNERS,
      iterations: 1,
      maxDuration: `${RAMP_S + HOLD_S + 60}s`,
    },
  },
  thresholds: {
    heartbeat_rtt: ["p(99)<100"],
    connect_time: ["p(99)<2000"],
    connect_failures: ["count==0"],
    server_disconnects: ["count==0"],
    checks: ["rate==1"],
  },
};

const client = newClient();
const heartbeatRtt = new Trend("heartbeat_rtt", true);
const connectTime = new Trend("connect_time", true);
const connectFailures = new Counter("connect_failures");
const serverDisconnects = new Counter("server_disconnects");
const pongs = new Counter("pongs");

export function setup() {
  return { runId: newRunId() };
}

/** @param {{ runId: string }} data */
export default function (data) {
  const user = `k6c-${data.runId}-${__VU}`;
  sleep(((__VU - 1) * RAMP_S) / VUS);
  const startedAt = Date.now();
  connect(client);
  const stream = new Stream(client, CONNECT, auth(user));
  /** @type {Record<string, number>} */
  const pings = {};
  let nextId = 1;
  let synced = false;
  let answered = 0;
  let sent = 0;

  stream.on("data", (/** @type {any} */ frame) => {
    if (frame.sync) {
      synced = true;
      connectTime.add(Date.now() - startedAt);
    } else if (frame.pong) {
      const at = pings[frame.requestId];
      if (at !== undefined) {
        delete pings[frame.requestId];
        heartbeatRtt.add(Date.now() - at);
        pongs.add(1);
        answered++;
      }
    } else if (frame.disconnect) {
      serverDisconnects.add(1);
    }
  });
  stream.on("error", () => {
    if (!synced) connectFailures.add(1);
  });
  stream.on("end", () => {
    check(null, {
      "connection synced": () => synced,
      "every heartbeat answered": () => answered === sent,
    });
    client.close();
  });

  stream.write({ requestId: nextId++, sync: { cursors: [] } });
  const heartbeat = setInterval(() => {
    const id = nextId++;
    pings[String(id)] = Date.now();
    sent++;
    stream.write({ requestId: id, ping: { clientTimeMs: Date.now() } });
  }, HEARTBEAT_MS);
  // Then close the send side; the server ends the stream once it has answered everything.
  setTimeout(() => {
    clearInterval(heartbeat);
    stream.end();
  }, Math.max(HEARTBEAT_MS * 2, HOLD_S * 1000));
}

/** @param {any} data */
export function handleSummary(data) {
  return {
    stdout: textSummary(data, "microchat connections", ["connect_time", "heartbeat_rtt", "pongs", "connect_failures", "server_disconnects", "checks"]),
    [`${SUMMARY_DIR}/k6-connections-summary.json`]: JSON.stringify(data, null, 2),
  };
}
