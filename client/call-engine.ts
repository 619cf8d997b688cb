/**
 * The client's call logic, free of I/O like SyncEngine: it takes call snapshots, relayed
 * signals, GetCall answers, reconnects and ticks, and returns what to do (tell the app,
 * acknowledge a ring, apply a signal, repair, keep the call alive). The SDK's CallClient and
 * the simulator drive this one implementation.
 *
 * Guarantees: snapshots reach the app in version order (older ones that arrive late are
 * dropped); signals for this device are handed out one at a time in signal_seq order
 * (`prev_signal_seq` links, like prev_seq for messages), out-of-order ones are buffered
 * (bounded) and a gap that does not close is checked with GetCall; signals that the server
 * sent but this device never got cannot be fetched (they are not stored), so the engine asks
 * for a renegotiation instead. Pushes are best effort, so a live call the device has not heard
 * of for `staleCheckMs` is checked with GetCall (a lost "ended" would otherwise leave a device
 * ringing, or keeping alive a call that is over). A call the app hung up is hung up again at
 * each keepalive slot until the server says it ended, and is no longer kept alive (a lost
 * hangup would otherwise keep the call running at the server).
 */
import { CallState, PartyState, type Call, type CallSignal } from "../gen/im/v1/call_pb.js";

/** What the app hears about a call. */
export type CallEventKind =
  /** Another user calls this user (this device rings). */
  | "incoming"
  /** A callee's device rings (for the caller). */
  | "ringing"
  /** The call was answered: by this device, or (for the caller) by a callee. */
  | "accepted"
  /** Another device of this user answered; this one stops ringing. */
  | "answered_elsewhere"
  /** The call ended; `end_reason` says why. */
  | "ended"
  /** Any other change (media connected, a group member joined, ...). */
  | "updated";

/** What the engine asks its driver to do. */
export type CallEffect =
  | { readonly type: "emit"; readonly event: CallEventKind; readonly call: Call }
  /** Acknowledge the invitation: Ring. */
  | { readonly type: "ring"; readonly callId: string }
  /** Apply this signal to the call's peer connection now (they come in order). */
  | { readonly type: "apply_signal"; readonly signal: CallSignal }
  /** Ask the server where this device stands: GetCall(after_signal_seq). */
  | { readonly type: "get_call"; readonly callId: string; readonly afterSignalSeq: bigint }
  /** Signals were lost: roll back and ask the other device for a fresh offer (Renegotiate). */
  | { readonly type: "renegotiate"; readonly callId: string }
  /** The long connection came back: restart ICE (the network may have changed). */
  | { readonly type: "ice_restart"; readonly callId: string }
  /** Send a keepalive for a call this device holds. */
  | { readonly type: "keepalive"; readonly callId: string; readonly mediaConnected: boolean }
  /** Hang up again: the app left the call (`leave`) and the server has not said it ended. */
  | { readonly type: "hangup"; readonly callId: string; readonly mediaFailed: boolean };

/** Engine settings. */
export interface CallEngineOptions {
  readonly userId: string;
  readonly deviceId: string;
  /** Interval of keepalives for calls this device holds. Default 10 s (the server says its own). */
  readonly keepaliveIntervalMs?: number;
  /** How long an out-of-order signal waits for its predecessor before GetCall. Default 1 s. */
  readonly gapWaitMs?: number;
  /** Most out-of-order signals buffered per call. Default 64. */
  readonly bufferMax?: number;
  /** Most calls remembered (ended ones are forgotten first). Default 64. */
  readonly callsMax?: number;
  /** A live call not heard of (pushed, answered) for this long is checked with GetCall. Default 15 s. */
  readonly staleCheckMs?: number;
}

interface CallEntry {
  call: Call;
  /** signal_seq of the last signal handed out. */
  applied: bigint;
  /** Out-of-order signals by their prev_signal_seq. */
  readonly buffered: Map<bigint, CallSignal>;
  bufferedSinceMs: number;
  repairAskedMs: number;
  lastKeepaliveMs: number;
  mediaConnected: boolean;
  /** When the server last told this device about the call (a snapshot, even an old one). */
  heardMs: number;
  /** The app left the call: hang up (again) instead of keeping it alive. */
  leaving: { readonly mediaFailed: boolean } | undefined;
}

/** The pure call engine; see the file comment. */
export class CallEngine {
  readonly #userId: string;
  readonly #deviceId: string;
  #keepaliveIntervalMs: number;
  readonly #gapWaitMs: number;
  readonly #bufferMax: number;
  readonly #callsMax: number;
  readonly #staleCheckMs: number;
  readonly #calls = new Map<string, CallEntry>();

