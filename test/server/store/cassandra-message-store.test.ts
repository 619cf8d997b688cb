import { afterAll, beforeAll, vi } from "vitest";
import { openCassandraMessageStore, type CassandraMessageStoreOptions } from "../../../server/store/cassandra-message-store.js";
import { dropKeyspace, rawClient, sharedCassandraContactPoint, uniqueKeyspace } from "../../support/cassandra.js";
import { describeMessageStoreContract } from "./message-store-contract.js";

// Real round trips to a JVM on 2 shared cores: the property test alone runs 25 fresh stores.
vi.setConfig({ testTimeout: 120_000 });

const contactPoint = sharedCassandraContactPoint();
const keyspace = uniqueKeyspace("contract");
const options: CassandraMessageStoreOptions = { contactPoints: [contactPoint], localDataCenter: "datacenter1", keyspace };
const admin = rawClient(contactPoint);

/** Every table but schema_meta: each test starts from an empty keyspace without the cost of creating one. */
const TABLES = ["conversations", "user_conversations", "messages", "client_msg_ids", "seq_leases", "seq_wants"];

beforeAll(async () => {
  await (await openCassandraMessageStore(options)).close();
  await admin.connect();
});
afterAll(async () => {
  await admin.shutdown();
  await dropKeyspace(contactPoint, keyspace);
});

describeMessageStoreContract(
  "CassandraMessageStore",
  async () => {
    await Promise.all(TABLES.map((t) => admin.execute(`TRUNCATE ${keyspace}.${t}`)));
    return openCassandraMessageStore(options);
  },
  { durable: { reopen: () => openCassandraMessageStore(options) } },
);
