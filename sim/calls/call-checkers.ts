import { CallEndReason, CallState, PartyState, type Call } from "../../gen/im/v1/call_pb.js";
import { holdsSlot, type CallEndReason as EndReason, type CallRecord, type CallTimeouts } from "../../server/core/call-model.js";
import { toWireCall } from "../../server/gateway/call-codec.js";

/** The calls checkers, reported separately. */
export type CallCheckerName = "answerer" | "after-ended" | "ended-once" | "busy" | "glare" | "convergence" | "invariant";

/** Every checker, in report order. */
export const CALL_CHECKERS: readonly CallCheckerName[] = ["answerer", "after-ended", "ended-once", "busy", "glare", "convergence", "invariant"];

/** A successful write to the shared CallStore, in the order the store applied them. */
export interface StoreWrite {
  /** Virtual time of the write. */
  readonly atMs: number;
  readonly kind: "create" | "update" | "delete";
  /** The call as written (for a delete: the version deleted). */
  readonly call: CallRecord;
}

/** A device whose answer (Accept, or a StartCall that answered on glare) came back with the call held by it. */
export interface Answer {
  readonly callId: string;
  readonly userId: string;
  readonly device: string;
  readonly deviceId: string;
  readonly atMs: number;
}

/** Something a device's CallEngine told its app (an `emit` effect, or a signal handed out). */
export interface DeviceEvent {
  /** The device and its app's life (`u3/d1#2`): a reopened app runs a new engine. */
  readonly device: string;
  readonly userId: string;
  readonly deviceId: string;
  readonly callId: string;
  readonly atMs: number;
  /** A CallEngine event kind, or "signal" for a signal applied. */
  readonly kind: string;
  /** For emits: the snapshot's view. */
  readonly call?: CallView;
  /** For signals: its signal_seq. */
  readonly signalSeq?: number;
}

/** One of the two StartCalls of a glare pair and its outcome. */
export interface GlareStart {
  readonly pair: number;
  readonly userId: string;
  readonly toUserId: string;
  readonly sentAtMs: number;
  readonly doneAtMs: number;
  /** The call the start returned (its own, or the other user's on glare). */
  readonly callId?: string;
  /** The refusal's reason when it was refused ("already_in_call", ...), or "no_answer" when no answer came. */
  readonly failure?: string;
  /** For already_in_call: the call the user was said to be in. */
  readonly heldCallId?: string;
}

/** A call as a view compares it: what the parties see. */
export interface CallView {
  readonly callId: string;
  readonly version: number;
  readonly state: string;
  readonly endReason: string;
  /** `user:STATE:device` per party, in order. */
  readonly parties: readonly string[];
}

/** What a device's engine believes at the end of the run. */
export interface DeviceView {
  readonly device: string;
  readonly calls: readonly CallView[];
}

/** A call's stored message in its conversation's log. */
export interface StoredCallMessage {
  readonly conversationId: string;
  readonly callId: string;
  readonly event: string;
  readonly reason?: string;
}

/** Everything the checkers judge: a run, or a mutated copy of one in the tests. */
export interface CallsRunRecord {
  readonly timeouts: CallTimeouts;
  readonly history: readonly StoreWrite[];
  readonly answers: readonly Answer[];
  readonly deviceEvents: readonly DeviceEvent[];
  readonly glare: readonly GlareStart[];
  /** Taken after the liveness phase. */
  readonly views: readonly DeviceView[];
  readonly messages: readonly StoredCallMessage[];
  /** Unexpected errors (internal errors, non-store failures of background work, an exhausted event budget). */
  readonly errors: readonly { readonly atMs: number; readonly detail: string }[];
}

/** One violation. */
export interface CallViolation {
  readonly checker: CallCheckerName;
  readonly callId: string;
  readonly device: string;
  readonly atMs: number;
  readonly detail: string;
}

/** A checker's tally and its first few violations. */
export interface CallCheckerReport {
  readonly violations: number;
  readonly examples: CallViolation[];
}

/** The checkers' verdict and a few figures they computed on the way. */
export interface CallsVerdict {
  readonly reports: Record<CallCheckerName, CallCheckerReport>;
  readonly first: CallViolation | undefined;
  readonly total: number;
  /** Glare pairs whose two starts both came back with one call. */
  readonly glareMerged: number;
  /** Calls by end reason (final records). */
  readonly endReasons: Record<string, number>;
}

const EXAMPLES_MAX = 5;

/** The reasons a call may end with in one-to-one calls without a media server. */
const ALLOWED_REASONS: ReadonlySet<EndReason> = new Set(["hangup", "cancelled", "declined", "busy", "no_answer", "ice_failed", "connection_lost", "media_failed"]);

