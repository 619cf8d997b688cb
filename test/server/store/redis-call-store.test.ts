import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { StoreUnavailableError } from "../../../server/core/result.js";
import { openRedisCallStore } from "../../../server/store/redis-call-store.js";
import { sharedRedisUrl } from "../../support/redis.js";
import { describeCallStoreContract } from "./call-store-contract.js";

const url = sharedRedisUrl();

describe.skipIf(url === "")("RedisCallStore", () => {
  // Two connections with one key prefix per test, as two nodes share one Redis.
  describeCallStoreContract("RedisCallStore (two connections)", async () => {
    const keyPrefix = `t${randomBytes(4).toString("hex")}:`;
    const a = await openRedisCallStore({ url, keyPrefix });
    const b = await openRedisCallStore({ url, keyPrefix });
    return { a, b, close: async () => void (await Promise.all([a.close(), b.close()])) };
  });

  it("fails with StoreUnavailableError when Redis does not answer", async () => {
    await expect(openRedisCallStore({ url: "redis://127.0.0.1:1", connectWaitMs: 300 })).rejects.toBeInstanceOf(StoreUnavailableError);
  });
});
