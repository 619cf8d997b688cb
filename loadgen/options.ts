import { parseArgs } from "node:util";
import { DEV_JWT_SECRET } from "../server/gateway/auth.js";
import type { DeviceKind } from "./protocol.js";
import type { Scenario } from "./scenario.js";
import { SCENARIOS } from "./scenario-registry.js";
import { isLoopback, splitTarget } from "./server-stats.js";

/** Open files allowed per process on the machines this runs on (hard limit; see environment notes). */
export const OPEN_FILES_PER_PROCESS = 20_000;
/** Sockets one client process is given by default, leaving room below the open-files limit. */
export const SOCKETS_PER_PROCESS_DEFAULT = 15_000;
/**
 * Sockets per source address. Binding a source address before connecting (what a chosen local
 * address takes) gets an ephemeral port from bind(), which Linux looks for in one half (one
 * parity) of the range first: past about 14,000 of the 28,232 ports of 32768-60999 in use on one
 * address, every new bind scans the whole half in the kernel first, and a ramp stalls (a
 * 100,000-connection ramp over 5 addresses stopped at 72,000 with the client processes at 85 %
 * system time). So: 12,000, with margin.
 */
export const SOCKETS_PER_SOURCE_ADDRESS = 12_000;

/** A run's settings, resolved. */
export interface LoadgenOptions {
  readonly scenario: string;
  /** The --target flag as given. */
  readonly target: string;
  /** host:port of each gateway node (a comma list in --target); devices are spread over them. */
  readonly targets: readonly string[];
  readonly device: DeviceKind;
  /** Redis the server nodes share, to read its command counts (redis://host:port); undefined: none. */
  readonly redisUrl: string | undefined;
  /** Client processes (0: in this process). */
  readonly processes: number;
  readonly streamsPerConnection: number;
  readonly sourceAddresses: readonly string[];
  /** New connections per second during ramp-up (all processes). */
  readonly connectRate: number;
  /** Devices opening at once per client process during a ramp (0: no bound). */
  readonly connectParallel: number;
  readonly connectTimeoutS: number;
  readonly heartbeatMs: number;
  readonly jwtSecret: string;
  /** Report directory; undefined: no files. */
  readonly out: string | undefined;
  readonly quiet: boolean;
  /** Hard bound on the whole run. */
  readonly maxRunS: number;
  readonly settleTimeoutS: number;
  readonly bodyBytes: number;
  readonly sendsInFlight: number;
  readonly progressMs: number;
  readonly maxConnectFailures: number;
  readonly maxDrops: number;
  /** The scenario's own parameters. */
  readonly params: Readonly<Record<string, number>>;
}

interface CommonOption {
  readonly flag: string;
  readonly fallback: string;
  readonly doc: string;
}