/**
 * The last `linesMax` things that happened to one call, oldest first: its store writes and
 * what devices were told and did (the trace printed with a violation).
 */
export function traceCall(record: CallsRunRecord, callId: string, linesMax = 40): string[] {
  const lines: { atMs: number; order: number; text: string }[] = [];
  let order = 0;
  for (const w of record.history) {
    if (w.call.callId !== callId) continue;
    const c = w.call;
    const parties = c.parties.map((p) => `${p.userId}:${p.state}${p.deviceId === "" ? "" : `@${p.deviceId}`}`).join(" ");
    lines.push({ atMs: w.atMs, order: order++, text: `store ${w.kind} v${c.version} ${c.state}${c.endReason === "" ? "" : ` ${c.endReason}`} [${parties}]${c.messagesPending.length > 0 ? ` pending ${c.messagesPending.join(",")}` : ""}` });
  }
  for (const e of record.deviceEvents) {
    if (e.callId !== callId) continue;
    const what = e.kind === "signal" ? `signal ${e.signalSeq}` : `${e.kind} (v${e.call?.version ?? "?"} ${e.call?.state ?? ""})`;
    lines.push({ atMs: e.atMs, order: order++, text: `${e.device} told ${what}` });
  }
  for (const a of record.answers) if (a.callId === callId) lines.push({ atMs: a.atMs, order: order++, text: `${a.device} answered OK` });
  for (const g of record.glare) {
    if (g.callId === callId || g.heldCallId === callId) lines.push({ atMs: g.doneAtMs, order: order++, text: `glare pair ${g.pair}: ${g.userId} calling ${g.toUserId} ${g.callId === undefined ? `refused ${g.failure ?? ""}` : `got ${g.callId}`}` });
  }
  lines.sort((a, b) => a.atMs - b.atMs || a.order - b.order);
  return lines.slice(-linesMax).map((l) => `${String(l.atMs).padStart(8)} ms  ${l.text}`);
}

/** A wire call as a view compares it. */
export function viewOfWireCall(call: Call): CallView {
  return {
    callId: call.callId,
    version: Number(call.version),
    state: CallState[call.state] ?? String(call.state),
    endReason: CallEndReason[call.endReason] ?? String(call.endReason),
    parties: call.parties.map((p) => `${p.userId}:${PartyState[p.state] ?? String(p.state)}:${p.deviceId}`),
  };
}

/** A stored record as its parties see it (through the production codec). */
export function viewOfRecord(call: CallRecord): CallView {
  return viewOfWireCall(toWireCall(call));
}

/**
 * Judges a calls run after the fact, from the store's write history, what devices were told
 * and did, the glare starts, the devices' final views and the stored messages:
 * - answerer: one device answers per callee: the store never changes a party's answering
 *   device, no two devices of a user were answered OK, and only the answering device is told
 *   "accepted";
 * - after-ended: a call's ENDED record never changes in what the parties see, and a device
 *   hears nothing of a call after it told its app "ended";
 * - ended-once: every call ends, once, with an allowed reason that fits its history (busy only
 *   at creation, no_answer after the ring timeout, ...), and has exactly its two stored
 *   messages, started then ended with that reason;
 * - busy: no user holds a slot in two live calls at any write, and a call ended BUSY found
 *   every callee in another call;
 * - glare: two users calling each other at once end in one call;
 * - convergence: every device's view of every call it knows is the store's final state.
 */
export function checkCalls(record: CallsRunRecord): CallsVerdict {
  const reports = new Map<CallCheckerName, { violations: number; examples: CallViolation[] }>();
  for (const name of CALL_CHECKERS) reports.set(name, { violations: 0, examples: [] });
  let first: CallViolation | undefined;
  let total = 0;
  const report = (checker: CallCheckerName, callId: string, device: string, atMs: number, detail: string): void => {
    const v: CallViolation = { checker, callId, device, atMs, detail };
    const r = reports.get(checker)!;
    r.violations++;
    if (r.examples.length < EXAMPLES_MAX) r.examples.push(v);
    first ??= v;
    total++;
  };

  const byCall = new Map<string, StoreWrite[]>();
  for (const w of record.history) {
    let list = byCall.get(w.call.callId);
    if (list === undefined) byCall.set(w.call.callId, (list = []));
    list.push(w);
  }
  /** The last version of each call (for a purged call, the version purged). */
  const finals = new Map<string, CallRecord>();
  for (const [id, writes] of byCall) finals.set(id, writes[writes.length - 1]!.call);

  checkAnswerer(record, byCall, finals, report);
  checkAfterEnded(record, byCall, report);
  const endReasons = checkEndedOnce(record, byCall, finals, report);
  checkBusy(record, report);
  const glareMerged = checkGlare(record, byCall, finals, report);
  checkConvergence(record, finals, report);
  for (const e of record.errors) report("invariant", "", "", e.atMs, e.detail);

  const out = {} as Record<CallCheckerName, CallCheckerReport>;
  for (const name of CALL_CHECKERS) out[name] = reports.get(name)!;
  return { reports: out, first, total, glareMerged, endReasons };
}