  constructor(options: CallEngineOptions) {
    this.#userId = options.userId;
    this.#deviceId = options.deviceId;
    this.#keepaliveIntervalMs = options.keepaliveIntervalMs ?? 10_000;
    this.#gapWaitMs = options.gapWaitMs ?? 1000;
    this.#bufferMax = options.bufferMax ?? 64;
    this.#callsMax = options.callsMax ?? 64;
    this.#staleCheckMs = options.staleCheckMs ?? 15_000;
  }

  /** The newest snapshot of a call, if known. */
  call(callId: string): Call | undefined {
    return this.#calls.get(callId)?.call;
  }

  /** Calls known and not ended. */
  liveCalls(): Call[] {
    return [...this.#calls.values()].filter((e) => e.call.state !== CallState.ENDED).map((e) => e.call);
  }

  /** Whether this device answers (or started) the call: it holds it, signals and keeps it alive. */
  holds(call: Call): boolean {
    const mine = call.parties.find((p) => p.userId === this.#userId);
    return mine !== undefined && mine.state === PartyState.ACCEPTED && mine.deviceId === this.#deviceId;
  }

  /** The server's keepalive interval (from KeepaliveResponse). */
  setKeepaliveInterval(ms: number): void {
    if (ms > 0) this.#keepaliveIntervalMs = ms;
  }

  /** A snapshot (pushed, or in an answer). Older than the one known: ignored. */
  snapshot(call: Call, nowMs: number): CallEffect[] {
    const entry = this.#calls.get(call.callId);
    if (entry !== undefined) entry.heardMs = nowMs;
    if (entry !== undefined && call.version <= entry.call.version) return [];
    const before = entry?.call;
    if (entry === undefined) {
      this.#calls.set(call.callId, { call, applied: 0n, buffered: new Map(), bufferedSinceMs: 0, repairAskedMs: nowMs, lastKeepaliveMs: nowMs, mediaConnected: false, heardMs: nowMs, leaving: undefined });
      this.#trim();
    } else {
      entry.call = call;
      // Answering counts as the first sign of life: the next keepalive is an interval away.
      if (before !== undefined && !this.holds(before) && this.holds(call)) entry.lastKeepaliveMs = nowMs;
    }
    return this.#events(before, call);
  }

  /** A relayed signal. Signals for another device of this user are ignored. */
  signal(signal: CallSignal, nowMs: number): CallEffect[] {
    if (signal.toDeviceId !== this.#deviceId) return [];
    const entry = this.#calls.get(signal.callId);
    if (entry === undefined || entry.call.state === CallState.ENDED) return [];
    if (signal.signalSeq <= entry.applied) return [];
    if (signal.prevSignalSeq !== entry.applied) {
      if (entry.buffered.size === 0) entry.bufferedSinceMs = nowMs;
      entry.buffered.set(signal.prevSignalSeq, signal);
      if (entry.buffered.size > this.#bufferMax) {
        entry.buffered.clear();
        return [{ type: "get_call", callId: signal.callId, afterSignalSeq: entry.applied }];
      }
      return [];
    }
    const out: CallEffect[] = [{ type: "apply_signal", signal }];
    entry.applied = signal.signalSeq;
    for (let next = entry.buffered.get(entry.applied); next !== undefined; next = entry.buffered.get(entry.applied)) {
      entry.buffered.delete(entry.applied);
      out.push({ type: "apply_signal", signal: next });
      entry.applied = next.signalSeq;
    }
    if (entry.buffered.size > 0) entry.bufferedSinceMs = nowMs;
    return out;
  }

  /** A GetCall answer: a newer snapshot, and a renegotiation when signals to this device were lost. */
  callView(view: { call: Call; lastSignalSeq: bigint; signalsMissed: boolean }, nowMs: number): CallEffect[] {
    const out = this.snapshot(view.call, nowMs);
    const entry = this.#calls.get(view.call.callId);
    if (entry === undefined || entry.call.state === CallState.ENDED) return out;
    if (view.lastSignalSeq > entry.applied) {
      // What is buffered cannot be chained onto what was applied: renegotiation replaces it all.
      entry.buffered.clear();
      entry.applied = view.lastSignalSeq;
      out.push({ type: "renegotiate", callId: view.call.callId });
    }
    return out;
  }

  /** The long connection came back: check every held call and restart its ICE. */
  reconnected(): CallEffect[] {
    const out: CallEffect[] = [];
    for (const entry of this.#calls.values()) {
      if (entry.call.state === CallState.ENDED) continue;
      out.push({ type: "get_call", callId: entry.call.callId, afterSignalSeq: entry.applied });
      if (this.holds(entry.call) && entry.call.state !== CallState.RINGING) out.push({ type: "ice_restart", callId: entry.call.callId });
    }
    return out;
  }

  /**
   * The app hangs up (or declines) the call: from now on the engine sends no keepalive for it
   * and asks to hang up again at each keepalive slot until a snapshot says it ended, so a
   * hangup lost with the connection still ends the call.
   */
  leave(callId: string, mediaFailed = false): void {
    const entry = this.#calls.get(callId);
    if (entry !== undefined && entry.call.state !== CallState.ENDED) entry.leaving = { mediaFailed };
  }

  /** The app's media for a call connected (or not): sent with the next keepalive, at once when it changes. */
  mediaState(callId: string, connected: boolean, nowMs: number): CallEffect[] {
    const entry = this.#calls.get(callId);
    if (entry === undefined || entry.mediaConnected === connected) return [];
    entry.mediaConnected = connected;
    if (!this.holds(entry.call) || entry.call.state === CallState.ENDED || entry.leaving !== undefined) return [];
    entry.lastKeepaliveMs = nowMs;
    return [{ type: "keepalive", callId, mediaConnected: connected }];
  }

  /** Advances time: keepalives due, gaps that did not close. */
  tick(nowMs: number): CallEffect[] {
    const out: CallEffect[] = [];
    for (const entry of this.#calls.values()) {
      const { call } = entry;
      if (call.state === CallState.ENDED) continue;
      const slot = nowMs - entry.lastKeepaliveMs >= this.#keepaliveIntervalMs;
      if (entry.leaving !== undefined && slot) {
        entry.lastKeepaliveMs = nowMs;
        out.push({ type: "hangup", callId: call.callId, mediaFailed: entry.leaving.mediaFailed });
      } else if (entry.leaving === undefined && this.holds(call) && slot) {
        entry.lastKeepaliveMs = nowMs;
        out.push({ type: "keepalive", callId: call.callId, mediaConnected: entry.mediaConnected });
      }
      const gap = entry.buffered.size > 0 && nowMs - entry.bufferedSinceMs >= this.#gapWaitMs && nowMs - entry.repairAskedMs >= this.#gapWaitMs;
      const stale = nowMs - entry.heardMs >= this.#staleCheckMs && nowMs - entry.repairAskedMs >= this.#staleCheckMs;
      if (gap || stale) {
        entry.repairAskedMs = nowMs;
        out.push({ type: "get_call", callId: call.callId, afterSignalSeq: entry.applied });
      }
    }
    return out;
  }

  #events(before: Call | undefined, call: Call): CallEffect[] {
    const me = (c: Call | undefined) => c?.parties.find((p) => p.userId === this.#userId);
    const mineBefore = me(before);
    const mineNow = me(call);
    const isCaller = call.callerId === this.#userId;
    if (call.state === CallState.ENDED) {
      return before?.state === CallState.ENDED ? [] : [{ type: "emit", event: "ended", call }];
    }
    if (before === undefined && !isCaller && mineNow !== undefined && (mineNow.state === PartyState.INVITED || mineNow.state === PartyState.RINGING)) {
      return [
        { type: "emit", event: "incoming", call },
        { type: "ring", callId: call.callId },
      ];
    }
    if (!isCaller && mineNow?.state === PartyState.ACCEPTED && mineBefore?.state !== PartyState.ACCEPTED) {
      return [{ type: "emit", event: mineNow.deviceId === this.#deviceId ? "accepted" : "answered_elsewhere", call }];
    }
    if (isCaller) {
      const answered = (c: Call | undefined) => (c?.parties ?? []).filter((p) => p.userId !== this.#userId && p.state === PartyState.ACCEPTED).length;
      const ringing = (c: Call | undefined) => (c?.parties ?? []).filter((p) => p.state === PartyState.RINGING).length;
      if (answered(call) > answered(before)) return [{ type: "emit", event: "accepted", call }];
      if (ringing(call) > ringing(before)) return [{ type: "emit", event: "ringing", call }];
    }
    return [{ type: "emit", event: "updated", call }];
  }

  #trim(): void {
    if (this.#calls.size <= this.#callsMax) return;
    for (const [id, entry] of this.#calls) {
      if (this.#calls.size <= this.#callsMax) return;
      if (entry.call.state === CallState.ENDED) this.#calls.delete(id);
    }
    while (this.#calls.size > this.#callsMax) this.#calls.delete(this.#calls.keys().next().value!);
  }
}
