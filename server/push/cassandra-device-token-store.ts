import { CassandraSession, type CassandraConnectionOptions, type Row } from "../store/cassandra-session.js";
import { DEVICES_PER_USER_MAX_DEFAULT, PUSH_PLATFORMS, type DeviceRegistration, type DeviceToken, type DeviceTokenStore, type PushPlatform } from "./device-token-store.js";
import { compareRegistrations } from "./memory-device-token-store.js";

/** How to reach the cluster and where the tables go. */
export interface CassandraDeviceTokenStoreOptions extends CassandraConnectionOptions {
  /** An existing keyspace (the message store creates it); the two tables are created if missing. */
  readonly keyspace: string;
  readonly devicesMax?: number;
}

const KEYSPACE_NAME = /^[A-Za-z][A-Za-z0-9_]{0,47}$/;

function schema(ks: string): string[] {
  return [
    // One partition per user, bounded by devicesMax (trimmed on every registration).
    `CREATE TABLE IF NOT EXISTS ${ks}.push_devices (
      user_id text, device_id text, platform text, push_token text, registered_at_ms bigint,
      PRIMARY KEY (user_id, device_id))`,
    // Who holds a token ("token" is a CQL keyword, hence push_token): one row per token, so a token moves between users without a scan.
    `CREATE TABLE IF NOT EXISTS ${ks}.push_tokens (
      platform text, push_token text, user_id text, device_id text,
      PRIMARY KEY ((platform, push_token)))`,
  ];
}

/**
 * Device tokens in two Cassandra tables: the user's devices, and the token -> holder index that
 * keeps a token with one user. Writes are plain idempotent upserts and deletes (no lightweight
 * transactions: registrations are rare and the last one wins); every delete is preceded by a
 * read that checks the row still holds the token being removed. Consistency is the session's
 * (LOCAL_QUORUM by default).
 */
export class CassandraDeviceTokenStore implements DeviceTokenStore {
  readonly #session: CassandraSession;
  readonly #devicesMax: number;
  readonly #q;

