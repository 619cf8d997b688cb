/** The push provider a device token belongs to. */
export type PushPlatform = "apns" | "fcm";

/** Every platform, for validation and mapping. */
export const PUSH_PLATFORMS: readonly PushPlatform[] = ["apns", "fcm"];

/** A device as the app registers it. */
export interface DeviceToken {
  /** The app's stable id for the installation (unique per user). */
  readonly deviceId: string;
  readonly platform: PushPlatform;
  /** The provider's token for the device. */
  readonly token: string;
}

/** A stored registration. */
export interface DeviceRegistration extends DeviceToken {
  readonly userId: string;
  readonly registeredAtMs: number;
}

/** Devices kept per user unless a store is told otherwise. */
export const DEVICES_PER_USER_MAX_DEFAULT = 20;

/**
 * Where device push tokens live. Adapters: memory (tests), SQLite (embedded), Cassandra
 * (shared by many gateways). All run the contract suite in test/server/push/.
 *
 * Contract:
 * - A (platform, token) pair belongs to at most one registration: registering it for a user
 *   removes it from whichever user or device held it before, so a device that changed hands
 *   never gets the previous user's notifications.
 * - A (userId, deviceId) pair holds one token: registering it again replaces the token and
 *   the registration time.
 * - A user keeps at most `devicesMax` devices: registering one more removes the least
 *   recently registered.
 * - Every call is idempotent; a transient failure rejects with StoreUnavailableError (the
 *   effect may or may not have been applied). Durable adapters keep what a resolved call did
 *   across restarts.
 */
export interface DeviceTokenStore {
  /** Registers (or refreshes) a device of `userId` at `nowMs`; returns the stored registration. */
  register(userId: string, device: DeviceToken, nowMs: number): Promise<DeviceRegistration>;
  /** Removes a device of `userId`; false when there was none with that id. */
  unregister(userId: string, deviceId: string): Promise<boolean>;
  /**
   * Removes the registration holding this token, if any (the provider said it is no longer
   * valid). Only a registration whose token is still `token` is removed, so a token that was
   * replaced meanwhile keeps its newer registration.
   */
  removeToken(platform: PushPlatform, token: string): Promise<void>;
  /** The user's devices, most recently registered first (ties by device id), at most `devicesMax`. */
  listDevices(userId: string): Promise<DeviceRegistration[]>;
  close(): Promise<void>;
}
