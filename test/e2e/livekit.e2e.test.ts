import { createHash, randomBytes } from "node:crypto";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ConnectError } from "@connectrpc/connect";
import { SignJWT } from "jose";
import { RoomServiceClient, TokenVerifier } from "livekit-server-sdk";
import { afterAll, afterEach, beforeAll, describe, expect, it, inject } from "vitest";
import { CallEndReason, RoomRole } from "../../gen/im/v1/call_pb.js";
import { ErrorDetailSchema, ErrorReason } from "../../gen/im/v1/message_pb.js";
import { LIVEKIT_WEBHOOK_PATH } from "../../server/media/livekit-webhook.js";
import { CallDevice } from "../support/call-device.js";
import { startLivekit, type Livekit } from "../support/livekit.js";
import { freePort } from "../support/server-process.js";
import { startTestServer, waitFor, type TestServer } from "../support/test-server.js";

const KEY = "testkey";
const SECRET = randomBytes(24).toString("hex");

function reasonOf(error: unknown): ErrorReason | undefined {
  return ConnectError.from(error).findDetails(ErrorDetailSchema)[0]?.reason;
}

/** Posts a webhook as LiveKit does: a JWT signed with `secret` carrying the body's SHA-256. */
async function postWebhook(baseUrl: string, event: Record<string, unknown>, secret = SECRET): Promise<number> {
  const body = JSON.stringify(event);
  const sha256 = createHash("sha256").update(body).digest("base64");
  const jwt = await new SignJWT({ sha256 }).setProtectedHeader({ alg: "HS256" }).setIssuer(KEY).setIssuedAt().setExpirationTime("5m").sign(new TextEncoder().encode(secret));
  const res = await fetch(`${baseUrl}${LIVEKIT_WEBHOOK_PATH}`, { method: "POST", headers: { authorization: jwt, "content-type": "application/webhook+json" }, body });
  return res.status;
}

