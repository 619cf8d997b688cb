import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 180_000,
    pool: "forks",
    globalSetup: ["./test/global-setup/redis.ts", "./test/global-setup/cassandra.ts", "./test/global-setup/livekit.ts", "./test/global-setup/web.ts"],
    reporters: ["default", "./test/support/summary-reporter.ts"],
  },
});
