import { createGrpcTransport } from "@connectrpc/connect-node";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { ImClient } from "../../client/im-client.js";
import { DEFAULT_LIMITS } from "../../server/core/limits.js";
import { createMessageIdGenerator } from "../../server/core/message-id.js";
import { Messaging } from "../../server/core/messaging.js";
import { StoreUnavailableError } from "../../server/core/result.js";
import { createTokenVerifier, DEV_JWT_SECRET, mintToken } from "../../server/gateway/auth.js";
import { startGatewayServer, type GatewayServer } from "../../server/gateway/gateway-server.js";
import { NoBroker } from "../../server/route/broker.js";
import { ChannelPublisher } from "../../server/route/channel-publisher.js";
import { Hub } from "../../server/route/hub.js";
import type { AppendResult, NewMessage } from "../../server/store/message-store.js";
import { MemoryMessageStore } from "../../server/store/memory-message-store.js";
import { systemClock, systemRandom } from "../../server/system.js";
import { waitFor } from "../support/test-server.js";

/** Fails the first `failures` appends as a store outage would: the write may or may not be applied. */
class FlakyStore extends MemoryMessageStore {
  constructor(public failures: number, private readonly applyBeforeFailing: boolean) {
    super();
  }
  override async append(message: NewMessage): Promise<AppendResult> {
    if (this.failures > 0) {
      this.failures--;
      if (this.applyBeforeFailing) await super.append(message);
      throw new StoreUnavailableError("store timed out");
    }
    return super.append(message);
  }
}

describe("a send that meets a store outage on a live connection", () => {
  let gateway: GatewayServer | undefined;
  let client: ImClient | undefined;
  afterEach(async () => {
    await client?.close();
    await gateway?.close({ drainTimeoutMs: 100, reconnectSpreadMs: 0 });
  });

  it.each([
    ["the write failed", false],
    ["the write succeeded but its answer was lost", true],
  ])("is retried until stored, once (%s)", async (_name, applied) => {
    const store = new FlakyStore(3, applied);
    let messaging: Messaging | undefined;
    const hub = new Hub({ broker: new NoBroker(), groupsOf: (u) => messaging!.groupsOf(u) });
    const events = new ChannelPublisher("test", hub, new NoBroker());
    messaging = new Messaging({ store, events, clock: systemClock, ids: createMessageIdGenerator(systemClock, systemRandom), limits: DEFAULT_LIMITS });
    gateway = await startGatewayServer({
      host: "127.0.0.1",
      port: 0,
      messaging,
      hub,
      verifier: createTokenVerifier(DEV_JWT_SECRET),
      clock: systemClock,
      logger: pino({ level: "silent" }),
      maxFrameBytes: 1 << 20,
      limits: { pushQueueMax: 100, pushQueueBytesMax: 1 << 20, inFlightMax: 16, heartbeatTimeoutMs: 60_000, heartbeatIntervalMs: 30_000 },
    });
    client = new ImClient({
      transport: createGrpcTransport({ baseUrl: `http://127.0.0.1:${gateway.port}` }),
      token: await mintToken(DEV_JWT_SECRET, "alice"),
      backoff: { baseMs: 10, maxMs: 50 },
    });
    const states: string[] = [];
    client.on("state", (s) => states.push(s));
    client.start();
    await waitFor(() => client!.idle(), "client live");
    const result = await client.send({ toUserId: "bob", body: "persist me", clientMsgId: "r-1" });
    expect(result.seq).toBe(1n);
    expect(result.duplicate).toBe(applied);
    expect(store.failures).toBe(0);
    expect(await store.readRange(result.conversationId, 0, undefined, 10)).toHaveLength(1);
    // Retried on the same connection, not by reconnecting.
    expect(states).toEqual(["connecting", "syncing", "live"]);
  });
});