/** Options every scenario takes (the README's table). */
export const COMMON_OPTIONS: readonly CommonOption[] = [
  { flag: "target", fallback: "", doc: "host:port of the gateway (required); a comma list of nodes spreads the devices over them in turn" },
  { flag: "device", fallback: "", doc: "lean (one raw HTTP/2 gRPC stream per device, HTTP/2 PING heartbeats) or sdk (the SDK client); default: the scenario's first kind" },
  { flag: "processes", fallback: "auto", doc: "client processes to fork; auto: one per 15000 sockets; 0: run in this process" },
  { flag: "streams-per-connection", fallback: "1", doc: "devices multiplexed on one HTTP/2 connection (1: one connection per device)" },
  { flag: "source-addresses", fallback: "auto", doc: "local addresses to bind: auto (more than one only past 12000 sockets), none, a count N (127.0.0.2...), or a comma list" },
  { flag: "connect-rate", fallback: "500", doc: "new connections per second during ramp-up, all processes together" },
  { flag: "connect-parallel", fallback: "0", doc: "at most this many devices opening at once per client process (0: no bound): past the server's accept rate the ramp slows to it instead of piling up connects" },
  { flag: "connect-timeout-s", fallback: "30", doc: "a device not live this long after its start counts as a connect failure" },
  { flag: "heartbeat-ms", fallback: "10000", doc: "heartbeat interval per device: HTTP/2 PING (lean) or SDK ping frame (sdk)" },
  { flag: "redis-url", fallback: "", doc: "the servers' Redis (redis://host:port): report its commands per message from INFO commandstats" },
  { flag: "jwt-secret", fallback: "", doc: "HS256 secret for minting tokens (default: $IM_JWT_SECRET, else the development secret)" },
  { flag: "out", fallback: "", doc: "report directory (default loadgen-results/<scenario>-<time>; 'none' for no files)" },
  { flag: "max-run-s", fallback: "1800", doc: "hard bound on the whole run" },
  { flag: "settle-timeout-s", fallback: "60", doc: "how long to wait for the last deliveries / a reconnect wave to sync" },
  { flag: "body-bytes", fallback: "0", doc: "pad message bodies to at least this many bytes" },
  { flag: "sends-in-flight", fallback: "32", doc: "unacknowledged sends per sender device (the server allows 64 requests in flight)" },
  { flag: "progress-ms", fallback: "1000", doc: "progress line and timeline interval" },
  { flag: "max-connect-failures", fallback: "0", doc: "connect failures tolerated before the run fails" },
  { flag: "max-drops", fallback: "0", doc: "held connections lost tolerated before the run fails" },
];

