import { DEVICES_PER_USER_MAX_DEFAULT, type DeviceRegistration, type DeviceToken, type DeviceTokenStore, type PushPlatform } from "./device-token-store.js";

/** Most recent first, ties by device id: the order every adapter lists devices in. */
export function compareRegistrations(a: DeviceRegistration, b: DeviceRegistration): number {
  return b.registeredAtMs - a.registeredAtMs || (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0);
}

/** Device tokens in this process's memory only: for tests and the memory message store. */
export class MemoryDeviceTokenStore implements DeviceTokenStore {
  readonly #devicesMax: number;
  /** userId -> deviceId -> registration. */
  readonly #byUser = new Map<string, Map<string, DeviceRegistration>>();
  /** "platform token" -> registration. */
  readonly #byToken = new Map<string, DeviceRegistration>();

  constructor(options: { devicesMax?: number } = {}) {
    this.#devicesMax = options.devicesMax ?? DEVICES_PER_USER_MAX_DEFAULT;
  }

  async register(userId: string, device: DeviceToken, nowMs: number): Promise<DeviceRegistration> {
    const previousHolder = this.#byToken.get(tokenKey(device.platform, device.token));
    if (previousHolder !== undefined) this.#remove(previousHolder);
    const existing = this.#byUser.get(userId)?.get(device.deviceId);
    if (existing !== undefined) this.#remove(existing);
    const registration: DeviceRegistration = { userId, deviceId: device.deviceId, platform: device.platform, token: device.token, registeredAtMs: nowMs };
    let devices = this.#byUser.get(userId);
    if (devices === undefined) this.#byUser.set(userId, (devices = new Map()));
    devices.set(device.deviceId, registration);
    this.#byToken.set(tokenKey(device.platform, device.token), registration);
    const sorted = [...devices.values()].sort(compareRegistrations);
    for (const evicted of sorted.slice(this.#devicesMax)) this.#remove(evicted);
    return registration;
  }

  async unregister(userId: string, deviceId: string): Promise<boolean> {
    const existing = this.#byUser.get(userId)?.get(deviceId);
    if (existing === undefined) return false;
    this.#remove(existing);
    return true;
  }

  async removeToken(platform: PushPlatform, token: string): Promise<void> {
    const holder = this.#byToken.get(tokenKey(platform, token));
    if (holder !== undefined) this.#remove(holder);
  }

  async listDevices(userId: string): Promise<DeviceRegistration[]> {
    return [...(this.#byUser.get(userId)?.values() ?? [])].sort(compareRegistrations).slice(0, this.#devicesMax);
  }

  async close(): Promise<void> {}

  #remove(registration: DeviceRegistration): void {
    const devices = this.#byUser.get(registration.userId);
    devices?.delete(registration.deviceId);
    if (devices?.size === 0) this.#byUser.delete(registration.userId);
    this.#byToken.delete(tokenKey(registration.platform, registration.token));
  }
}

function tokenKey(platform: PushPlatform, token: string): string {
  return `${platform} ${token}`;
}