type Report = (checker: CallCheckerName, callId: string, device: string, atMs: number, detail: string) => void;

function checkAnswerer(record: CallsRunRecord, byCall: Map<string, StoreWrite[]>, finals: Map<string, CallRecord>, report: Report): void {
  for (const [callId, writes] of byCall) {
    const answered = new Map<string, string>();
    for (const w of writes) {
      for (const p of w.call.parties) {
        if (p.userId === w.call.callerId || p.deviceId === "") continue;
        const before = answered.get(p.userId);
        if (before === undefined) answered.set(p.userId, p.deviceId);
        else if (before !== p.deviceId) report("answerer", callId, p.deviceId, w.atMs, `${p.userId}'s call was answered on ${before}, then the store says ${p.deviceId}`);
      }
    }
  }
  const answers = new Map<string, Answer[]>();
  for (const a of record.answers) {
    const k = `${a.callId}\n${a.userId}`;
    answers.set(k, [...(answers.get(k) ?? []), a]);
  }
  for (const list of answers.values()) {
    const devices = new Set(list.map((a) => a.deviceId));
    const a = list[0]!;
    if (devices.size > 1) report("answerer", a.callId, list.map((x) => x.device).join(","), list[list.length - 1]!.atMs, `${devices.size} devices of ${a.userId} were told they answered: ${[...devices].join(", ")}`);
    const final = finals.get(a.callId);
    const party = final?.parties.find((p) => p.userId === a.userId);
    if (final !== undefined && party !== undefined && party.deviceId !== "" && !devices.has(party.deviceId)) {
      report("answerer", a.callId, a.device, a.atMs, `${a.deviceId} was told it answered, the store says ${party.deviceId}`);
    }
  }
  const told = new Map<string, Set<string>>();
  for (const e of record.deviceEvents) {
    if (e.kind !== "accepted" || e.call === undefined) continue;
    const final = finals.get(e.callId);
    if (final === undefined || final.callerId === e.userId) continue;
    const k = `${e.callId}\n${e.userId}`;
    const set = told.get(k) ?? new Set<string>();
    set.add(e.deviceId);
    told.set(k, set);
    if (set.size > 1) report("answerer", e.callId, e.device, e.atMs, `two devices of ${e.userId} were told "accepted": ${[...set].join(", ")}`);
  }
}

function visibleSame(a: CallRecord, b: CallRecord): boolean {
  return a.state === b.state && a.endReason === b.endReason && a.endedAtMs === b.endedAtMs && a.answeredAtMs === b.answeredAtMs && JSON.stringify(a.parties) === JSON.stringify(b.parties);
}

function checkAfterEnded(record: CallsRunRecord, byCall: Map<string, StoreWrite[]>, report: Report): void {
  for (const [callId, writes] of byCall) {
    let ended: CallRecord | undefined;
    for (const w of writes) {
      if (ended !== undefined && w.kind !== "delete" && !visibleSame(ended, w.call)) {
        report("after-ended", callId, "", w.atMs, `the call changed after it ended ${ended.endReason}: now ${w.call.state}${w.call.endReason === "" ? "" : ` ${w.call.endReason}`}`);
      }
      if (ended === undefined && w.call.state === "ended") ended = w.call;
      if (w.kind === "create" && writes[0] !== w) report("after-ended", callId, "", w.atMs, "the call was created twice");
    }
  }
  const endedAt = new Map<string, number>();
  for (const e of record.deviceEvents) {
    const k = `${e.device}\n${e.callId}`;
    const at = endedAt.get(k);
    if (at !== undefined) {
      report("after-ended", e.callId, e.device, e.atMs, `the device was told "${e.kind}" after it was told "ended" at ${at} ms`);
      continue;
    }
    if (e.kind === "ended") endedAt.set(k, e.atMs);
  }
}

