import { spawn, type ChildProcess } from "node:child_process";
import http from "node:http";
import { fileURLToPath } from "node:url";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import type { Transport } from "@connectrpc/connect";

const MAIN = fileURLToPath(new URL("../../server/main.ts", import.meta.url));
const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** A log line of the server (pino JSON). */
export type LogLine = Record<string, unknown> & { msg: string; level: number; pid: number };

/** A gateway node as a child process: a single server, or the primary of a cluster. */
export interface NodeProcess {
  readonly child: ChildProcess;
  readonly port: number;
  /** Every JSON log line so far, from the primary and its workers. */
  readonly logs: LogLine[];
  /** Resolves with the exit once the process ended. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Waits for a log line matching `test`. */
  waitForLog(test: (line: LogLine) => boolean, what: string, timeoutMs?: number): Promise<LogLine>;
  /** Sends a signal to the process (the primary, for a cluster). */
  kill(signal: NodeJS.Signals): void;
  /** The last log lines, for failure messages. */
  tail(lines?: number): string;
}

/**
 * Starts server/main.ts in a new Node process (`node --import tsx`, so signals reach the
 * server itself) with `args`, and waits until it logs that it listens: a cluster's primary
 * once every worker listens.
 */
export async function startNodeProcess(args: string[], env: NodeJS.ProcessEnv = {}): Promise<NodeProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", MAIN, "--host", "127.0.0.1", "--log-level", "info", ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  // A test process that ends (e.g. after a timeout) takes its servers with it; a primary's
  // workers follow their primary on their own.
  const reap = () => child.kill("SIGKILL");
  process.once("exit", reap);
  void new Promise((resolve) => child.once("exit", resolve)).then(() => process.off("exit", reap));
  const logs: LogLine[] = [];
  const raw: string[] = [];
  const waiters = new Set<() => void>();
  let buffered = "";
  const onText = (text: string) => {
    buffered += text;
    const parts = buffered.split("\n");
    buffered = parts.pop() ?? "";
    for (const line of parts) {
      raw.push(line);
      if (raw.length > 400) raw.shift();
      try {
        logs.push(JSON.parse(line) as LogLine);
      } catch {
        // Not a log line (e.g. a stack trace on stderr): kept in `raw` only.
      }
    }
    for (const wake of waiters) wake();
  };
  child.stdout!.setEncoding("utf8").on("data", onText);
  child.stderr!.setEncoding("utf8").on("data", onText);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => {
      for (const wake of waiters) wake();
      resolve({ code, signal });
    });
  });
  const tail = (n = 30) => raw.slice(-n).join("\n");
  const waitForLog = async (test: (line: LogLine) => boolean, what: string, timeoutMs = 60_000): Promise<LogLine> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = logs.find(test);
      if (found !== undefined) return found;
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`server exited while waiting for ${what}:\n${tail()}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${tail()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 100);
        waiters.add(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      waiters.clear();
    }
  };
  // The process's own line: a cluster's workers log "listening on" before their primary is done.
  const listening = await waitForLog((l) => l.pid === child.pid && (l.msg.startsWith("listening on") || l.msg.startsWith("cluster of")), "the server to listen").catch((error: unknown) => {
    child.kill("SIGKILL");
    throw error;
  });
  const port = typeof listening.port === "number" ? listening.port : Number(/:(\d+)$/.exec(String(listening.url))?.[1]);
  return { child, port, logs, exited, waitForLog, kill: (signal) => void child.kill(signal), tail };
}

/** GET /stats on a new TCP connection (HTTP/1.1, no keep-alive). */
/** The /stats JSON of a server process (routing's part as server/route/routing.ts reports it). */
export interface ServerStats {
  readonly pid: number;
  readonly connections: number;
  readonly routing?: {
    readonly kind?: string;
    readonly hub?: { readonly subscribers: number; readonly users: number; readonly groups: number };
    readonly broker?: { readonly available?: boolean; readonly channels: number; readonly published: number; readonly received: number; readonly dropped: number };
    readonly [key: string]: unknown;
  };
}

export function fetchStats(port: number): Promise<ServerStats> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: "/stats", agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (c: string) => (body += c));
      res.on("end", () => {
        try {
          resolve(JSON.parse(body) as ServerStats);
        } catch (error) {
          reject(error as Error);
        }
      });
    });
    req.on("error", reject);
  });
}

/**
 * A gRPC transport pinned to one HTTP/2 connection, plus the pid of the worker process that
 * accepted it (asked with GET /stats over that same connection): with SO_REUSEPORT the kernel
 * picks the worker per TCP connection, so this tells a test where a client landed.
 */
export async function pinnedTransport(port: number): Promise<{ transport: Transport; pid: number; session: Http2SessionManager }> {
  const baseUrl = `http://127.0.0.1:${port}`;
  const session = new Http2SessionManager(baseUrl, { idleConnectionTimeoutMs: 10 * 60_000 });
  const stream = await session.request("GET", "/stats", { ":path": "/stats", ":method": "GET" }, {});
  stream.end();
  const body = await new Promise<string>((resolve, reject) => {
    let text = "";
    stream.setEncoding("utf8");
    stream.on("data", (c: string) => (text += c));
    stream.on("end", () => resolve(text));
    stream.on("error", reject);
  });
  const { pid } = JSON.parse(body) as { pid: number };
  return { transport: createGrpcTransport({ baseUrl, sessionManager: session }), pid, session };
}
