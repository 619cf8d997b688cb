import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { ConnectResponseSchema, DisconnectReason, type ConnectResponse, type Disconnect } from "../../../gen/im/v1/gateway_pb.js";
import { Connection, QueueSink, type FrameFactory, type FrameSink } from "../../../server/gateway/connection.js";
import { encodeMessage, Publication } from "../../../server/route/publication.js";
import { toWireMessage } from "../../../server/gateway/codec.js";

type Frame = { push: Publication } | { disconnect: Disconnect } | { heartbeat: number } | { reply: ConnectResponse };

const limits = { pushQueueMax: 3, pushQueueBytesMax: 100, inFlightMax: 2, heartbeatTimeoutMs: 1000, heartbeatIntervalMs: 300 };
const factory: FrameFactory<Frame> = {
  push: (push) => ({ push }),
  reply: (reply) => ({ reply }),
  heartbeat: (heartbeat) => ({ heartbeat }),
  disconnect: (disconnect) => ({ disconnect }),
};

const message = (seq: number, bytes = 1): Publication =>
  Publication.message(
    "test",
    encodeMessage(
      toWireMessage({ conversationId: "g:a", seq, prevSeq: seq - 1, messageId: "m", senderId: "u", sentAtMs: 0, contentType: "t", data: new Uint8Array(bytes), clientMsgId: `c${seq}` }),
    ),
  );

function open(pushOnly = false, expiresAtMs = Infinity): { conn: Connection; sink: QueueSink<Frame> } {
  const sink = new QueueSink(factory);
  return { conn: new Connection("c1", "u", expiresAtMs, 0, limits, sink, pushOnly), sink };
}

async function drain(sink: QueueSink<Frame>): Promise<Frame[]> {
  const out: Frame[] = [];
  for await (const f of sink.frames()) out.push(f);
  return out;
}

function reasonOf(frames: Frame[]): DisconnectReason | undefined {
  const last = frames[frames.length - 1];
  return last !== undefined && "disconnect" in last ? last.disconnect.reason : undefined;
}

/** A sink whose transport reports the bytes its TCP connection received, and takes probes. */
class WireSink implements FrameSink {
  read = 0;
  probes = 0;
  ended: Disconnect | undefined | "no" = "no";
  push(): void {}
  reply(): void {}
  heartbeat(): void {}
  end(disconnect: Disconnect | undefined): void {
    this.ended = disconnect;
  }
  queuedPushes(): number {
    return 0;
  }
  queuedBytes(): number {
    return 0;
  }
  bytesRead(): number {
    return this.read;
  }
  probe(): boolean {
    this.probes++;
    return true;
  }
}

describe("Connection", () => {
  it("disconnects with SLOW_CONSUMER when more pushes wait than the bound, dropping later pushes", async () => {
    const { conn, sink } = open();
    for (let seq = 1; seq <= 5; seq++) conn.deliver(message(seq));
    const frames = await drain(sink);
    expect(frames.filter((f) => "push" in f)).toHaveLength(3);
    expect(reasonOf(frames)).toBe(DisconnectReason.SLOW_CONSUMER);
  });

  it("bounds queued body bytes too", async () => {
    const { conn, sink } = open();
    conn.deliver(message(1, 60));
    conn.deliver(message(2, 60));
    const frames = await drain(sink);
    expect(frames.filter((f) => "push" in f)).toHaveLength(1);
    expect(reasonOf(frames)).toBe(DisconnectReason.SLOW_CONSUMER);
  });

  it("counts a push out of the bound once the writer takes it", async () => {
    const { conn, sink } = open();
    const frames = sink.frames();
    for (let seq = 1; seq <= 10; seq++) {
      const pub = message(seq);
      conn.deliver(pub);
      expect(((await frames.next()).value as { push: Publication }).push).toBe(pub);
    }
    expect(conn.ending).toBe(false);
  });

  it("answers are not bounded by the push queue, requests in flight are", () => {
    const { conn } = open();
    for (let i = 0; i < 10; i++) conn.reply(create(ConnectResponseSchema, { requestId: BigInt(i + 1) }));
    expect(conn.ending).toBe(false);
    expect(conn.begin()).toBe(true);
    expect(conn.begin()).toBe(true);
    expect(conn.begin()).toBe(false);
    expect(conn.ending).toBe(true);
  });

  it.each([
    ["heartbeat timeout", false, Infinity, 999, undefined],
    ["heartbeat timeout", false, Infinity, 1000, DisconnectReason.HEARTBEAT_TIMEOUT],
    ["token expiry", false, 500, 499, undefined],
    ["token expiry", false, 500, 500, DisconnectReason.TOKEN_EXPIRED],
    ["no timeout on push-only streams", true, Infinity, 5000, undefined],
  ])("tick: %s (push-only %s, expires %s, now %s)", async (_name, pushOnly, expiresAtMs, now, reason) => {
    const { conn, sink } = open(pushOnly, expiresAtMs);
    conn.tick(now);
    if (reason === undefined) {
      expect(conn.ending).toBe(false);
      return;
    }
    expect(reasonOf(await drain(sink))).toBe(reason);
  });

  it("a frame from the client postpones the heartbeat timeout", () => {
    const { conn } = open();
    conn.heard(800);
    conn.tick(1500);
    expect(conn.ending).toBe(false);
    conn.tick(1800);
    expect(conn.ending).toBe(true);
  });

  it("counts any byte the client's TCP connection carries as heard, and probes a silent client once at half the timeout", () => {
    const sink = new WireSink();
    const conn = new Connection("c1", "u", Infinity, 0, limits, sink, false);
    conn.tick(400);
    expect(sink.probes).toBe(0);
    conn.tick(500);
    conn.tick(700);
    expect(sink.probes).toBe(1);
    sink.read += 17; // the PING's ack
    conn.tick(900);
    conn.tick(1300);
    expect(sink.probes).toBe(1);
    conn.tick(1400);
    expect(sink.probes).toBe(2);
    conn.tick(1899);
    expect(conn.ending).toBe(false);
    conn.tick(1900);
    expect(conn.ending).toBe(true);
    expect((sink.ended as Disconnect).reason).toBe(DisconnectReason.HEARTBEAT_TIMEOUT);
  });

  it("sends heartbeats on push-only streams at the interval", async () => {
    const { conn, sink } = open(true);
    for (const now of [100, 300, 400, 600, 650]) conn.tick(now);
    conn.close();
    expect(await drain(sink)).toEqual([{ heartbeat: 300 }, { heartbeat: 600 }]);
  });
});
