import { DatabaseSync, type SQLOutputValue } from "node:sqlite";
import { StoreUnavailableError } from "../core/result.js";
import { DEVICES_PER_USER_MAX_DEFAULT, PUSH_PLATFORMS, type DeviceRegistration, type DeviceToken, type DeviceTokenStore, type PushPlatform } from "./device-token-store.js";

/** How to open the embedded device store. */
export interface SqliteDeviceTokenStoreOptions {
  /** A file path, or ":memory:". */
  readonly path: string;
  readonly devicesMax?: number;
  /** full (default) survives power loss; normal only process crashes. */
  readonly synchronous?: "full" | "normal";
  /** How long a write waits for another process's write lock. Default 5 s. */
  readonly busyTimeoutMs?: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS push_devices (
  user_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  platform TEXT NOT NULL,
  token TEXT NOT NULL,
  registered_at_ms INTEGER NOT NULL,
  PRIMARY KEY (user_id, device_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS push_devices_by_token ON push_devices (platform, token);
`;

const ORDER = "ORDER BY registered_at_ms DESC, device_id ASC";

/**
 * Device tokens in a SQLite file (WAL), one transaction per registration so that the token's
 * move from a previous holder, the replacement and the per-user bound apply together, also
 * when several worker processes share the file.
 */
export class SqliteDeviceTokenStore implements DeviceTokenStore {
  readonly #db: DatabaseSync;
  readonly #devicesMax: number;
  readonly #sql;

  constructor(db: DatabaseSync, devicesMax: number) {
    this.#db = db;
    this.#devicesMax = devicesMax;
    this.#sql = {
      begin: db.prepare("BEGIN IMMEDIATE"),
      commit: db.prepare("COMMIT"),
      rollback: db.prepare("ROLLBACK"),
      deleteToken: db.prepare("DELETE FROM push_devices WHERE platform = ? AND token = ?"),
      upsert: db.prepare("INSERT OR REPLACE INTO push_devices (user_id, device_id, platform, token, registered_at_ms) VALUES (?, ?, ?, ?, ?)"),
      trim: db.prepare(`DELETE FROM push_devices WHERE user_id = ? AND device_id NOT IN (SELECT device_id FROM push_devices WHERE user_id = ? ${ORDER} LIMIT ?)`),
      unregister: db.prepare("DELETE FROM push_devices WHERE user_id = ? AND device_id = ?"),
      list: db.prepare(`SELECT user_id, device_id, platform, token, registered_at_ms FROM push_devices WHERE user_id = ? ${ORDER} LIMIT ?`),
    };
  }

  async register(userId: string, device: DeviceToken, nowMs: number): Promise<DeviceRegistration> {
    this.#transact(() => {
      this.#sql.deleteToken.run(device.platform, device.token);
      this.#sql.upsert.run(userId, device.deviceId, device.platform, device.token, nowMs);
      this.#sql.trim.run(userId, userId, this.#devicesMax);
    });
    return { userId, deviceId: device.deviceId, platform: device.platform, token: device.token, registeredAtMs: nowMs };
  }

  async unregister(userId: string, deviceId: string): Promise<boolean> {
    return this.#run(() => Number(this.#sql.unregister.run(userId, deviceId).changes) > 0);
  }

  async removeToken(platform: PushPlatform, token: string): Promise<void> {
    this.#run(() => this.#sql.deleteToken.run(platform, token));
  }

  async listDevices(userId: string): Promise<DeviceRegistration[]> {
    return this.#run(() => this.#sql.list.all(userId, this.#devicesMax).map(toRegistration));
  }

  async close(): Promise<void> {
    if (this.#db.isOpen) this.#db.close();
  }

  #transact(body: () => void): void {
    this.#run(() => {
      this.#sql.begin.run();
      try {
        body();
        this.#sql.commit.run();
      } catch (error) {
        if (this.#db.isTransaction) this.#sql.rollback.run();
        throw error;
      }
    });
  }

  #run<T>(call: () => T): T {
    try {
      return call();
    } catch (error) {
      // SQLITE_BUSY: another process held the write lock past the busy timeout.
      if ((error as { errcode?: number }).errcode === 5) throw new StoreUnavailableError("the device store is busy", { cause: error });
      throw error;
    }
  }
}

function toRegistration(row: Record<string, SQLOutputValue>): DeviceRegistration {
  const platform = String(row.platform) as PushPlatform;
  if (!PUSH_PLATFORMS.includes(platform)) throw new Error(`push_devices holds an unknown platform ${JSON.stringify(row.platform)}`);
  return {
    userId: String(row.user_id),
    deviceId: String(row.device_id),
    platform,
    token: String(row.token),
    registeredAtMs: Number(row.registered_at_ms),
  };
}

/** Opens (creating if needed) the device store at `options.path`. */
export function openSqliteDeviceTokenStore(options: SqliteDeviceTokenStoreOptions): SqliteDeviceTokenStore {
  const db = new DatabaseSync(options.path, { timeout: options.busyTimeoutMs ?? 5000 });
  try {
    if (options.path !== ":memory:") {
      db.exec("PRAGMA journal_mode = WAL");
      db.exec(`PRAGMA synchronous = ${options.synchronous === "normal" ? "NORMAL" : "FULL"}`);
    }
    db.exec(SCHEMA);
    return new SqliteDeviceTokenStore(db, options.devicesMax ?? DEVICES_PER_USER_MAX_DEFAULT);
  } catch (error) {
    db.close();
    throw error;
  }
}
