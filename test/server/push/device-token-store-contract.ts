import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { DeviceRegistration, DeviceTokenStore } from "../../../server/push/device-token-store.js";

/** How the suite gets a store; `devicesMax` is 3 in every store it opens. */
export interface DeviceTokenStoreContractOptions {
  /** Opens the data of the store last returned by `open` again (after it was closed). */
  readonly durable?: { readonly reopen: () => Promise<DeviceTokenStore> | DeviceTokenStore };
}

/** The devices limit every store under test must be opened with. */
export const CONTRACT_DEVICES_MAX = 3;

const ids = (devices: readonly DeviceRegistration[]) => devices.map((d) => `${d.userId}/${d.deviceId}=${d.platform}:${d.token}`);

/**
 * The DeviceTokenStore contract (server/push/device-token-store.ts), run against every
 * adapter. Each test gets a fresh store from `open` (with devicesMax = 3).
 */
export function describeDeviceTokenStoreContract(
  name: string,
  open: () => Promise<DeviceTokenStore> | DeviceTokenStore,
  options: DeviceTokenStoreContractOptions = {},
): void {
  describe(`${name} (DeviceTokenStore contract)`, () => {
    let store: DeviceTokenStore;
    beforeEach(async () => {
      store = await open();
    });
    afterEach(async () => {
      await store.close();
    });

    describe("register()", () => {
      it("stores a device and returns the registration", async () => {
        const r = await store.register("alice", { deviceId: "phone", platform: "apns", token: "aa11" }, 1000);
        expect(r).toEqual({ userId: "alice", deviceId: "phone", platform: "apns", token: "aa11", registeredAtMs: 1000 });
        expect(await store.listDevices("alice")).toEqual([r]);
        expect(await store.listDevices("bob")).toEqual([]);
      });

      it("replaces the token of the same device id, and frees the old token", async () => {
        await store.register("alice", { deviceId: "phone", platform: "apns", token: "old" }, 1000);
        await store.register("alice", { deviceId: "phone", platform: "fcm", token: "new" }, 2000);
        expect(ids(await store.listDevices("alice"))).toEqual(["alice/phone=fcm:new"]);
        // The old token is no one's any more: bob may take it without touching alice.
        await store.register("bob", { deviceId: "tablet", platform: "apns", token: "old" }, 3000);
        expect(ids(await store.listDevices("alice"))).toEqual(["alice/phone=fcm:new"]);
      });

      it("moves a token to the user who registers it last", async () => {
        await store.register("alice", { deviceId: "phone", platform: "fcm", token: "t1" }, 1000);
        await store.register("alice", { deviceId: "laptop", platform: "fcm", token: "t2" }, 1100);
        await store.register("bob", { deviceId: "phone-2", platform: "fcm", token: "t1" }, 2000);
        expect(ids(await store.listDevices("alice"))).toEqual(["alice/laptop=fcm:t2"]);
        expect(ids(await store.listDevices("bob"))).toEqual(["bob/phone-2=fcm:t1"]);
      });

      it("tells tokens of different platforms apart", async () => {
        await store.register("alice", { deviceId: "a", platform: "apns", token: "same" }, 1000);
        await store.register("bob", { deviceId: "b", platform: "fcm", token: "same" }, 1000);
        expect(ids(await store.listDevices("alice"))).toEqual(["alice/a=apns:same"]);
        expect(ids(await store.listDevices("bob"))).toEqual(["bob/b=fcm:same"]);
      });

      it("keeps at most devicesMax devices per user, dropping the least recently registered", async () => {
        for (let i = 1; i <= CONTRACT_DEVICES_MAX + 1; i++) await store.register("alice", { deviceId: `d${i}`, platform: "fcm", token: `t${i}` }, 1000 + i);
        expect((await store.listDevices("alice")).map((d) => d.deviceId)).toEqual(["d4", "d3", "d2"]);
        // A re-registration refreshes a device, so it is no longer the oldest.
        await store.register("alice", { deviceId: "d2", platform: "fcm", token: "t2" }, 2000);
        await store.register("alice", { deviceId: "d5", platform: "fcm", token: "t5" }, 2001);
        expect((await store.listDevices("alice")).map((d) => d.deviceId)).toEqual(["d5", "d2", "d4"]);
        // The dropped device's token is free again.
        await store.register("bob", { deviceId: "x", platform: "fcm", token: "t1" }, 3000);
        expect(ids(await store.listDevices("bob"))).toEqual(["bob/x=fcm:t1"]);
      });

      it("is idempotent", async () => {
        const device = { deviceId: "phone", platform: "apns", token: "aa" } as const;
        await store.register("alice", device, 1000);
        await store.register("alice", device, 1000);
        expect(ids(await store.listDevices("alice"))).toEqual(["alice/phone=apns:aa"]);
      });
    });

    describe("listDevices()", () => {
      it("lists most recently registered first, ties by device id", async () => {
        await store.register("alice", { deviceId: "b", platform: "fcm", token: "1" }, 1000);
        await store.register("alice", { deviceId: "a", platform: "fcm", token: "2" }, 1000);
        await store.register("alice", { deviceId: "c", platform: "fcm", token: "3" }, 1500);
        expect((await store.listDevices("alice")).map((d) => d.deviceId)).toEqual(["c", "a", "b"]);
      });
    });

    describe("unregister()", () => {
      it("removes the device and says whether there was one", async () => {
        await store.register("alice", { deviceId: "phone", platform: "apns", token: "aa" }, 1000);
        expect(await store.unregister("alice", "phone")).toBe(true);
        expect(await store.unregister("alice", "phone")).toBe(false);
        expect(await store.unregister("bob", "phone")).toBe(false);
        expect(await store.listDevices("alice")).toEqual([]);
      });

      it("removes only the caller's device of that id", async () => {
        await store.register("alice", { deviceId: "phone", platform: "apns", token: "aa" }, 1000);
        await store.register("bob", { deviceId: "phone", platform: "apns", token: "bb" }, 1000);
        await store.unregister("alice", "phone");
        expect(ids(await store.listDevices("bob"))).toEqual(["bob/phone=apns:bb"]);
      });
    });

    describe("removeToken()", () => {
      it("removes the registration holding the token", async () => {
        await store.register("alice", { deviceId: "phone", platform: "apns", token: "dead" }, 1000);
        await store.register("alice", { deviceId: "tablet", platform: "apns", token: "live" }, 1000);
        await store.removeToken("apns", "dead");
        expect(ids(await store.listDevices("alice"))).toEqual(["alice/tablet=apns:live"]);
      });

      it("leaves a device whose token was replaced meanwhile, and ignores unknown tokens", async () => {
        await store.register("alice", { deviceId: "phone", platform: "apns", token: "old" }, 1000);
        await store.register("alice", { deviceId: "phone", platform: "apns", token: "new" }, 2000);
        await store.removeToken("apns", "old");
        await store.removeToken("fcm", "never-seen");
        await store.removeToken("fcm", "new");
        expect(ids(await store.listDevices("alice"))).toEqual(["alice/phone=apns:new"]);
      });
    });

    if (options.durable !== undefined) {
      const { reopen } = options.durable;
      describe("durability", () => {
        it("keeps registrations across a reopen", async () => {
          await store.register("alice", { deviceId: "phone", platform: "apns", token: "aa" }, 1000);
          await store.register("bob", { deviceId: "phone", platform: "fcm", token: "aa" }, 1000);
          await store.close();
          store = await reopen();
          expect(ids(await store.listDevices("alice"))).toEqual(["alice/phone=apns:aa"]);
          expect(ids(await store.listDevices("bob"))).toEqual(["bob/phone=fcm:aa"]);
        });
      });
    }
  });
}
