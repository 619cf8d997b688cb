import { MediaStreamTrack, RTCPeerConnection, RtpHeader, RtpPacket, type RTCDataChannel } from "werift";
import { SdpType, type CallSignal, type IceServer } from "../../gen/im/v1/call_pb.js";
import type { CallDevice } from "./call-device.js";

/**
 * One side of a one-to-one call in a werift peer, signalling through the platform: the SDP
 * and batched candidates go out one at a time in order (never a candidate before its
 * description), and remote signals are applied one at a time in signal_seq order.
 * Host candidates are loopback only, so media never leaves 127.0.0.1.
 */
export class WeriftLeg {
  readonly pc: RTCPeerConnection;
  readonly track = new MediaStreamTrack({ kind: "video" });
  rtpReceived = 0;
  readonly messages: string[] = [];
  channel: RTCDataChannel | undefined;
  /** Signals the platform refused (e.g. after the call ended). */
  readonly errors: unknown[] = [];
  #out: Promise<unknown> = Promise.resolve();
  #in: Promise<unknown> = Promise.resolve();
  #pending: { candidate: string; sdpMid: string; sdpMLineIndex: number; usernameFragment: string }[] = [];
  #descriptionSent = false;
  #applied = 0;
  readonly #buffered = new Map<bigint, CallSignal>();
  #seq = 0;

  constructor(
    readonly device: CallDevice,
    readonly callId: string,
    iceServers: IceServer[],
    policy: "all" | "relay",
  ) {
    this.pc = new RTCPeerConnection({
      iceServers: iceServers.map((s) => ({ urls: s.urls.length === 1 ? s.urls[0]! : s.urls, username: s.username || undefined, credential: s.credential || undefined })),
      iceTransportPolicy: policy,
      iceUseIpv6: false,
      iceAdditionalHostAddresses: ["127.0.0.1"],
      iceFilterCandidatePair: (pair) => pair.remoteCandidate.host.startsWith("127.") && pair.localCandidate.host.startsWith("127."),
    });
    this.pc.addTransceiver(this.track, { direction: "sendrecv" });
    this.pc.onTrack.subscribe((t) => t.onReceiveRtp.subscribe(() => this.rtpReceived++));
    this.pc.onDataChannel.subscribe((dc) => this.#channel(dc));
    this.pc.onIceCandidate.subscribe((c) => {
      if (c === undefined || c.candidate === undefined || c.candidate === "") return;
      this.#pending.push({ candidate: c.candidate, sdpMid: c.sdpMid ?? "", sdpMLineIndex: c.sdpMLineIndex ?? 0, usernameFragment: "" });
      this.#flush();
    });
    device.client.on("callEvent", (e) => {
      if (e.event.case !== "signal" || e.event.value.callId !== callId || e.event.value.toDeviceId !== device.deviceId) return;
      this.#buffered.set(e.event.value.prevSignalSeq, e.event.value);
      this.#drain();
    });
  }

  /** The caller's side: a data channel and the offer. */
  async offer(): Promise<void> {
    this.#channel(this.pc.createDataChannel("chat"));
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    this.#sendDescription("offer", this.pc.localDescription!.sdp);
  }

  /** Writes `n` RTP packets on the video track. */
  sendRtp(n: number): void {
    for (let i = 0; i < n; i++) {
      const seq = this.#seq++;
      this.track.writeRtp(new RtpPacket(new RtpHeader({ payloadType: 96, sequenceNumber: seq & 0xffff, timestamp: seq * 3000, marker: true }), Buffer.alloc(200, seq & 0xff)));
    }
  }

  async close(): Promise<void> {
    await this.pc.close();
  }

  #channel(dc: RTCDataChannel): void {
    this.channel = dc;
    dc.onMessage.subscribe((m) => this.messages.push(typeof m === "string" ? m : m.toString()));
  }

  #sendDescription(type: "offer" | "answer", sdp: string): void {
    this.#send({ case: "description", value: { $typeName: "im.v1.SessionDescription", type: type === "offer" ? SdpType.OFFER : SdpType.ANSWER, sdp, iceRestart: false } });
    this.#descriptionSent = true;
    this.#flush();
  }

  #flush(): void {
    if (!this.#descriptionSent || this.#pending.length === 0) return;
    const batch = this.#pending.splice(0, 64);
    this.#send({ case: "candidates", value: { $typeName: "im.v1.IceCandidates", candidates: batch.map((c) => ({ $typeName: "im.v1.IceCandidate" as const, ...c })) } });
  }

  #send(signal: CallSignal["signal"]): void {
    this.#out = this.#out
      .then(() => this.device.op("callSignal", { callId: this.callId, deviceId: this.device.deviceId, signal: signal as never }))
      .catch((error: unknown) => this.errors.push(error));
  }

  #drain(): void {
    for (;;) {
      const next = this.#buffered.get(BigInt(this.#applied));
      if (next === undefined) return;
      this.#buffered.delete(BigInt(this.#applied));
      this.#applied = Number(next.signalSeq);
      this.#in = this.#in.then(() => this.#apply(next)).catch((error: unknown) => this.errors.push(error));
    }
  }

  async #apply(signal: CallSignal): Promise<void> {
    const s = signal.signal;
    if (s.case === "description") {
      await this.pc.setRemoteDescription({ type: s.value.type === SdpType.OFFER ? "offer" : "answer", sdp: s.value.sdp });
      if (s.value.type === SdpType.OFFER) {
        const answer = await this.pc.createAnswer();
        await this.pc.setLocalDescription(answer);
        this.#sendDescription("answer", this.pc.localDescription!.sdp);
      }
    } else if (s.case === "candidates") {
      for (const c of s.value.candidates) await this.pc.addIceCandidate({ candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex });
    }
  }
}