function int(flag: string, raw: string, min = 0): number {
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min) throw new Error(`--${flag} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
  return n;
}

/** Usage text: scenarios, their parameters and the common options. */
export function usage(): string {
  const lines = ["usage: npm run loadgen -- <scenario> --target host:port [options]", "", "scenarios:"];
  for (const s of SCENARIOS.values()) {
    lines.push(`  ${s.name}: ${s.summary} (devices: ${s.deviceKinds.join(" or ")})`);
    for (const p of s.params) lines.push(`      --${p.name} <n>  ${p.doc} (default ${p.fallback})`);
  }
  lines.push("", "options:");
  for (const o of COMMON_OPTIONS) lines.push(`  --${o.flag}  ${o.doc}${o.fallback === "" ? "" : ` (default ${o.fallback})`}`);
  lines.push("  --quiet  no progress line", "", "Exit status: 0 when every check passed, 1 when a check failed, 2 on bad usage.");
  return lines.join("\n");
}

/** Parses the command line; throws an Error naming the bad option. `help` when asked for usage. */
export function parseLoadgenArgs(argv: readonly string[], env: NodeJS.ProcessEnv, now = new Date()): LoadgenOptions | "help" {
  if (argv.includes("--help") || argv.includes("-h") || argv.length === 0) return "help";
  const name = argv[0]!;
  const scenario: Scenario | undefined = SCENARIOS.get(name);
  if (scenario === undefined) throw new Error(`unknown scenario ${JSON.stringify(name)} (one of: ${[...SCENARIOS.keys()].join(", ")})`);
  const { values } = parseArgs({
    args: argv.slice(1),
    options: {
      ...Object.fromEntries(COMMON_OPTIONS.map((o) => [o.flag, { type: "string" as const }])),
      ...Object.fromEntries(scenario.params.map((p) => [p.name, { type: "string" as const }])),
      quiet: { type: "boolean" as const },
    },
    strict: true,
    allowPositionals: false,
  });
  const strings = values as Record<string, string | boolean | undefined>;
  const get = (flag: string, fallback: string) => {
    const v = strings[flag];
    return typeof v === "string" ? v : fallback;
  };
  const params: Record<string, number> = {};
  for (const p of scenario.params) params[p.name] = int(p.name, get(p.name, String(p.fallback)), p.min ?? 0);
  scenario.validate?.(params);

  const target = get("target", "");
  if (target === "") throw new Error("--target host:port is required");
  const targets = target.split(",").map((t) => t.trim()).filter((t) => t !== "");
  const hosts = targets.map((t) => splitTarget(t).host);
  const device = (get("device", "") || scenario.deviceKinds[0]!) as DeviceKind;
  if (!scenario.deviceKinds.includes(device)) {
    throw new Error(`--device ${JSON.stringify(device)}: ${name} runs with ${scenario.deviceKinds.map((k) => `--device ${k}`).join(" or ")}`);
  }
  const redisUrl = get("redis-url", "");
  if (redisUrl !== "" && !/^rediss?:\/\/[^/\s]+/.test(redisUrl)) throw new Error(`--redis-url must be redis://host:port, got ${JSON.stringify(redisUrl)}`);
  const streamsPerConnection = int("streams-per-connection", get("streams-per-connection", "1"), 1);
  if (streamsPerConnection > 1 && device === "lean") throw new Error("--streams-per-connection: lean devices hold one connection each (use --device sdk)");
  const sockets = Math.ceil(scenario.devices(params) / streamsPerConnection);

  const rawProcesses = get("processes", "auto");
  const processes = rawProcesses === "auto" ? Math.max(1, Math.ceil(sockets / SOCKETS_PER_PROCESS_DEFAULT)) : int("processes", rawProcesses);
  const perProcess = Math.ceil(sockets / Math.max(1, processes));
  if (perProcess > OPEN_FILES_PER_PROCESS - 1000) {
    throw new Error(`${sockets} sockets over ${Math.max(1, processes)} process(es) is ${perProcess} per process, past the open-files limit (${OPEN_FILES_PER_PROCESS}): raise --processes or --streams-per-connection`);
  }

  const rawAddresses = get("source-addresses", "auto");
  let sourceAddresses: string[];
  if (rawAddresses === "none") sourceAddresses = [];
  else if (rawAddresses === "auto" || /^\d+$/.test(rawAddresses)) {
    const count = rawAddresses === "auto" ? (sockets > SOCKETS_PER_SOURCE_ADDRESS ? Math.ceil(sockets / SOCKETS_PER_SOURCE_ADDRESS) : 0) : int("source-addresses", rawAddresses);
    if (count > 0 && !hosts.every(isLoopback)) throw new Error("--source-addresses with a count picks loopback addresses (127.0.0.2, ...): the target must be on loopback too; pass a list instead");
    if (count > 250) throw new Error("--source-addresses: at most 250 loopback addresses");
    sourceAddresses = Array.from({ length: count }, (_, i) => `127.0.0.${i + 2}`);
  } else {
    sourceAddresses = rawAddresses.split(",").map((a) => a.trim()).filter((a) => a !== "");
  }

  const rawOut = get("out", "");
  const stamp = now.toISOString().replace(/[-:]/g, "").replace(/\..*$/, "").replace("T", "-");
  return {
    scenario: name,
    target,
    targets,
    device,
    redisUrl: redisUrl === "" ? undefined : redisUrl,
    processes,
    streamsPerConnection,
    sourceAddresses,
    connectRate: int("connect-rate", get("connect-rate", "500"), 1),
    connectParallel: int("connect-parallel", get("connect-parallel", "0")),
    connectTimeoutS: int("connect-timeout-s", get("connect-timeout-s", "30"), 1),
    heartbeatMs: int("heartbeat-ms", get("heartbeat-ms", "10000"), 100),
    jwtSecret: get("jwt-secret", "") || env.IM_JWT_SECRET || DEV_JWT_SECRET,
    out: rawOut === "none" ? undefined : rawOut === "" ? `loadgen-results/${name}-${stamp}` : rawOut,
    quiet: values.quiet === true,
    maxRunS: int("max-run-s", get("max-run-s", "1800"), 1),
    settleTimeoutS: int("settle-timeout-s", get("settle-timeout-s", "60"), 1),
    bodyBytes: int("body-bytes", get("body-bytes", "0")),
    sendsInFlight: int("sends-in-flight", get("sends-in-flight", "32"), 1),
    progressMs: int("progress-ms", get("progress-ms", "1000"), 50),
    maxConnectFailures: int("max-connect-failures", get("max-connect-failures", "0")),
    maxDrops: int("max-drops", get("max-drops", "0")),
    params,
  };
}
