import { MemoryDeviceTokenStore } from "../../../server/push/memory-device-token-store.js";
import { CONTRACT_DEVICES_MAX, describeDeviceTokenStoreContract } from "./device-token-store-contract.js";

describeDeviceTokenStoreContract("MemoryDeviceTokenStore", () => new MemoryDeviceTokenStore({ devicesMax: CONTRACT_DEVICES_MAX }));
