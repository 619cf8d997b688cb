import type { CallSignal, SignalRequest } from "../gen/im/v1/call_pb.js";
import { SdpType } from "../gen/im/v1/call_pb.js";

/** An SDP description as RTCPeerConnection takes and gives it. */
export interface DescriptionInit {
  readonly type: "offer" | "answer" | "rollback" | "pranswer";
  readonly sdp?: string;
}

/** An ICE candidate as RTCPeerConnection gives it. */
export interface CandidateLike {
  readonly candidate: string;
  readonly sdpMid?: string | null;
  readonly sdpMLineIndex?: number | null;
  readonly usernameFragment?: string | null;
}

/** The part of WebRTC's RTCPeerConnection that negotiation uses (browsers have all of it). */
export interface PeerConnectionLike {
  readonly signalingState: string;
  readonly localDescription: { readonly type: string; readonly sdp: string } | null;
  setLocalDescription(description?: DescriptionInit): Promise<void>;
  setRemoteDescription(description: DescriptionInit): Promise<void>;
  addIceCandidate(candidate: CandidateLike): Promise<void>;
  restartIce(): void;
  addEventListener(type: "negotiationneeded", listener: () => void): void;
  addEventListener(type: "icecandidate", listener: (event: { readonly candidate: CandidateLike | null }) => void): void;
  removeEventListener(type: "negotiationneeded", listener: () => void): void;
  removeEventListener(type: "icecandidate", listener: (event: { readonly candidate: CandidateLike | null }) => void): void;
}

/** Sends one signal and resolves once the server took it (the negotiator sends them one at a time). */
export type SignalSender = (signal: SignalRequest["signal"]) => Promise<void>;

/** Most candidates per batch (the protocol's bound). */
const BATCH_MAX = 64;

/**
 * Perfect negotiation (the W3C pattern) between this device and the other answering device,
 * over the platform's signals, keeping the two ordering rules that break calls when
 * violated:
 * - a candidate never overtakes its own offer or answer: candidates are held until the
 *   description they belong to has been handed to the sender, and signals go out one at a
 *   time in order (batched candidates);
 * - remote signals are applied one at a time, in order (the CallEngine hands them out in
 *   signal_seq order; `apply` chains them).
 * The callee is polite (it yields on an offer collision). An offer with `ice_restart` is taken
 * even by the impolite side over an ordinary offer of its own, so a device whose long
 * connection came back can always restart ICE.
 */
export class CallNegotiator {
  readonly #pc: PeerConnectionLike;
  readonly #send: SignalSender;
  readonly #polite: boolean;
  #makingOffer = false;
  #ignoreOffer = false;
  #restarting = false;
  /** Candidates are held while a local description is being set and not yet sent. */
  #holding = false;
  readonly #held: CandidateLike[] = [];
  #out: Promise<void> = Promise.resolve();
  #in: Promise<void> = Promise.resolve();
  #closed = false;
  /** Failures of signalling (for the app's logs); negotiation goes on. */
  readonly errors: Error[] = [];
  readonly #onNegotiationNeeded = () => void this.#negotiate();
  readonly #onCandidate = (event: { readonly candidate: CandidateLike | null }) => {
    if (event.candidate === null || event.candidate.candidate === "") return;
    this.#held.push(event.candidate);
    if (!this.#holding) this.#flush();
  };