function checkEndedOnce(record: CallsRunRecord, byCall: Map<string, StoreWrite[]>, finals: Map<string, CallRecord>, report: Report): Record<string, number> {
  const t = record.timeouts;
  const reasons: Record<string, number> = {};
  const stored = new Map<string, StoredCallMessage[]>();
  for (const m of record.messages) stored.set(m.callId, [...(stored.get(m.callId) ?? []), m]);
  for (const [callId, writes] of byCall) {
    const final = finals.get(callId)!;
    const last = writes[writes.length - 1]!;
    if (final.state !== "ended") {
      report("ended-once", callId, "", last.atMs, `never ended: ${final.state} since ${last.atMs} ms`);
      continue;
    }
    reasons[final.endReason] = (reasons[final.endReason] ?? 0) + 1;
    let endings = 0;
    let before: CallRecord | undefined;
    let endWrite: StoreWrite | undefined;
    let previous: CallRecord | undefined;
    for (const w of writes) {
      if (w.call.state === "ended" && previous?.state !== "ended") {
        endings++;
        if (endWrite === undefined) {
          endWrite = w;
          before = previous;
        }
      }
      previous = w.call;
    }
    if (endings !== 1) report("ended-once", callId, "", last.atMs, `ended ${endings} times`);
    const reason = final.endReason;
    const why = reasonMismatch(final, writes[0]!, before, t);
    if (reason === "" || !ALLOWED_REASONS.has(reason)) report("ended-once", callId, "", endWrite?.atMs ?? last.atMs, `ended with reason ${JSON.stringify(reason)}, not an allowed one`);
    else if (why !== undefined) report("ended-once", callId, "", endWrite?.atMs ?? last.atMs, `ended ${reason} but ${why}`);
    const messages = stored.get(callId) ?? [];
    const events = messages.map((m) => (m.reason === undefined ? m.event : `${m.event}:${m.reason}`));
    const want = ["started", `ended:${reason}`];
    if (JSON.stringify(events) !== JSON.stringify(want)) {
      const pending = final.messagesPending.length > 0 ? ` (still pending: ${final.messagesPending.join(", ")})` : "";
      report("ended-once", callId, "", last.atMs, `stored messages ${JSON.stringify(events)}, want ${JSON.stringify(want)}${pending}`);
    }
  }
  const known = new Set(byCall.keys());
  for (const [callId, list] of stored) if (!known.has(callId)) report("ended-once", callId, "", 0, `${list.length} stored messages of a call the store never had`);
  return reasons;
}

/** Why `reason` does not fit the call's history, or undefined when it does. */
function reasonMismatch(final: CallRecord, created: StoreWrite, beforeEnd: CallRecord | undefined, t: CallTimeouts): string | undefined {
  const createdEnded = created.call.state === "ended";
  switch (final.endReason) {
    case "busy":
      return createdEnded ? undefined : "it rang first (busy is decided when the call is created)";
    case "cancelled":
    case "declined":
      if (final.answeredAtMs !== 0) return "it had been answered";
      if (final.endReason === "declined" && !final.parties.some((p) => p.state === "declined")) return "no party declined";
      return undefined;
    case "no_answer":
      if (final.answeredAtMs !== 0) return "it had been answered";
      return final.endedAtMs >= final.createdAtMs + t.ringTimeoutMs ? undefined : `it ended ${final.endedAtMs - final.createdAtMs} ms after it started, before the ring timeout`;
    case "ice_failed":
      if (final.answeredAtMs === 0) return "it was never answered";
      if (beforeEnd !== undefined && beforeEnd.state !== "connecting") return `it was ${beforeEnd.state}, not connecting`;
      return final.endedAtMs >= final.answeredAtMs + t.connectTimeoutMs ? undefined : "it ended before the connect timeout";
    case "hangup":
      // A hangup before an answer is a cancel (caller) or a decline (callee).
      return final.answeredAtMs === 0 ? "it was never answered" : undefined;
    default:
      return undefined;
  }
}

