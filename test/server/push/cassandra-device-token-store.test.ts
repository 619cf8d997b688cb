import { afterAll, beforeAll, vi } from "vitest";
import { openCassandraDeviceTokenStore, type CassandraDeviceTokenStoreOptions } from "../../../server/push/cassandra-device-token-store.js";
import { dropKeyspace, rawClient, sharedCassandraContactPoint, uniqueKeyspace } from "../../support/cassandra.js";
import { CONTRACT_DEVICES_MAX, describeDeviceTokenStoreContract } from "./device-token-store-contract.js";

vi.setConfig({ testTimeout: 60_000 });

const contactPoint = sharedCassandraContactPoint();
const keyspace = uniqueKeyspace("devices");
const options: CassandraDeviceTokenStoreOptions = { contactPoints: [contactPoint], localDataCenter: "datacenter1", keyspace, devicesMax: CONTRACT_DEVICES_MAX };
const admin = rawClient(contactPoint);

beforeAll(async () => {
  await admin.connect();
  await admin.execute(`CREATE KEYSPACE IF NOT EXISTS ${keyspace} WITH replication = {'class': 'NetworkTopologyStrategy', 'datacenter1': 1}`);
  await (await openCassandraDeviceTokenStore(options)).close();
}, 120_000);
afterAll(async () => {
  await admin.shutdown();
  await dropKeyspace(contactPoint, keyspace);
});

describeDeviceTokenStoreContract(
  "CassandraDeviceTokenStore",
  async () => {
    await Promise.all(["push_devices", "push_tokens"].map((t) => admin.execute(`TRUNCATE ${keyspace}.${t}`)));
    return openCassandraDeviceTokenStore(options);
  },
  { durable: { reopen: () => openCassandraDeviceTokenStore(options) } },
);