describe.skipIf(!inject("livekitBuilt"))("group calls and live rooms on LiveKit v1.13.5", () => {
  let ts: TestServer;
  let lk: Livekit;
  let rooms: RoomServiceClient;
  const devices: CallDevice[] = [];
  beforeAll(async () => {
    const port = await freePort();
    ts = await startTestServer(["--livekit-url", `ws://127.0.0.1:${port}`, "--livekit-api-key", KEY, "--livekit-api-secret", SECRET, "--live-room-viewers-max", "2"]);
    lk = await startLivekit({ key: KEY, secret: SECRET, webhook: `${ts.baseUrl}${LIVEKIT_WEBHOOK_PATH}`, port });
    rooms = new RoomServiceClient(`http://127.0.0.1:${port}`, KEY, SECRET);
  });
  afterAll(async () => {
    await ts?.stop();
    await lk?.stop();
  });
  afterEach(async () => {
    await Promise.all(devices.splice(0).map((d) => d.close()));
  });

  let n = 0;
  async function device(user: string): Promise<CallDevice> {
    const d = new CallDevice(user, `${user}-1`, createGrpcTransport({ baseUrl: ts.baseUrl }), await ts.token(user));
    devices.push(d);
    await d.live();
    return d;
  }

  it("creates a live room on LiveKit and hears its signed room_started webhook", async () => {
    const host = await device(`host${++n}`);
    const created = await host.op("createLiveRoom", { title: "show" });
    const name = `live-${created.room!.roomId}`;
    expect((await rooms.listRooms([name])).map((r) => r.name)).toEqual([name]);
    await waitFor(() => (ts.server.calls.webhooks.get("room_started") ?? 0) > 0, "a verified room_started webhook from LiveKit");
  });

  it("issues tokens with the role's grants, which LiveKit's verifier accepts", async () => {
    const host = await device(`host${++n}`);
    const viewer = await device(`viewer${n}`);
    const roomId = (await host.op("createLiveRoom", { title: "show" })).room!.roomId;
    const verifier = new TokenVerifier(KEY, SECRET);
    const asHost = await host.op("joinRoom", { roomId, role: RoomRole.HOST });
    expect(asHost.media!.url).toBe(lk.url);
    expect((await verifier.verify(asHost.media!.token)).video).toMatchObject({ room: `live-${roomId}`, roomJoin: true, canPublish: true, canSubscribe: true });
    const asViewer = await viewer.op("joinRoom", { roomId, role: RoomRole.VIEWER });
    const claims = await verifier.verify(asViewer.media!.token);
    expect(claims.sub).toBe(viewer.userId);
    expect(claims.video).toMatchObject({ canPublish: false, canSubscribe: true });
    expect(reasonOf(await viewer.op("joinRoom", { roomId, role: RoomRole.SPEAKER }).catch((e: unknown) => e))).toBe(ErrorReason.ROLE_NOT_ALLOWED);
    // SetRole on a viewer not yet in the media room records the role for its next token.
    await host.op("setRole", { roomId, userId: viewer.userId, role: RoomRole.SPEAKER });
    expect((await verifier.verify((await viewer.op("joinRoom", { roomId, role: RoomRole.SPEAKER })).media!.token)).video?.canPublish).toBe(true);
  });

  it("counts viewers from signed webhooks only: a badly signed leave changes nothing, a signed one frees a place", async () => {
    const host = await device(`host${++n}`);
    const roomId = (await host.op("createLiveRoom", { title: "show" })).room!.roomId;
    const name = `live-${roomId}`;
    const viewers = await Promise.all([1, 2, 3].map((i) => device(`v${n}x${i}`)));
    await viewers[0]!.op("joinRoom", { roomId, role: RoomRole.VIEWER });
    await viewers[1]!.op("joinRoom", { roomId, role: RoomRole.VIEWER });
    expect(await postWebhook(ts.baseUrl, { event: "participant_joined", room: { name }, participant: { identity: viewers[0]!.userId } })).toBe(200);
    expect(reasonOf(await viewers[2]!.op("joinRoom", { roomId, role: RoomRole.VIEWER }).catch((e: unknown) => e))).toBe(ErrorReason.ROOM_FULL);
    const left = { event: "participant_left", room: { name }, participant: { identity: viewers[0]!.userId } };
    expect(await postWebhook(ts.baseUrl, left, "not-the-secret-not-the-secret-xx")).toBe(401);
    const unsigned = await fetch(`${ts.baseUrl}${LIVEKIT_WEBHOOK_PATH}`, { method: "POST", body: JSON.stringify(left) });
    expect(unsigned.status).toBe(401);
    expect(reasonOf(await viewers[2]!.op("joinRoom", { roomId, role: RoomRole.VIEWER }).catch((e: unknown) => e))).toBe(ErrorReason.ROOM_FULL);
    expect(await postWebhook(ts.baseUrl, left)).toBe(200);
    expect((await viewers[2]!.op("joinRoom", { roomId, role: RoomRole.VIEWER })).room!.viewerCount).toBe(2);
  });

  it("forgets a live room once LiveKit reports it finished", async () => {
    const host = await device(`host${++n}`);
    const roomId = (await host.op("createLiveRoom", { title: "show" })).room!.roomId;
    await rooms.deleteRoom(`live-${roomId}`);
    await waitFor(() => (ts.server.calls.webhooks.get("room_finished") ?? 0) > 0, "a verified room_finished webhook");
    expect(reasonOf(await host.op("joinRoom", { roomId, role: RoomRole.HOST }).catch((e: unknown) => e))).toBe(ErrorReason.ROOM_NOT_FOUND);
  });

  it("runs a group call in a LiveKit room and closes the room when the call ends", async () => {
    const [alice, bob, carol] = await Promise.all(["alice", "bob", "carol"].map((u) => device(`${u}${++n}`)));
    const group = await alice!.client.conversations.createGroup({ title: "team", memberUserIds: [bob!.userId, carol!.userId] });
    const started = await alice!.op("startCall", { target: { case: "conversationId", value: group.conversation!.conversationId }, clientCallId: "g", deviceId: alice!.deviceId, video: true });
    const name = started.room!.roomName;
    expect((await rooms.listRooms([name])).map((r) => r.name)).toEqual([name]);
    const accepted = await bob!.op("acceptCall", { callId: started.call!.callId, deviceId: bob!.deviceId });
    expect((await new TokenVerifier(KEY, SECRET).verify(accepted.room!.token)).video).toMatchObject({ room: name, canPublish: true });
    await carol!.op("declineCall", { callId: started.call!.callId, deviceId: carol!.deviceId });
    const ended = await bob!.op("hangupCall", { callId: started.call!.callId, deviceId: bob!.deviceId, reason: CallEndReason.HANGUP });
    expect(ended.call!.endReason).toBe(CallEndReason.HANGUP);
    const deadline = Date.now() + 10_000;
    while ((await rooms.listRooms([name])).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(await rooms.listRooms([name])).toEqual([]);
  });
});
