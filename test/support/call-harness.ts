import { createSeededRandom } from "../../server/core/clock.js";
import { DEFAULT_CALL_TIMEOUTS, type CallEventOut, type CallRecord, type CallTimeouts } from "../../server/core/call-model.js";
import { Calls, type CallsDeps } from "../../server/core/calls.js";
import { DEFAULT_LIMITS } from "../../server/core/limits.js";
import { createMessageIdGenerator } from "../../server/core/message-id.js";
import { discardEvents } from "../../server/core/events.js";
import { Messaging } from "../../server/core/messaging.js";
import { MemoryMediaRoomProvider } from "../../server/media/memory-media-room-provider.js";
import type { CallEventPublisher } from "../../server/route/call-event-publisher.js";
import type { CallStore } from "../../server/store/call-store.js";
import { MemoryCallStore } from "../../server/store/memory-call-store.js";
import { MemoryMessageStore } from "../../server/store/memory-message-store.js";

/** Keeps every published event with its recipients. */
export class RecordingPublisher implements CallEventPublisher {
  readonly events: { userIds: string[]; event: CallEventOut }[] = [];
  publish(userIds: readonly string[], event: CallEventOut): void {
    this.events.push({ userIds: [...userIds], event });
  }
  /** Published snapshots of one call, in publish order. */
  snapshots(callId: string): CallRecord[] {
    return this.events.flatMap((e) => (e.event.type === "call" && e.event.call.callId === callId ? [e.event.call] : []));
  }
}

/** Short timeouts so tests can step past them. */
export const TEST_TIMEOUTS: CallTimeouts = {
  ...DEFAULT_CALL_TIMEOUTS,
  ringTimeoutMs: 1000,
  connectTimeoutMs: 800,
  keepaliveTimeoutMs: 600,
  keepaliveIntervalMs: 200,
  messageRetryMs: 100,
  retentionMs: 5000,
};

/** A Calls service on memory stores and a virtual clock. */
export interface CallHarness {
  readonly calls: Calls;
  readonly store: CallStore;
  readonly messages: MemoryMessageStore;
  readonly messaging: Messaging;
  readonly publisher: RecordingPublisher;
  readonly media: MemoryMediaRoomProvider;
  now: number;
  /** Advances the virtual clock and ticks. */
  advance(ms: number): Promise<number>;
  settled(): Promise<void>;
}

export function createCallHarness(options: { store?: CallStore; messages?: MemoryMessageStore; timeouts?: CallTimeouts; workerId?: string; seed?: number } & Partial<CallsDeps> = {}): CallHarness {
  const clock = { nowMs: () => harness.now };
  const messages = options.messages ?? new MemoryMessageStore();
  const ids = createMessageIdGenerator(clock, createSeededRandom(options.seed ?? 1));
  const messaging = new Messaging({ store: messages, events: discardEvents, clock, ids, limits: DEFAULT_LIMITS });
  const publisher = new RecordingPublisher();
  const media = new MemoryMediaRoomProvider();
  const store = options.store ?? new MemoryCallStore();
  const calls = new Calls({
    store,
    messages,
    publisher,
    media,
    sendMessage: async (senderId, conversationId, clientMsgId, contentType, data) => {
      const r = await messaging.send(senderId, { target: { conversationId }, clientMsgId, contentType, data });
      return r.ok ? "stored" : "refused";
    },
    iceServers: () => ({ iceServers: [{ urls: ["stun:127.0.0.1:3478"], username: "", credential: "" }], expiresAtMs: 0 }),
    clock,
    ids,
    timeouts: options.timeouts ?? TEST_TIMEOUTS,
    liveRoomViewersMax: 2,
    workerId: options.workerId ?? "w1",
    claimLeaseMs: 50,
    ...options,
  });
  const harness: CallHarness = {
    calls,
    store,
    messages,
    messaging,
    publisher,
    media,
    now: 1_000_000,
    async advance(ms) {
      harness.now += ms;
      const n = await calls.tick(harness.now);
      await calls.settled();
      return n;
    },
    async settled() {
      await calls.settled();
    },
  };
  return harness;
}
