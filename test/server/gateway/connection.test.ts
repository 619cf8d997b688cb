import { describe, expect, it } from "vitest";
import type { Disconnect } from "../../../gen/im/v1/gateway_pb.js";
import { DisconnectReason } from "../../../gen/im/v1/gateway_pb.js";
import { Connection, type FrameFactory } from "../../../server/gateway/connection.js";
import type { Push } from "../../../server/route/delivery-router.js";

type Frame = { push: Push } | { disconnect: Disconnect } | { heartbeat: number } | { reply: string };

const limits = { pushQueueMax: 3, pushQueueBytesMax: 100, inFlightMax: 2, heartbeatTimeoutMs: 1000, heartbeatIntervalMs: 300 };
const bidi: FrameFactory<Frame> = { push: (push) => ({ push }), disconnect: (disconnect) => ({ disconnect }) };
const browser: FrameFactory<Frame> = { ...bidi, heartbeat: (now) => ({ heartbeat: now }) };

const message = (seq: number, bytes = 1): Push => ({
  kind: "message",
  message: { conversationId: "g:a", seq, prevSeq: seq - 1, messageId: "m", senderId: "u", sentAtMs: 0, contentType: "t", data: new Uint8Array(bytes), clientMsgId: `c${seq}` },
});

async function drain(conn: Connection<Frame>): Promise<Frame[]> {
  const out: Frame[] = [];
  for await (const f of conn.frames()) out.push(f);
  return out;
}

function reasonOf(frames: Frame[]): DisconnectReason | undefined {
  const last = frames[frames.length - 1];
  return last !== undefined && "disconnect" in last ? last.disconnect.reason : undefined;
}

describe("Connection", () => {
  it("disconnects with SLOW_CONSUMER when more pushes wait than the bound, dropping later pushes", async () => {
    const conn = new Connection("c1", "u", Infinity, 0, limits, bidi);
    for (let seq = 1; seq <= 5; seq++) conn.push(message(seq));
    const frames = await drain(conn);
    expect(frames.filter((f) => "push" in f)).toHaveLength(3);
    expect(reasonOf(frames)).toBe(DisconnectReason.SLOW_CONSUMER);
  });

  it("bounds queued body bytes too", async () => {
    const conn = new Connection("c1", "u", Infinity, 0, limits, bidi);
    conn.push(message(1, 60));
    conn.push(message(2, 60));
    const frames = await drain(conn);
    expect(frames.filter((f) => "push" in f)).toHaveLength(1);
    expect(reasonOf(frames)).toBe(DisconnectReason.SLOW_CONSUMER);
  });

  it("counts a push out of the bound once the writer takes it", async () => {
    const conn = new Connection("c1", "u", Infinity, 0, limits, bidi);
    const frames = conn.frames();
    for (let seq = 1; seq <= 10; seq++) {
      conn.push(message(seq));
      expect(((await frames.next()).value as { push: Push }).push).toEqual(message(seq));
    }
    expect(conn.ending).toBe(false);
  });

  it("answers are not bounded by the push queue, requests in flight are", () => {
    const conn = new Connection("c1", "u", Infinity, 0, limits, bidi);
    for (let i = 0; i < 10; i++) conn.reply({ reply: `r${i}` });
    expect(conn.ending).toBe(false);
    expect(conn.begin()).toBe(true);
    expect(conn.begin()).toBe(true);
    expect(conn.begin()).toBe(false);
    expect(conn.ending).toBe(true);
  });

  it.each([
    ["heartbeat timeout", bidi, Infinity, 999, undefined],
    ["heartbeat timeout", bidi, Infinity, 1000, DisconnectReason.HEARTBEAT_TIMEOUT],
    ["token expiry", bidi, 500, 499, undefined],
    ["token expiry", bidi, 500, 500, DisconnectReason.TOKEN_EXPIRED],
    ["no timeout on push-only streams", browser, Infinity, 5000, undefined],
  ])("tick: %s (expires %s, now %s)", async (_name, frames, expiresAtMs, now, reason) => {
    const conn = new Connection("c1", "u", expiresAtMs, 0, limits, frames);
    conn.tick(now);
    if (reason === undefined) {
      expect(conn.ending).toBe(false);
      return;
    }
    expect(reasonOf(await drain(conn))).toBe(reason);
  });

  it("a frame from the client postpones the heartbeat timeout", () => {
    const conn = new Connection("c1", "u", Infinity, 0, limits, bidi);
    conn.heard(800);
    conn.tick(1500);
    expect(conn.ending).toBe(false);
    conn.tick(1800);
    expect(conn.ending).toBe(true);
  });

  it("sends heartbeats on push-only streams at the interval", async () => {
    const conn = new Connection("c1", "u", Infinity, 0, limits, browser);
    for (const now of [100, 300, 400, 600, 650]) conn.tick(now);
    conn.close();
    expect(await drain(conn)).toEqual([{ heartbeat: 300 }, { heartbeat: 600 }]);
  });
});
