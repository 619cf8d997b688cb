import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createCall } from "../../../server/core/call-machine.js";
import { openSqliteCallStore } from "../../../server/store/sqlite-call-store.js";
import { TEST_TIMEOUTS } from "../../support/call-harness.js";
import { describeCallStoreContract } from "./call-store-contract.js";

const dir = mkdtempSync(join(tmpdir(), "sqlite-call-store-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

// Two connections to one file, as two worker processes hold it.
describeCallStoreContract("SqliteCallStore (two connections to one file)", async () => {
  const path = join(dir, `calls-${++n}.sqlite`);
  const a = openSqliteCallStore({ path, synchronous: "normal" });
  const b = openSqliteCallStore({ path, synchronous: "normal" });
  return { a, b, close: async () => void (await Promise.all([a.close(), b.close()])) };
});

describe("SqliteCallStore", () => {
  it("keeps calls, keys and slots across a reopen", async () => {
    const path = join(dir, "durable.sqlite");
    const store = openSqliteCallStore({ path });
    const call = createCall({ callId: "c1", conversationId: "d:a:b", callerId: "a", callerDeviceId: "d", clientCallId: "k", topology: "p2p", video: false, calleeIds: ["b"], busyUserIds: [] }, 1, TEST_TIMEOUTS);
    await store.create(call, ["a", "b"]);
    await store.close();
    const again = openSqliteCallStore({ path });
    expect(await again.get("c1")).toEqual(call);
    expect(await again.callOf("b")).toBe("c1");
    expect((await again.findByClientCallId("a", "k"))?.callId).toBe("c1");
    await again.close();
  });
});
