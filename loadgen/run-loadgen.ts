import { randomBytes } from "node:crypto";
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { ConversationService } from "../gen/im/v1/conversation_pb.js";
import { mintToken } from "../server/gateway/auth.js";
import { mergeCheckReports, passed, type CheckReport } from "./delivery-checker.js";
import { LatencyHistogram } from "./latency-histogram.js";
import type { LoadgenOptions } from "./options.js";
import { ProgressBoard, sumCounters } from "./progress-board.js";
import type { HistogramName } from "./protocol.js";
import { describeMachine, type RunReport } from "./run-report.js";
import type { ScenarioContext, ScenarioResult, ServerUsage } from "./scenario.js";
import { SCENARIOS } from "./scenario-registry.js";
import os from "node:os";
import { readCommandStats } from "./redis-stats.js";
import { listenOverflows, parentPid, probeServer, processCpuMs, processRssBytes, serverProcesses } from "./server-stats.js";
import { WorkerPool } from "./worker-pool.js";

/** Where the runner writes what it has to say. */
export interface RunIo {
  /** Lines for the operator (phases, results). */
  log(line: string): void;
  /** The live progress line, once per interval. */
  progress(line: string): void;
}

class RunDeadline extends Error {}

/** A cluster primary among the server processes: the parent of another one (it serves no /stats). */
function isServerParent(pid: number, pids: readonly number[]): boolean {
  return pids.some((other) => other !== pid && parentPid(other) === pid);
}

/**
 * Runs one scenario end to end: forks the client processes, runs the scenario's phases, merges
 * histograms and delivery checks across processes, and returns the report (never throws for a
 * failed check: `passed` says). Bounded by `options.maxRunS`.
 */
