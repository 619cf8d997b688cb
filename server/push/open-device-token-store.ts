import { mkdirSync } from "node:fs";
import path from "node:path";
import type { ServerConfig } from "../config.js";
import { openCassandraDeviceTokenStore } from "./cassandra-device-token-store.js";
import type { DeviceTokenStore } from "./device-token-store.js";
import { MemoryDeviceTokenStore } from "./memory-device-token-store.js";
import { openSqliteDeviceTokenStore } from "./sqlite-device-token-store.js";

/**
 * The device store beside the message store the configuration picks: memory with memory,
 * `<data-dir>/devices.sqlite` with SQLite, two tables in the same keyspace with Cassandra
 * (opened after the message store, which creates the keyspace).
 */
export async function openDeviceTokenStore(config: ServerConfig): Promise<DeviceTokenStore> {
  if (config.store === "memory") return new MemoryDeviceTokenStore();
  if (config.store === "cassandra") {
    return openCassandraDeviceTokenStore({
      contactPoints: config.cassandraContactPoints.split(",").map((c) => c.trim()).filter((c) => c !== ""),
      keyspace: config.cassandraKeyspace,
      localDataCenter: config.cassandraLocalDc,
      consistency: config.cassandraConsistency,
    });
  }
  mkdirSync(config.dataDir, { recursive: true });
  return openSqliteDeviceTokenStore({ path: path.join(config.dataDir, "devices.sqlite"), synchronous: config.sqliteSync });
}
