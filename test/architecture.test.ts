import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

/** Files the simulator runs on virtual time: they must not reach for I/O, timers or global time. */
const PURE = [
  ...readdirSync("server/core").map((f) => path.join("server/core", f)),
  "server/route/hub.ts",
  "server/route/publication.ts",
  "server/route/channel-publisher.ts",
  "server/gateway/connection.ts",
  "server/gateway/drain.ts",
  "client/sync-engine.ts",
  "client/client-core.ts",
  "client/client-settings.ts",
  "client/client-protocol.ts",
  "client/heartbeat.ts",
  "client/outbox.ts",
  "client/clock.ts",
  "client/call-engine.ts",
  "client/backoff.ts",
  ...readdirSync("web/src/model").map((f) => path.join("web/src/model", f)),
];

const FORBIDDEN: [RegExp, string][] = [
  [/from\s+["']node:/, "a node:* import"],
  [/\bDate\.now\(/, "Date.now()"],
  [/\bnew Date\(/, "new Date()"],
  [/\bMath\.random\(/, "Math.random()"],
  [/\b(setTimeout|setInterval|setImmediate|queueMicrotask)\(/, "a timer"],
  [/\bprocess\./, "process"],
  [/from\s+["'](?!\.)(?!@bufbuild\/protobuf)[^"']+["']/, "a package import"],
];

describe("the pure core", () => {
  it.each(PURE)("%s uses no I/O, timers, global time or randomness", (file) => {
    const source = readFileSync(file, "utf8");
    for (const [pattern, what] of FORBIDDEN) expect(pattern.test(source), `${file} uses ${what}`).toBe(false);
  });
});