function checkBusy(record: CallsRunRecord, report: Report): void {
  const live = new Map<string, CallRecord>();
  const holders = (c: CallRecord): string[] => (c.state === "ended" ? [] : c.parties.filter((p) => holdsSlot(p.state)).map((p) => p.userId));
  /** Per user, the virtual times at which it held a slot (its latest stretch start and end). */
  const heldUntil = new Map<string, { since: number; until: number; callId: string }[]>();
  const mark = (user: string, callId: string, atMs: number): void => {
    const list = heldUntil.get(user) ?? [];
    const top = list[list.length - 1];
    if (top !== undefined && top.callId === callId && top.until >= atMs - 1) top.until = atMs;
    else list.push({ since: atMs, until: atMs, callId });
    heldUntil.set(user, list);
  };
  for (const w of record.history) {
    const id = w.call.callId;
    if (w.kind === "create" && w.call.endReason === "busy") {
      const cutoffMs = w.atMs - 2_000;
      for (const p of w.call.parties) {
        if (p.state !== "busy") continue;
        const stretches = heldUntil.get(p.userId) ?? [];
        const inCall = stretches.some((s) => s.callId !== id && s.until >= cutoffMs) || [...live.values()].some((c) => c.callId !== id && holders(c).includes(p.userId));
        if (!inCall) report("busy", id, "", w.atMs, `${p.userId} was called busy but was in no other call`);
      }
    }
    if (w.kind === "delete") live.delete(id);
    else live.set(id, w.call);
    const count = new Map<string, string[]>();
    for (const c of live.values()) {
      for (const u of holders(c)) {
        count.set(u, [...(count.get(u) ?? []), c.callId]);
        mark(u, c.callId, w.atMs);
      }
    }
    for (const [u, calls] of count) if (calls.length > 1 && calls.includes(id)) report("busy", id, "", w.atMs, `${u} is in ${calls.length} live calls at once: ${calls.join(", ")}`);
  }
}

function checkGlare(record: CallsRunRecord, byCall: Map<string, StoreWrite[]>, finals: Map<string, CallRecord>, report: Report): number {
  const pairs = new Map<number, GlareStart[]>();
  for (const s of record.glare) pairs.set(s.pair, [...(pairs.get(s.pair) ?? []), s]);
  let merged = 0;
  for (const [pair, starts] of pairs) {
    if (starts.length !== 2) continue;
    const [a, b] = starts as [GlareStart, GlareStart];
    if (a.callId !== undefined && b.callId !== undefined) {
      if (a.callId === b.callId) {
        merged++;
        continue;
      }
      const ca = finals.get(a.callId);
      const cb = finals.get(b.callId);
      const apart = ca !== undefined && cb !== undefined && ((ca.endedAtMs > 0 && ca.endedAtMs <= cb.createdAtMs) || (cb.endedAtMs > 0 && cb.endedAtMs <= ca.createdAtMs));
      if (!apart) report("glare", a.callId, "", Math.max(a.doneAtMs, b.doneAtMs), `glare pair ${pair}: ${a.userId} and ${b.userId} called each other and got two live calls, ${a.callId} and ${b.callId}`);
      continue;
    }
    for (const [s, other] of [[a, b], [b, a]] as const) {
      if (s.failure !== "already_in_call" || s.heldCallId === undefined) continue;
      const held = latestAt(byCall.get(s.heldCallId) ?? [], s.doneAtMs);
      if (held === undefined || held.callerId !== other.userId || held.topology !== "p2p" || held.state !== "ringing") continue;
      const me = held.parties.find((p) => p.userId === s.userId);
      if (me !== undefined && (me.state === "invited" || me.state === "ringing")) {
        report("glare", s.heldCallId, "", s.doneAtMs, `glare pair ${pair}: ${s.userId} calling ${other.userId} was refused already_in_call while ${other.userId}'s call to it rang (glare must answer it)`);
      }
    }
  }
  return merged;
}

function latestAt(writes: readonly StoreWrite[], atMs: number): CallRecord | undefined {
  let out: CallRecord | undefined;
  for (const w of writes) {
    if (w.atMs > atMs) break;
    out = w.kind === "delete" ? undefined : w.call;
  }
  return out;
}

function checkConvergence(record: CallsRunRecord, finals: Map<string, CallRecord>, report: Report): void {
  for (const view of record.views) {
    for (const mine of view.calls) {
      const final = finals.get(mine.callId);
      if (final === undefined) {
        report("convergence", mine.callId, view.device, 0, "the device knows a call the store never had");
        continue;
      }
      const truth = viewOfRecord(final);
      const diffs: string[] = [];
      if (mine.state !== truth.state) diffs.push(`state ${mine.state}, store ${truth.state}`);
      if (mine.endReason !== truth.endReason) diffs.push(`reason ${mine.endReason}, store ${truth.endReason}`);
      if (JSON.stringify(mine.parties) !== JSON.stringify(truth.parties)) diffs.push(`parties ${mine.parties.join(" ")}, store ${truth.parties.join(" ")}`);
      if (diffs.length > 0) report("convergence", mine.callId, view.device, 0, `the device's view (version ${mine.version}) differs from the store's final state: ${diffs.join("; ")}`);
    }
  }
}