  constructor(session: CassandraSession, keyspace: string, devicesMax: number) {
    this.#session = session;
    this.#devicesMax = devicesMax;
    const ks = keyspace;
    this.#q = {
      holder: `SELECT user_id, device_id FROM ${ks}.push_tokens WHERE platform = ? AND push_token = ?`,
      device: `SELECT platform, push_token FROM ${ks}.push_devices WHERE user_id = ? AND device_id = ?`,
      devices: `SELECT user_id, device_id, platform, push_token, registered_at_ms FROM ${ks}.push_devices WHERE user_id = ?`,
      putDevice: `INSERT INTO ${ks}.push_devices (user_id, device_id, platform, push_token, registered_at_ms) VALUES (?, ?, ?, ?, ?)`,
      putHolder: `INSERT INTO ${ks}.push_tokens (platform, push_token, user_id, device_id) VALUES (?, ?, ?, ?)`,
      deleteDevice: `DELETE FROM ${ks}.push_devices WHERE user_id = ? AND device_id = ?`,
      deleteHolder: `DELETE FROM ${ks}.push_tokens WHERE platform = ? AND push_token = ?`,
    };
  }

  async register(userId: string, device: DeviceToken, nowMs: number): Promise<DeviceRegistration> {
    const holder = await this.#holder(device.platform, device.token);
    if (holder !== undefined && (holder.userId !== userId || holder.deviceId !== device.deviceId)) {
      await this.#deleteDeviceIfHolds(holder.userId, holder.deviceId, device.platform, device.token);
    }
    const current = (await this.#session.read(this.#q.device, [userId, device.deviceId])).first();
    if (current !== null && (current.get("platform") !== device.platform || current.get("push_token") !== device.token)) {
      await this.#deleteHolderIfPoints(String(current.get("platform")) as PushPlatform, String(current.get("push_token")), userId, device.deviceId);
    }
    await this.#session.write(this.#q.putDevice, [userId, device.deviceId, device.platform, device.token, BigInt(nowMs)], true);
    await this.#session.write(this.#q.putHolder, [device.platform, device.token, userId, device.deviceId], true);
    const all = (await this.#allDevices(userId)).sort(compareRegistrations);
    for (const evicted of all.slice(this.#devicesMax)) {
      await this.#session.write(this.#q.deleteDevice, [userId, evicted.deviceId], true);
      await this.#deleteHolderIfPoints(evicted.platform, evicted.token, userId, evicted.deviceId);
    }
    return { userId, deviceId: device.deviceId, platform: device.platform, token: device.token, registeredAtMs: nowMs };
  }

  async unregister(userId: string, deviceId: string): Promise<boolean> {
    const current = (await this.#session.read(this.#q.device, [userId, deviceId])).first();
    if (current === null) return false;
    await this.#session.write(this.#q.deleteDevice, [userId, deviceId], true);
    await this.#deleteHolderIfPoints(String(current.get("platform")) as PushPlatform, String(current.get("push_token")), userId, deviceId);
    return true;
  }

  async removeToken(platform: PushPlatform, token: string): Promise<void> {
    const holder = await this.#holder(platform, token);
    if (holder === undefined) return;
    await this.#deleteDeviceIfHolds(holder.userId, holder.deviceId, platform, token);
    await this.#session.write(this.#q.deleteHolder, [platform, token], true);
  }

  async listDevices(userId: string): Promise<DeviceRegistration[]> {
    return (await this.#allDevices(userId)).sort(compareRegistrations).slice(0, this.#devicesMax);
  }

  async close(): Promise<void> {
    await this.#session.close();
  }

  async #allDevices(userId: string): Promise<DeviceRegistration[]> {
    // The partition is trimmed to devicesMax on every registration; the slack covers
    // registrations racing on other gateways.
    const rows = await this.#session.readUpTo(this.#q.devices, [userId], this.#devicesMax * 2 + 10);
    return rows.map(toRegistration);
  }

  async #holder(platform: PushPlatform, token: string): Promise<{ userId: string; deviceId: string } | undefined> {
    const row = (await this.#session.read(this.#q.holder, [platform, token])).first();
    return row === null ? undefined : { userId: String(row.get("user_id")), deviceId: String(row.get("device_id")) };
  }

  async #deleteDeviceIfHolds(userId: string, deviceId: string, platform: PushPlatform, token: string): Promise<void> {
    const row = (await this.#session.read(this.#q.device, [userId, deviceId])).first();
    if (row !== null && row.get("platform") === platform && row.get("push_token") === token) {
      await this.#session.write(this.#q.deleteDevice, [userId, deviceId], true);
    }
  }

  async #deleteHolderIfPoints(platform: PushPlatform, token: string, userId: string, deviceId: string): Promise<void> {
    const holder = await this.#holder(platform, token);
    if (holder?.userId === userId && holder.deviceId === deviceId) await this.#session.write(this.#q.deleteHolder, [platform, token], true);
  }
}

function toRegistration(row: Row): DeviceRegistration {
  const platform = String(row.get("platform")) as PushPlatform;
  if (!PUSH_PLATFORMS.includes(platform)) throw new Error(`push_devices holds an unknown platform ${JSON.stringify(platform)}`);
  return {
    userId: String(row.get("user_id")),
    deviceId: String(row.get("device_id")),
    platform,
    token: String(row.get("push_token")),
    registeredAtMs: Number(row.get("registered_at_ms")),
  };
}

/** Connects, creates the two tables if missing (the keyspace must exist), and returns the store. */
export async function openCassandraDeviceTokenStore(options: CassandraDeviceTokenStoreOptions): Promise<CassandraDeviceTokenStore> {
  if (!KEYSPACE_NAME.test(options.keyspace)) throw new Error(`invalid Cassandra keyspace name ${JSON.stringify(options.keyspace)}`);
  const session = new CassandraSession(options);
  try {
    await session.connect();
    const existing = await session.read("SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?", [options.keyspace]);
    const tables = new Set(existing.rows.map((r) => String(r.get("table_name"))));
    for (const statement of schema(options.keyspace)) {
      const table = /\.(\w+) \(/.exec(statement)?.[1];
      if (table === undefined || !tables.has(table)) await session.ddl(statement);
    }
    return new CassandraDeviceTokenStore(session, options.keyspace, options.devicesMax ?? DEVICES_PER_USER_MAX_DEFAULT);
  } catch (error) {
    await session.close().catch(() => {});
    throw error;
  }
}
