import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import {
  AcceptRequestSchema,
  CallEndReason,
  CallState,
  DeclineRequestSchema,
  GetCallRequestSchema,
  HangupRequestSchema,
  KeepaliveRequestSchema,
  PartyState,
  RingRequestSchema,
  SdpType,
  SignalRequestSchema,
  StartCallRequestSchema,
  type Call,
  type CallEvent,
  type CallSignal,
  type SignalRequest,
} from "../../gen/im/v1/call_pb.js";
import type { ConnectRequest, ConnectResponse } from "../../gen/im/v1/gateway_pb.js";
import { backoffDelayMs } from "../../client/backoff.js";
import { CallEngine, type CallEffect } from "../../client/call-engine.js";
import type { Clock } from "../../server/core/clock.js";
import type { Rng } from "../fault-plan.js";
import type { Scheduler } from "../scheduler.js";
import type { Answer, DeviceEvent, GlareStart } from "./call-checkers.js";
import { viewOfWireCall } from "./call-checkers.js";
import { CallLink, type CallNetContext, type LinkDevice } from "./call-link.js";
import type { CallWorker, Reply } from "./call-worker.js";
import type { CallsConfig } from "./calls-config.js";
import type { CallsStats } from "./calls-stats.js";

/** What every device shares: the run's clocks, network, workers and logs. */
export interface DeviceContext {
  readonly sched: Scheduler;
  readonly rng: Rng;
  readonly clock: Clock;
  readonly config: CallsConfig;
  readonly stats: CallsStats;
  readonly net: CallNetContext;
  readonly workers: readonly CallWorker[];
  readonly answers: Answer[];
  readonly events: DeviceEvent[];
  readonly glare: GlareStart[];
}

/** How long a request waits for its answer before the device gives up on it. */
const REQUEST_TIMEOUT_MS = 10_000;

type Frame = ConnectRequest["frame"];
type ResponseOf<C extends Frame["case"]> = Extract<ConnectResponse["frame"], { case: C }>["value"];

/** The app's media of one call this device holds (the part of a peer connection the server sees). */
interface Media {
  /** Signals go out one at a time, in order (the negotiator's rule). */
  chain: Promise<void>;
  /** This device's media never connects (the call ends ICE_FAILED). */
  readonly failing: boolean;
  connected: boolean;
  talkPlanned: boolean;
}

/**
 * A simulated device running the SDK's CallEngine, driven the way CallClient drives it: the
 * engine's effects become call frames on the device's long connection (ring, get_call,
 * keepalive), its events reach the app, and its signals reach a minimal peer connection
 * (the caller offers, the callee answers, media connects once the remote description is
 * applied). The app answers, declines, cancels, talks, hangs up or vanishes at random. A
 * closed app loses its engine: reopened, it starts a new one, as a new CallClient would.
 */
export class CallDevice implements LinkDevice {
  readonly name: string;
  readonly userId: string;
  readonly deviceId: string;
  appOpen = false;
  live = false;
  engine: CallEngine;
  /** Calls this app life's engine was given. */
  readonly known = new Set<string>();
  readonly #ctx: DeviceContext;
  #life = 0;
  #link: CallLink | undefined;
  #wasLive = false;
  #attempt = 0;
  #requests = 0;
  #starts = 0;
  readonly #pending = new Map<number, (reply: Reply) => void>();
  readonly #media = new Map<string, Media>();

