import { Redis } from "ioredis";

/** Calls per Redis command, from `INFO commandstats` (e.g. publish, spublish, subscribe, evalsha). */
export type CommandCounts = ReadonlyMap<string, number>;

/** Parses the text of `INFO commandstats` ("cmdstat_publish:calls=12,usec=..."). */
export function parseCommandStats(info: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of info.split(/\r?\n/)) {
    const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line);
    if (m !== null) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/** The difference `after - before` per command, leaving out commands that did not run and the INFO calls of the reader itself. */
export function commandDelta(before: CommandCounts, after: CommandCounts): Map<string, number> {
  const out = new Map<string, number>();
  for (const [command, calls] of after) {
    const d = calls - (before.get(command) ?? 0);
    if (d > 0 && command !== "info") out.set(command, d);
  }
  return out;
}

/** Reads a Redis server's command counts (one short-lived connection each time, bounded by `timeoutMs`). */
export async function readCommandStats(url: string, timeoutMs = 5000): Promise<Map<string, number>> {
  const redis = new Redis(url, { lazyConnect: true, connectTimeout: timeoutMs, commandTimeout: timeoutMs, maxRetriesPerRequest: 1, enableOfflineQueue: false });
  try {
    await redis.connect();
    return parseCommandStats(await redis.info("commandstats"));
  } finally {
    redis.disconnect();
  }
}