export async function runLoadgen(options: LoadgenOptions, io: RunIo, argv: readonly string[] = []): Promise<RunReport> {
  const scenario = SCENARIOS.get(options.scenario);
  if (scenario === undefined) throw new Error(`unknown scenario ${options.scenario}`);
  const startedAt = new Date();
  const t0 = performance.now();
  const deadlineAt = t0 + options.maxRunS * 1000;
  const board = new ProgressBoard(t0);
  const pool = await WorkerPool.start({
    processes: options.processes,
    config: {
      targets: options.targets,
      device: options.device,
      jwtSecret: options.jwtSecret,
      sourceAddresses: options.sourceAddresses,
      streamsPerConnection: options.streamsPerConnection,
      heartbeatIntervalMs: options.heartbeatMs,
      bodyBytes: options.bodyBytes,
      sendsInFlightMax: options.sendsInFlight,
      progressIntervalMs: options.progressMs,
    },
    onProgress: (s) => board.update(s),
  });
  const ticker = setInterval(() => io.progress(board.tick()), options.progressMs);
  // Resources, for reading the figures: CPU of the server processes (when local) and of the
  // client processes, and the machine's load.
  const loadAvgStart = os.loadavg()[0]!;
  // Every local server process: the workers behind each target and their primary.
  const serverPids = await serverProcesses(options.targets);
  const serverCpuStart = serverPids.map((pid) => processCpuMs(pid));
  const serverUsage = (): ServerUsage | undefined => {
    if (serverPids.length === 0) return undefined;
    let cpu = 0;
    let rss = 0;
    for (const pid of serverPids) {
      cpu += processCpuMs(pid) ?? 0;
      rss += processRssBytes(pid) ?? 0;
    }
    return { pids: serverPids, cpuMs: cpu, rssBytes: rss };
  };
  const coordinatorCpuStart = process.cpuUsage();
  const overflowsStart = listenOverflows();

  const tokens = new Map<string, Promise<string>>();
  // Setup calls (creating groups) of every user share one HTTP/2 connection, to the first node.
  const adminUrl = `http://${options.targets[0]!}`;
  const adminSession = new Http2SessionManager(adminUrl);
  const clients = new Map<string, Client<typeof ConversationService>>();
  const ctx: ScenarioContext = {
    options,
    params: options.params,
    pool,
    runId: randomBytes(4).toString("hex"),
    log: io.log,
    phase(name) {
      board.phase = name;
      io.log(`phase: ${name}`);
    },
    probe: () => probeServer(options.target, { expectPids: new Set(serverPids.filter((pid) => !isServerParent(pid, serverPids))) }),
    serverUsage,
    redisCommands: () => (options.redisUrl === undefined ? Promise.resolve(undefined) : readCommandStats(options.redisUrl)),
    conversations(userId) {
      let c = clients.get(userId);
      if (c === undefined) {
        const auth: Interceptor = (next) => async (req) => {
          let t = tokens.get(userId);
          if (t === undefined) tokens.set(userId, (t = mintToken(options.jwtSecret, userId)));
          req.header.set("authorization", `Bearer ${await t}`);
          return next(req);
        };
        c = createClient(ConversationService, createGrpcTransport({ baseUrl: adminUrl, sessionManager: adminSession, interceptors: [auth] }));
        clients.set(userId, c);
      }
      return c;
    },
    async sleep(ms) {
      const left = deadlineAt - performance.now();
      await new Promise((r) => setTimeout(r, Math.max(0, Math.min(ms, left))));
      if (performance.now() >= deadlineAt) throw new RunDeadline(`the run exceeded --max-run-s ${options.maxRunS}`);
    },
  };

  const failures: string[] = [];
  let result: ScenarioResult | undefined;
  let deadlineTimer: ReturnType<typeof setTimeout> | undefined;
  try {
    const deadline = new Promise<never>((_, reject) => {
      deadlineTimer = setTimeout(() => reject(new RunDeadline(`the run exceeded --max-run-s ${options.maxRunS}`)), Math.max(0, deadlineAt - performance.now()));
    });
    result = await Promise.race([scenario.run(ctx), deadline]);
  } catch (error) {
    failures.push(error instanceof RunDeadline ? error.message : `scenario failed: ${(error as Error).stack ?? String(error)}`);
  } finally {
    clearTimeout(deadlineTimer);
  }

  ctx.phase("report");
  let check: CheckReport = mergeCheckReports([]);
  const merged = new Map<HistogramName, LatencyHistogram>();
  let counters = board.totals();
  try {
    const bounded = <T>(p: Promise<T>) => Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error("client processes did not answer within 60 s")), 60_000).unref())]);
    const expect = result?.expect ?? [];
    check = mergeCheckReports(await bounded(pool.each(() => ({ op: "verify" as const, expect }))));
    const collected = await bounded(pool.each(() => ({ op: "collect" as const })));
    counters = sumCounters(collected.map((c) => c.counters));
    for (const c of collected) {
      for (const [name, encoded] of Object.entries(c.histograms) as [HistogramName, string][]) {
        let h = merged.get(name);
        if (h === undefined) merged.set(name, (h = new LatencyHistogram()));
        h.add(LatencyHistogram.decode(encoded));
      }
    }
  } catch (error) {
    failures.push(`collecting results failed: ${(error as Error).message}`);
  }
  clearInterval(ticker);
  io.progress(board.tick());
  const wallS = (performance.now() - t0) / 1000;
  const serverCpu = serverPids.map((pid, i) => {
    const end = processCpuMs(pid);
    const start = serverCpuStart[i];
    return end === undefined || start === undefined ? undefined : end - start;
  });
  const coordinatorCpu = process.cpuUsage(coordinatorCpuStart);
  const overflowsEnd = listenOverflows();
  // Connections the servers closed for silence: a client that could not open its stream in time sees a reset.
  const handshakeTimeouts = await ctx.probe().then(
    (snapshot) => snapshot.handshakeTimeouts,
    () => undefined,
  );
  const clientProcesses = pool.fleets.map((f) => ({ index: f.index, pid: f.pid }));
  await pool.stop();
  adminSession.abort();

  if (result !== undefined) failures.push(...result.failures);
  if (!passed(check)) {
    const kinds = Object.entries(check.counts).filter(([, v]) => v > 0).map(([k, v]) => `${v} ${k}`);
    failures.push(`delivery check failed: ${kinds.join(", ")}`);
  }
  const { jwtSecret: _secret, params, ...shown } = options;
  return {
    scenario: options.scenario,
    passed: failures.length === 0,
    failures,
    startedAt: startedAt.toISOString(),
    durationS: (performance.now() - t0) / 1000,
    command: ["npm run loadgen --", ...argv].join(" "),
    machine: describeMachine(),
    options: shown,
    params,
    clientProcesses,
    figures: result?.figures ?? [],
    tables: result?.tables ?? [],
    latencies: (result?.latencies ?? []).map((l) => {
      const own = result?.histograms?.[l.name];
      const h = own !== undefined ? LatencyHistogram.merge(own) : (merged.get(l.name as HistogramName) ?? new LatencyHistogram());
      return { ...l, summary: h.summary(), histogram: h.encode() };
    }),
    counters,
    check,
    ...(result?.server === undefined ? {} : { server: result.server }),
    resources: {
      wallS,
      loadAvgStart,
      loadAvgEnd: os.loadavg()[0]!,
      serverPids,
      serverCpuS: serverCpu.every((c) => c !== undefined) && serverCpu.length > 0 ? serverCpu.reduce((a, b) => a + b!, 0) / 1000 : undefined,
      listenOverflows: overflowsStart === undefined || overflowsEnd === undefined ? undefined : overflowsEnd - overflowsStart,
      ...(handshakeTimeouts === undefined ? {} : { handshakeTimeouts }),
      clientCpuS: counters.cpuMs / 1000 + (options.processes > 0 ? (coordinatorCpu.user + coordinatorCpu.system) / 1e6 : 0),
    },
    timeline: board.timeline,
    phases: board.phases,
    notes: result?.notes ?? [],
  };
}