  constructor(ctx: DeviceContext, userId: string, index: number) {
    this.#ctx = ctx;
    this.userId = userId;
    this.name = `${userId}/d${index}`;
    this.deviceId = `${userId}-d${index}`;
    this.engine = this.#newEngine();
    ctx.sched.schedule(index * 13 % ctx.config.deviceTickMs, () => this.#tick(), undefined);
  }

  /** The device and its app life, as the checkers name it. */
  get lifeName(): string {
    return `${this.name}#${this.#life}`;
  }

  /** Opens the app: a new engine, and a connection. */
  openApp(): void {
    if (this.appOpen) return;
    this.appOpen = true;
    this.#life++;
    this.engine = this.#newEngine();
    this.known.clear();
    this.#media.clear();
    this.#wasLive = false;
    this.#attempt = 0;
    this.#connect();
  }

  #newEngine(): CallEngine {
    return new CallEngine({ userId: this.userId, deviceId: this.deviceId, staleCheckMs: this.#ctx.config.staleCheckMs });
  }

  /** Closes the app (no hangup: its calls go on without it). */
  closeApp(): void {
    if (!this.appOpen) return;
    this.#ctx.stats.appCloses++;
    this.appOpen = false;
    const link = this.#link;
    this.#link = undefined;
    this.live = false;
    link?.clientClose();
    this.#failPending();
  }

  /** Starts a call to `toUserId` as the app's user would (not while this app is in a call). */
  startCall(toUserId: string, glare?: { pair: number }): void {
    const { stats, sched, config } = this.#ctx;
    if (!this.live || this.engine.liveCalls().length > 0) {
      stats.startsSkipped++;
      return;
    }
    stats.starts++;
    const clientCallId = `${this.deviceId}-${this.#life}-${++this.#starts}`;
    const sentAtMs = sched.nowMs;
    const attempt = (n: number): void => {
      void this.#request("startCall", create(StartCallRequestSchema, { target: { case: "toUserId", value: toUserId }, clientCallId, deviceId: this.deviceId, video: false })).then((r) => {
        if (r.ok) {
          const call = r.value.call!;
          if (r.value.duplicate) stats.startsDuplicate++;
          this.#snapshot(call);
          if (call.callerId !== this.userId) {
            stats.glareAnswers++;
            this.#noteAnswer(call);
          }
          if (glare !== undefined) this.#ctx.glare.push({ pair: glare.pair, userId: this.userId, toUserId, sentAtMs, doneAtMs: sched.nowMs, callId: call.callId });
          if (call.callerId === this.userId && call.state === CallState.RINGING && this.#ctx.rng.chance(config.cancelProbability)) {
            sched.schedule(this.#ctx.rng.between(config.answerMinMs, config.cancelMaxMs), () => this.#cancel(call.callId), undefined);
          }
          return;
        }
        const retryable = r.code === Code.Unavailable || r.code === Code.DeadlineExceeded;
        if (retryable && n + 1 < config.startAttemptsMax && this.appOpen) {
          stats.startRetries++;
          sched.schedule(1_000, () => attempt(n + 1), undefined);
          return;
        }
        if (r.reason === "already_in_call") stats.startsRefusedInCall++;
        if (glare !== undefined) {
          const held = /in call (\S+?):/.exec(r.message)?.[1];
          this.#ctx.glare.push({ pair: glare.pair, userId: this.userId, toUserId, sentAtMs, doneAtMs: sched.nowMs, failure: retryable ? "no_answer" : r.reason, ...(held === undefined ? {} : { heldCallId: held }) });
        }
      });
    };
    attempt(0);
  }

  linkUp(link: CallLink): void {
    if (link !== this.#link) return;
    this.#ctx.stats.connects++;
    this.live = true;
    this.#attempt = 0;
    // Live again after having been live: the long connection came back (CallClient's rule).
    if (this.#wasLive) this.#run(this.engine.reconnected());
    this.#wasLive = true;
  }

  linkDown(link: CallLink): void {
    if (link !== this.#link) return;
    this.#link = undefined;
    this.live = false;
    this.#failPending();
    if (!this.appOpen) return;
    const { sched, config, rng } = this.#ctx;
    const delay = backoffDelayMs(this.#attempt++, { baseMs: config.backoffBaseMs, maxMs: config.backoffMaxMs }, () => rng.float());
    sched.schedule(delay, () => this.#connect(), undefined);
  }

  linkReply(link: CallLink, requestId: number, reply: Reply): void {
    if (link !== this.#link) return;
    const resolve = this.#pending.get(requestId);
    this.#pending.delete(requestId);
    resolve?.(reply);
  }

  linkPush(link: CallLink, event: CallEvent): void {
    if (link !== this.#link) return;
    const now = this.#ctx.clock.nowMs();
    if (event.event.case === "call") this.#snapshot(event.event.value);
    else if (event.event.case === "signal") this.#run(this.engine.signal(event.event.value, now));
  }

  #connect(): void {
    if (!this.appOpen || this.#link !== undefined) return;
    const { workers, rng, net } = this.#ctx;
    this.#link = new CallLink(net, this, workers[rng.int(workers.length)]!);
  }

  #tick(): void {
    this.#ctx.sched.schedule(this.#ctx.config.deviceTickMs, () => this.#tick(), undefined);
    if (this.appOpen) this.#run(this.engine.tick(this.#ctx.clock.nowMs()));
  }

  #failPending(): void {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const resolve of pending) resolve({ ok: false, code: Code.Unavailable, reason: "connection_lost", message: "the connection was lost" });
  }

  /** A call frame on the long connection: its answer, or a failure (not connected, lost, timed out). */
  #request<C extends Frame["case"] & string>(kind: C, value: Extract<Frame, { case: C }>["value"]): Promise<{ ok: true; value: ResponseOf<C> } | Extract<Reply, { ok: false }>> {
    const { sched, stats } = this.#ctx;
    const link = this.#link;
    if (!this.live || link === undefined) {
      stats.requestsFailed++;
      return Promise.resolve({ ok: false, code: Code.Unavailable, reason: "not_connected", message: "not connected" });
    }
    const id = ++this.#requests;
    return new Promise((resolve) => {
      this.#pending.set(id, (reply) => {
        if (reply.ok && reply.frame.case === kind) resolve({ ok: true, value: reply.frame.value } as never);
        else {
          stats.requestsFailed++;
          resolve(reply.ok ? { ok: false, code: Code.Internal, reason: "internal", message: `answered ${String(reply.frame.case)} to ${kind}` } : reply);
        }
        sched.touch();
      });
      sched.schedule(REQUEST_TIMEOUT_MS, () => {
        const pending = this.#pending.get(id);
        this.#pending.delete(id);
        pending?.({ ok: false, code: Code.DeadlineExceeded, reason: "timeout", message: "no answer" });
      }, undefined);
      link.request(id, { case: kind, value } as Frame);
    });
  }

  #snapshot(call: Call | undefined): void {
    if (call === undefined) return;
    this.known.add(call.callId);
    this.#run(this.engine.snapshot(call, this.#ctx.clock.nowMs()));
  }

  #myParty(call: Call): Call["parties"][number] | undefined {
    return call.parties.find((p) => p.userId === this.userId);
  }

  #noteAnswer(call: Call): void {
    const mine = this.#myParty(call);
    if (mine?.state !== PartyState.ACCEPTED || mine.deviceId !== this.deviceId) return;
    this.#ctx.answers.push({ callId: call.callId, userId: this.userId, device: this.lifeName, deviceId: this.deviceId, atMs: this.#ctx.sched.nowMs });
  }

