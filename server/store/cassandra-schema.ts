import { readFileSync } from "node:fs";
import type { CassandraSession } from "./cassandra-session.js";

/** The schema this code reads and writes, kept in schema_meta. */
export const CASSANDRA_SCHEMA_VERSION = 1;

/** Seqs per log partition: bucket = floor(seq / SEQS_PER_BUCKET). Fixed for a keyspace's life. */
export const SEQS_PER_BUCKET = 1000;

/** Where the schema lives: deploy/cassandra/schema.cql, also usable with cqlsh after substitution. */
export const SCHEMA_FILE = new URL("../../deploy/cassandra/schema.cql", import.meta.url);

/** What the schema file's placeholders are filled in with. */
export interface SchemaSettings {
  /** Keyspace name: letters, digits and underscores, starting with a letter, at most 48 characters. */
  readonly keyspace: string;
  readonly localDataCenter: string;
  /** Replication factor in the local data centre for a keyspace this creates. */
  readonly replicationFactor: number;
}

const KEYSPACE_NAME = /^[A-Za-z][A-Za-z0-9_]{0,47}$/;

/** The schema file's statements with the placeholders filled in, in file order. */
export function schemaStatements(settings: SchemaSettings): string[] {
  if (!KEYSPACE_NAME.test(settings.keyspace)) {
    throw new Error(`invalid Cassandra keyspace name ${JSON.stringify(settings.keyspace)} (letters, digits, _; at most 48)`);
  }
  if (!Number.isSafeInteger(settings.replicationFactor) || settings.replicationFactor < 1) {
    throw new Error(`the replication factor must be a positive integer, got ${settings.replicationFactor}`);
  }
  const text = readFileSync(SCHEMA_FILE, "utf8")
    .split("\n")
    .map((line) => line.replace(/--.*$/, ""))
    .join("\n")
    .replaceAll("@@KEYSPACE@@", settings.keyspace)
    .replaceAll("@@LOCAL_DC@@", settings.localDataCenter.replaceAll("'", "''"))
    .replaceAll("@@REPLICATION_FACTOR@@", String(settings.replicationFactor));
  return text
    .split(";")
    .map((s) => s.trim().replace(/\s+/g, " "))
    .filter((s) => s !== "");
}

/**
 * Creates the keyspace and the tables that are missing (a restart against a complete schema
 * issues no schema change at all, so many gateways can start at once), then records or checks
 * the settings that must never change under existing data. Throws when the keyspace was
 * written by a newer schema or with another bucket size.
 */
export async function applySchema(session: CassandraSession, settings: SchemaSettings): Promise<void> {
  const statements = schemaStatements(settings);
  const existing = new Set(
    (await session.read("SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?", [settings.keyspace])).rows.map((r) =>
      String(r.get("table_name")),
    ),
  );
  for (const statement of statements) {
    const table = /^CREATE TABLE IF NOT EXISTS \S+?\.(\w+)/i.exec(statement)?.[1];
    if (table !== undefined && existing.has(table)) continue;
    if (/^CREATE KEYSPACE/i.test(statement) && existing.size > 0) continue;
    await session.ddl(statement);
  }
  const ks = settings.keyspace;
  for (const [name, value] of [["schema_version", CASSANDRA_SCHEMA_VERSION], ["seqs_per_bucket", SEQS_PER_BUCKET]] as const) {
    const result = await session.cas(`INSERT INTO ${ks}.schema_meta (name, value) VALUES (?, ?) IF NOT EXISTS`, [name, BigInt(value)]);
    const stored = result.applied ? value : Number(result.row?.get("value"));
    if (name === "schema_version" && stored > value) {
      throw new Error(`keyspace ${ks} holds schema version ${stored}, newer than this server's ${value}`);
    }
    if (name === "seqs_per_bucket" && stored !== value) {
      throw new Error(`keyspace ${ks} was written with ${stored} seqs per bucket; this server uses ${value}`);
    }
  }
}
