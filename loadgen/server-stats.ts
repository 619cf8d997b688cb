import { readdirSync, readFileSync } from "node:fs";
import http from "node:http";

/** What the gateway's `/stats` endpoint reports for the process that answered. */
export interface ServerStats {
  readonly pid: number;
  readonly connections: number;
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  readonly uptimeS: number;
  /** TCP connections the process closed for opening no stream within the handshake timeout, since it started. */
  readonly handshakeTimeouts: number;
}

/** The server processes seen by one probe, and their sums. */
export interface ServerSnapshot {
  readonly processes: readonly ServerStats[];
  readonly connections: number;
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  readonly handshakeTimeouts: number;
}

function getStats(host: string, port: number, timeoutMs: number): Promise<ServerStats> {
  return new Promise((resolve, reject) => {
    // A fresh TCP connection each time (agent: false), so with several server processes sharing
    // the port (SO_REUSEPORT) successive requests reach different processes.
    const req = http.get({ host, port, path: "/stats", agent: false, timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        if (body.length < 65_536) body += chunk;
      });
      res.on("end", () => {
        try {
          if (res.statusCode !== 200) throw new Error(`GET /stats: HTTP ${res.statusCode}`);
          const v = JSON.parse(body) as Partial<ServerStats>;
          if (typeof v.pid !== "number" || typeof v.connections !== "number" || typeof v.rssBytes !== "number") throw new Error("GET /stats: unexpected body");
          resolve({ pid: v.pid, connections: v.connections, rssBytes: v.rssBytes, heapUsedBytes: v.heapUsedBytes ?? 0, uptimeS: v.uptimeS ?? 0, handshakeTimeouts: v.handshakeTimeouts ?? 0 });
        } catch (error) {
          reject(error as Error);
        }
      });
    });
    req.on("timeout", () => req.destroy(new Error(`GET /stats: no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
  });
}

/** Options of probeServer. */
export interface ProbeOptions {
  readonly timeoutMs?: number;
  /** Stop after this many probes in a row found no new process (default 6)... */
  readonly quietAttempts?: number;
  /** ...unless some of these pids have not answered yet (default: none expected). */
  readonly expectPids?: ReadonlySet<number>;
  readonly maxAttempts?: number;
}

/**
 * Reads `/stats` of every server process behind `target` (host:port, or a comma list of
 * nodes): probes over fresh connections until `quietAttempts` in a row show no new process and
 * every expected pid answered (at most `maxAttempts` per node).
 */
export async function probeServer(target: string, options: ProbeOptions = {}): Promise<ServerSnapshot> {
  const byPid = new Map<number, ServerStats>();
  for (const node of target.split(",")) {
    const { host, port } = splitTarget(node.trim());
    let quiet = 0;
    // The expected pids of this node: siblings (same parent) of a process that answered here.
    const parents = new Set<number>();
    const missing = () => [...(options.expectPids ?? [])].some((pid) => !byPid.has(pid) && parents.has(parentPid(pid) ?? -1));
    const maxAttempts = options.maxAttempts ?? (options.expectPids === undefined ? 48 : 400);
    for (let attempt = 0; attempt < maxAttempts && (quiet < (options.quietAttempts ?? 6) || missing()); attempt++) {
      const s = await getStats(host, port, options.timeoutMs ?? 5000);
      quiet = byPid.has(s.pid) ? quiet + 1 : 0;
      if (!byPid.has(s.pid) && options.expectPids !== undefined) parents.add(parentPid(s.pid) ?? -1);
      byPid.set(s.pid, s);
    }
  }
  const processes = [...byPid.values()].sort((a, b) => a.pid - b.pid);
  return {
    processes,
    connections: processes.reduce((n, p) => n + p.connections, 0),
    rssBytes: processes.reduce((n, p) => n + p.rssBytes, 0),
    heapUsedBytes: processes.reduce((n, p) => n + p.heapUsedBytes, 0),
    handshakeTimeouts: processes.reduce((n, p) => n + p.handshakeTimeouts, 0),
  };
}

/** The command line of a local process (empty when it cannot be read). */
function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter((a) => a !== "");
  } catch {
    return [];
  }
}

/** Whether a local process runs this project's server (server/main.ts), a cluster primary included. */
export function isServerProcess(pid: number): boolean {
  return cmdline(pid).some((arg) => /(^|\/)server\/main\.[jt]s$/.test(arg));
}

/** The children of a local process (Linux /proc/<pid>/task/<tid>/children); empty when unknown. */
export function childPids(pid: number): number[] {
  try {
    const out: number[] = [];
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      for (const child of readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim().split(/\s+/)) if (child !== "") out.push(Number(child));
    }
    return out;
  } catch {
    return [];
  }
}

/** Resident memory of a local process in bytes (/proc/<pid>/status VmRSS); undefined when unreadable. */
export function processRssBytes(pid: number): number | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"));
    return line === undefined ? undefined : Number(line.replace(/\D+/g, "")) * 1024;
  } catch {
    return undefined;
  }
}

/**
 * Every local server process behind the targets: those that answer `/stats`, their sibling
 * workers (children of the same parent running server/main) and that parent when it is the
 * cluster's primary (it relays between workers). Read from /proc, since `/stats` answers from
 * whichever worker takes the connection. Empty for a target that is not on this machine.
 */
export async function serverProcesses(targets: readonly string[]): Promise<number[]> {
  const pids = new Set<number>();
  for (const target of targets) {
    if (!isLoopback(splitTarget(target).host)) continue;
    const answering = await probeServer(target).then((s) => s.processes.map((p) => p.pid), () => [] as number[]);
    for (const pid of answering) {
      pids.add(pid);
      const parent = parentPid(pid);
      if (parent === undefined || !isServerProcess(parent)) continue;
      pids.add(parent);
      for (const child of childPids(parent)) if (isServerProcess(child)) pids.add(child);
    }
  }
  return [...pids].sort((a, b) => a - b);
}

/** "host:port" -> parts; throws on anything else. */
export function splitTarget(target: string): { host: string; port: number } {
  const m = /^(.+):(\d{1,5})$/.exec(target);
  const port = Number(m?.[2]);
  if (m === null || !(port > 0 && port < 65536)) throw new Error(`--target must be host:port, got ${JSON.stringify(target)}`);
  return { host: m[1]!.replace(/^\[(.*)\]$/, "$1"), port };
}

/** Whether a host name or address is on loopback (127.0.0.0/8, ::1, localhost). */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ: 100 on Linux builds). */
const USER_HZ = 100;

/** The parent of a local process (from /proc); undefined when it cannot be read. */
export function parentPid(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    return ppid > 1 ? ppid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * CPU time (user + system, ms) a local process has used, from /proc; undefined when it cannot be
 * read (another machine, not Linux, process gone).
 */
export function processCpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return Number.isFinite(utime + stime) ? ((utime + stime) * 1000) / USER_HZ : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The machine's count of TCP listen queue overflows (TcpExt ListenOverflows, Linux): connections
 * a listening socket could not queue because its process did not accept them fast enough. The
 * clients of those see resets or timeouts. Machine-wide; undefined when unreadable.
 */
export function listenOverflows(): number | undefined {
  try {
    const lines = readFileSync("/proc/net/netstat", "utf8").split("\n");
    for (let i = 0; i + 1 < lines.length; i += 2) {
      const names = lines[i]!.split(" ");
      const values = lines[i + 1]!.split(" ");
      if (names[0] !== "TcpExt:") continue;
      const at = names.indexOf("ListenOverflows");
      return at < 0 ? undefined : Number(values[at]);
    }
    return undefined;
  } catch {
    return undefined;
  }
}