  #record(callId: string, kind: string, call?: Call, signalSeq?: number): void {
    this.#ctx.events.push({
      device: this.lifeName,
      userId: this.userId,
      deviceId: this.deviceId,
      callId,
      atMs: this.#ctx.sched.nowMs,
      kind,
      ...(call === undefined ? {} : { call: viewOfWireCall(call) }),
      ...(signalSeq === undefined ? {} : { signalSeq }),
    });
  }

  /** Carries out the engine's effects, as CallClient.#run does. */
  #run(effects: readonly CallEffect[]): void {
    const { stats } = this.#ctx;
    for (const effect of effects) {
      switch (effect.type) {
        case "emit":
          this.#record(effect.call.callId, effect.event, effect.call);
          this.#react(effect.event, effect.call);
          break;
        case "ring":
          void this.#request("ringCall", create(RingRequestSchema, { callId: effect.callId, deviceId: this.deviceId })).then((r) => r.ok && this.#snapshot(r.value.call));
          break;
        case "apply_signal":
          this.#record(effect.signal.callId, "signal", undefined, Number(effect.signal.signalSeq));
          this.#applySignal(effect.signal);
          break;
        case "get_call":
          stats.getCalls++;
          void this.#request("getCall", create(GetCallRequestSchema, { callId: effect.callId, deviceId: this.deviceId, afterSignalSeq: effect.afterSignalSeq })).then((r) => {
            if (!r.ok || r.value.call === undefined) return;
            this.known.add(r.value.call.callId);
            this.#run(this.engine.callView({ call: r.value.call, lastSignalSeq: r.value.lastSignalSeq, signalsMissed: r.value.signalsMissed }, this.#ctx.clock.nowMs()));
          });
          break;
        case "renegotiate":
          stats.renegotiations++;
          this.#askForOffer(effect.callId, false);
          break;
        case "ice_restart":
          stats.iceRestarts++;
          this.#askForOffer(effect.callId, true);
          break;
        case "hangup":
          stats.hangupRetries++;
          void this.#request("hangupCall", create(HangupRequestSchema, { callId: effect.callId, deviceId: this.deviceId, reason: effect.mediaFailed ? CallEndReason.MEDIA_FAILED : CallEndReason.HANGUP })).then((r) => r.ok && this.#snapshot(r.value.call));
          break;
        case "keepalive":
          stats.keepalives++;
          void this.#request("callKeepalive", create(KeepaliveRequestSchema, { callId: effect.callId, deviceId: this.deviceId, mediaConnected: effect.mediaConnected })).then((r) => {
            if (!r.ok) return;
            this.engine.setKeepaliveInterval(Number(r.value.keepaliveIntervalMs));
            this.#snapshot(r.value.call);
          });
          break;
      }
    }
  }

  /** The app's reaction to what the engine told it. */
  #react(event: string, call: Call): void {
    const { rng, config, sched } = this.#ctx;
    if (event === "ended" || event === "answered_elsewhere") {
      this.#media.delete(call.callId);
      return;
    }
    if (event === "incoming") {
      const r = rng.float();
      const at = rng.between(config.answerMinMs, config.answerMaxMs);
      if (r < config.answerProbability) {
        const quick = rng.chance(config.quickAnswerProbability) ? config.answerMinMs + rng.between(0, 20) : at;
        sched.schedule(quick, () => this.#accept(call.callId), undefined);
      }
      else if (r < config.answerProbability + config.declineProbability) sched.schedule(at, () => this.#decline(call.callId), undefined);
      return;
    }
    if (event === "accepted" && this.engine.holds(call)) this.#holding(call);
  }

  /** This device holds an answered call: the caller offers; both plan the call's end. */
  #holding(call: Call): void {
    const { rng, config, sched } = this.#ctx;
    const media = this.#mediaOf(call.callId);
    if (media.talkPlanned) return;
    media.talkPlanned = true;
    if (call.callerId === this.userId) this.#offer(call.callId, false);
    const life = this.#life;
    if (rng.chance(config.vanishProbability)) {
      sched.schedule(rng.between(500, config.talkMaxMs), () => {
        if (this.#life !== life) return;
        this.closeApp();
        sched.schedule(rng.between(config.offlineMinMs, config.offlineMaxMs), () => this.openApp(), undefined);
      }, undefined);
    } else if (call.callerId === this.userId || rng.chance(0.5)) {
      // The caller always ends the call at some point; the callee sometimes first.
      sched.schedule(rng.between(config.talkMinMs, config.talkMaxMs), () => {
        if (this.#life === life) this.#hangup(call.callId);
      }, undefined);
    }
  }

  #mediaOf(callId: string): Media {
    let media = this.#media.get(callId);
    if (media === undefined) {
      media = { chain: Promise.resolve(), failing: this.#ctx.rng.chance(this.#ctx.config.mediaFailProbability), connected: false, talkPlanned: false };
      this.#media.set(callId, media);
    }
    return media;
  }

  #accept(callId: string): void {
    const call = this.engine.call(callId);
    const mine = call === undefined ? undefined : this.#myParty(call);
    if (call === undefined || call.state !== CallState.RINGING || (mine?.state !== PartyState.INVITED && mine?.state !== PartyState.RINGING)) return;
    const { stats } = this.#ctx;
    void this.#request("acceptCall", create(AcceptRequestSchema, { callId, deviceId: this.deviceId })).then((r) => {
      if (r.ok) {
        stats.acceptsOk++;
        this.#noteAnswer(r.value.call!);
        this.#snapshot(r.value.call);
      } else if (r.reason === "answered_elsewhere") stats.answeredElsewhere++;
      else stats.acceptsRefused++;
    });
  }

  #decline(callId: string): void {
    const call = this.engine.call(callId);
    if (call === undefined || call.state !== CallState.RINGING) return;
    this.#ctx.stats.declines++;
    void this.#request("declineCall", create(DeclineRequestSchema, { callId, deviceId: this.deviceId })).then((r) => r.ok && this.#snapshot(r.value.call));
  }

  #cancel(callId: string): void {
    const call = this.engine.call(callId);
    if (call === undefined || call.state !== CallState.RINGING || !this.engine.holds(call)) return;
    this.#ctx.stats.cancels++;
    this.#hangup(callId);
  }

  #hangup(callId: string): void {
    const call = this.engine.call(callId);
    if (call === undefined || call.state === CallState.ENDED || !this.engine.holds(call)) return;
    this.#ctx.stats.hangups++;
    if (this.#ctx.config.bugHangupWithoutLeave !== 1) this.engine.leave(callId);
    void this.#request("hangupCall", create(HangupRequestSchema, { callId, deviceId: this.deviceId, reason: CallEndReason.HANGUP })).then((r) => r.ok && this.#snapshot(r.value.call));
  }

  /** Sends a signal behind the ones before it (a candidate never overtakes its description). */
  #signal(callId: string, signal: SignalRequest["signal"]): void {
    const media = this.#mediaOf(callId);
    const stats = this.#ctx.stats;
    media.chain = media.chain.then(async () => {
      const call = this.engine.call(callId);
      if (call === undefined || call.state === CallState.ENDED || !this.engine.holds(call)) return;
      stats.signals++;
      await this.#request("callSignal", create(SignalRequestSchema, { callId, deviceId: this.deviceId, signal }));
    });
  }

  #offer(callId: string, iceRestart: boolean): void {
    this.#signal(callId, { case: "description", value: { $typeName: "im.v1.SessionDescription", type: SdpType.OFFER, sdp: `offer of ${this.deviceId}`, iceRestart } });
    this.#signal(callId, candidates(this.deviceId));
  }

  /** The caller makes a new offer; the callee asks the caller for one. */
  #askForOffer(callId: string, iceRestart: boolean): void {
    const call = this.engine.call(callId);
    if (call === undefined || !this.engine.holds(call)) return;
    if (call.callerId === this.userId) this.#offer(callId, iceRestart);
    else this.#signal(callId, { case: "renegotiate", value: { $typeName: "im.v1.Renegotiate" } });
  }

  #applySignal(signal: CallSignal): void {
    const body = signal.signal;
    if (body.case === "description" && body.value.type === SdpType.OFFER) {
      this.#signal(signal.callId, { case: "description", value: { $typeName: "im.v1.SessionDescription", type: SdpType.ANSWER, sdp: `answer of ${this.deviceId}`, iceRestart: body.value.iceRestart } });
      this.#signal(signal.callId, candidates(this.deviceId));
      this.#mediaUp(signal.callId);
    } else if (body.case === "description") {
      this.#mediaUp(signal.callId);
    } else if (body.case === "renegotiate") {
      this.#askForOffer(signal.callId, false);
    }
  }

  /** ICE connects a little after the remote description, unless this device's media fails. */
  #mediaUp(callId: string): void {
    const media = this.#mediaOf(callId);
    if (media.failing || media.connected) return;
    const { sched, rng, clock } = this.#ctx;
    const life = this.#life;
    sched.schedule(rng.between(20, 500), () => {
      if (this.#life !== life || !this.appOpen || media.connected) return;
      media.connected = true;
      this.#run(this.engine.mediaState(callId, true, clock.nowMs()));
    }, undefined);
  }
}

function candidates(deviceId: string): SignalRequest["signal"] {
  return {
    case: "candidates",
    value: { $typeName: "im.v1.IceCandidates", candidates: [{ $typeName: "im.v1.IceCandidate", candidate: `candidate:1 1 udp 1 10.0.0.1 9 typ host ${deviceId}`, sdpMid: "0", sdpMLineIndex: 0, usernameFragment: "sim" }] },
  };
}
