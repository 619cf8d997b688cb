import { readFileSync } from "node:fs";

/** CPU seconds (user + system) a process has used so far, from /proc (Linux). */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** A process's resident set size in bytes, from /proc (Linux). */
export function rssBytes(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"))!;
  return Number(line.replace(/\D+/g, "")) * 1024;
}

/**
 * The send rate limits turned off: a benchmark drives one sender far beyond what a person
 * types (the defaults refuse a long connection's 31st message in a second).
 */
export const UNLIMITED_SENDS: NodeJS.ProcessEnv = {
  IM_RATE_USER_SENDS_PER_S: "0",
  IM_RATE_USER_BYTES_PER_S: "0",
  IM_RATE_CONNECTION_SENDS_PER_S: "0",
  IM_RATE_CONNECTION_BYTES_PER_S: "0",
};

/**
 * The server's environment: the send rate limits off, and NODE_OPTIONS from
 * BENCH_SERVER_NODE_OPTIONS (e.g. "--cpu-prof"), for the server only.
 */
export function serverEnv(): NodeJS.ProcessEnv {
  const options = process.env.BENCH_SERVER_NODE_OPTIONS;
  return options === undefined ? { ...UNLIMITED_SENDS } : { ...UNLIMITED_SENDS, NODE_OPTIONS: options };
}
