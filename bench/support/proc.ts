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

/** The server's environment: NODE_OPTIONS from BENCH_SERVER_NODE_OPTIONS (e.g. "--cpu-prof"), for the server only. */
export function serverEnv(): NodeJS.ProcessEnv {
  const options = process.env.BENCH_SERVER_NODE_OPTIONS;
  return options === undefined ? {} : { NODE_OPTIONS: options };
}
