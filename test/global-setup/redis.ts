import type { TestProject } from "vitest/node";
import { startRedis } from "../support/redis.js";

/**
 * Starts one Redis for the whole run (scripts/redis.sh: Debian's redis-server on a free
 * loopback port, installed if missing) and hands its URL to tests as `inject("redisUrl")`.
 * Under CI=true a Redis that cannot start fails the run with the script's output; elsewhere
 * the URL is "" and the Redis tests are skipped with a warning.
 */
export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  try {
    const redis = await startRedis();
    project.provide("redisUrl", redis.url);
    return () => redis.destroy();
  } catch (error) {
    if (process.env.CI === "true") throw error;
    process.stderr.write(`\nWARNING: Redis could not start; tests that need Redis are skipped.\n${(error as Error).message}\n`);
    project.provide("redisUrl", "");
    return undefined;
  }
}