  constructor(pc: PeerConnectionLike, send: SignalSender, polite: boolean) {
    this.#pc = pc;
    this.#send = send;
    this.#polite = polite;
    pc.addEventListener("negotiationneeded", this.#onNegotiationNeeded);
    pc.addEventListener("icecandidate", this.#onCandidate);
  }

  /** Applies a remote signal after the ones before it. */
  apply(signal: CallSignal): Promise<void> {
    this.#in = this.#in.then(() => this.#apply(signal)).catch((error: unknown) => void this.errors.push(error as Error));
    return this.#in;
  }

  /** Restarts ICE: the next offer carries new credentials and the ice_restart flag. */
  restartIce(): void {
    if (this.#closed) return;
    this.#restarting = true;
    this.#pc.restartIce();
  }

  /**
   * Signals to this device were lost: roll back a pending offer and ask the other device for
   * a fresh ICE-restart offer.
   */
  renegotiate(): Promise<void> {
    this.#in = this.#in
      .then(async () => {
        if (this.#pc.signalingState === "have-local-offer") await this.#pc.setLocalDescription({ type: "rollback" });
        this.#queue({ case: "renegotiate", value: { $typeName: "im.v1.Renegotiate" } });
      })
      .catch((error: unknown) => void this.errors.push(error as Error));
    return this.#in;
  }

  /** Stops listening to the peer connection. */
  close(): void {
    this.#closed = true;
    this.#pc.removeEventListener("negotiationneeded", this.#onNegotiationNeeded);
    this.#pc.removeEventListener("icecandidate", this.#onCandidate);
  }

  async #negotiate(): Promise<void> {
    if (this.#closed) return;
    try {
      this.#makingOffer = true;
      this.#holding = true;
      const restart = this.#restarting;
      await this.#pc.setLocalDescription();
      const local = this.#pc.localDescription;
      if (local !== null && local.type === "offer") {
        this.#restarting = false;
        this.#sendDescription("offer", local.sdp, restart);
      }
    } catch (error) {
      this.errors.push(error as Error);
    } finally {
      this.#makingOffer = false;
      this.#release();
    }
  }

  async #apply(signal: CallSignal): Promise<void> {
    if (this.#closed) return;
    const pc = this.#pc;
    const s = signal.signal;
    if (s.case === "description") {
      const offer = s.value.type === SdpType.OFFER;
      const collision = offer && (this.#makingOffer || pc.signalingState !== "stable");
      const restartWins = s.value.iceRestart && !this.#restarting;
      this.#ignoreOffer = !this.#polite && collision && !restartWins;
      if (this.#ignoreOffer) return;
      // An answer to an offer that was rolled back (or already answered) has nothing to meet.
      if (!offer && pc.signalingState !== "have-local-offer") return;
      if (collision && pc.signalingState === "have-local-offer") await pc.setLocalDescription({ type: "rollback" });
      await pc.setRemoteDescription({ type: offer ? "offer" : "answer", sdp: s.value.sdp });
      if (offer) {
        this.#holding = true;
        try {
          await pc.setLocalDescription();
          const local = pc.localDescription;
          if (local !== null) this.#sendDescription("answer", local.sdp, false);
        } finally {
          this.#release();
        }
      }
    } else if (s.case === "candidates") {
      for (const c of s.value.candidates) {
        try {
          await pc.addIceCandidate({ candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex, usernameFragment: c.usernameFragment === "" ? null : c.usernameFragment });
        } catch (error) {
          // Candidates of an offer this side ignored cannot be added; anything else is real.
          if (!this.#ignoreOffer) throw error;
        }
      }
    } else if (s.case === "renegotiate") {
      if (pc.signalingState === "have-local-offer") await pc.setLocalDescription({ type: "rollback" });
      this.restartIce();
    }
  }

  #sendDescription(type: "offer" | "answer", sdp: string, iceRestart: boolean): void {
    this.#queue({
      case: "description",
      value: { $typeName: "im.v1.SessionDescription", type: type === "offer" ? SdpType.OFFER : SdpType.ANSWER, sdp, iceRestart },
    });
  }

  #release(): void {
    this.#holding = false;
    this.#flush();
  }

  #flush(): void {
    while (this.#held.length > 0) {
      const batch = this.#held.splice(0, BATCH_MAX);
      this.#queue({
        case: "candidates",
        value: {
          $typeName: "im.v1.IceCandidates",
          candidates: batch.map((c) => ({
            $typeName: "im.v1.IceCandidate" as const,
            candidate: c.candidate,
            sdpMid: c.sdpMid ?? "",
            sdpMLineIndex: c.sdpMLineIndex ?? 0,
            usernameFragment: c.usernameFragment ?? "",
          })),
        },
      });
    }
  }

  #queue(signal: SignalRequest["signal"]): void {
    this.#out = this.#out.then(() => this.#send(signal)).catch((error: unknown) => void this.errors.push(error as Error));
  }
}
