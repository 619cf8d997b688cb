import { describe, expect, it } from "vitest";
import { commandDelta, parseCommandStats } from "../../loadgen/redis-stats.js";

describe("parseCommandStats() and commandDelta()", () => {
  it("reads calls per command from INFO commandstats and subtracts two readings, leaving out INFO", () => {
    const before = parseCommandStats("# Commandstats\r\ncmdstat_publish:calls=10,usec=50,usec_per_call=5.00\r\ncmdstat_info:calls=3,usec=9\r\n");
    const after = parseCommandStats(
      "# Commandstats\r\ncmdstat_publish:calls=74,usec=300,usec_per_call=4.05,rejected_calls=0,failed_calls=0\r\ncmdstat_info:calls=4,usec=12\r\ncmdstat_evalsha:calls=2,usec=40\r\ncmdstat_ping:calls=0,usec=0\r\n",
    );
    expect(after.get("publish")).toBe(74);
    expect([...commandDelta(before, after)]).toEqual([
      ["publish", 64],
      ["evalsha", 2],
    ]);
  });
});
