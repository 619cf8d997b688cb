import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { openSqliteDeviceTokenStore } from "../../../server/push/sqlite-device-token-store.js";
import { CONTRACT_DEVICES_MAX, describeDeviceTokenStoreContract } from "./device-token-store-contract.js";

const dir = mkdtempSync(join(tmpdir(), "sqlite-device-token-store-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;
let lastPath = "";
const fresh = () => (lastPath = join(dir, `devices-${++counter}.sqlite`));

describeDeviceTokenStoreContract("SqliteDeviceTokenStore in memory", () => openSqliteDeviceTokenStore({ path: ":memory:", devicesMax: CONTRACT_DEVICES_MAX }));

describeDeviceTokenStoreContract("SqliteDeviceTokenStore on a file", () => openSqliteDeviceTokenStore({ path: fresh(), devicesMax: CONTRACT_DEVICES_MAX }), {
  durable: { reopen: () => openSqliteDeviceTokenStore({ path: lastPath, devicesMax: CONTRACT_DEVICES_MAX }) },
});

describe("SqliteDeviceTokenStore on a shared file", () => {
  it("keeps one holder per token when two stores (worker processes) register it", async () => {
    const path = fresh();
    const a = openSqliteDeviceTokenStore({ path });
    const b = openSqliteDeviceTokenStore({ path });
    await a.register("alice", { deviceId: "phone", platform: "fcm", token: "t" }, 1000);
    await b.register("bob", { deviceId: "phone", platform: "fcm", token: "t" }, 2000);
    expect(await a.listDevices("alice")).toEqual([]);
    expect((await a.listDevices("bob")).map((d) => d.token)).toEqual(["t"]);
    await a.close();
    await b.close();
  });
});
