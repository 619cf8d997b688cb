/**
 * Messages between the load generator's coordinator and its client processes (over the
 * child_process IPC channel, or in-process for small runs). Everything is plain JSON.
 */
import type { CheckReport } from "./delivery-checker.js";
import type { ConversationExpectation, LedgerEntry } from "./send-ledger.js";

/** Settings every client process gets once. */
export interface FleetConfig {
  readonly workerIndex: number;
  readonly workers: number;
  /** host:port of each gateway node; devices are spread over them in turn. */
  readonly targets: readonly string[];
  /** What each simulated device is (see DeviceKind). */
  readonly device: DeviceKind;
  readonly jwtSecret: string;
  /** Local addresses to bind client sockets to, round-robin per connection; empty: the OS picks. */
  readonly sourceAddresses: readonly string[];
  /** SDK clients (devices) sharing one HTTP/2 connection (sdk devices only). */
  readonly streamsPerConnection: number;
  /** Heartbeat interval per device: SDK ping frames (sdk), HTTP/2 PINGs (lean). */
  readonly heartbeatIntervalMs: number;
  /** Smallest message body (padded). */
  readonly bodyBytes: number;
  /** Sends one device may have waiting for their ack (the server allows 64 requests in flight). */
  readonly sendsInFlightMax: number;
  readonly progressIntervalMs: number;
}

/**
 * What a simulated device is: `sdk`, a real SDK client (ImClient: heartbeats, sync, gap repair,
 * reconnects), which is what proves the SDK; `lean`, one raw HTTP/2 gRPC stream whose pushes are
 * checked exactly as the server sent them, at a fraction of the SDK's CPU and memory, which is
 * what measures the server (see lean-link.ts).
 */
export type DeviceKind = "lean" | "sdk";

/** One simulated device: one long connection, one user. */
export interface DeviceSpec {
  readonly deviceId: string;
  readonly userId: string;
  /** Conversations the device must receive (checked at the end). */
  readonly conversations: readonly string[];
}

/** Expectations as JSON: [conversationId, expectation] pairs. */
export type ExpectationList = readonly (readonly [string, ConversationExpectation])[];

/** One sender device and where it sends (a device may appear in several entries). */
export interface SendEntry {
  readonly deviceId: string;
  readonly conversationId?: string;
  readonly toUserId?: string;
}

/** Commands a client process carries out, one at a time. */
export type Command =
  /**
   * Connect `devices` (new, or reconnect ones closed before, resuming from their cursors) at
   * `ratePerS` (0: all at once). Each must be live within `timeoutMs` of its start. With
   * `expect`, also waits until each device holds everything expected and records the time.
   */
  | {
      readonly op: "open";
      readonly devices: readonly DeviceSpec[];
      readonly ratePerS: number;
      /** At most this many devices opening (started, not yet live) at once; 0: no bound. */
      readonly parallel?: number;
      readonly timeoutMs: number;
      readonly expect?: ExpectationList;
      /** Record end-to-end latency of messages these devices receive (off for catch-up waves). */
      readonly recordLatency: boolean;
    }
  /** Send `count` messages (0: no count bound) at `ratePerS` over the entries, for at most `durationMs`. */
  | {
      readonly op: "send";
      readonly entries: readonly SendEntry[];
      readonly ratePerS: number;
      readonly count: number;
      readonly durationMs: number;
      /** How long to wait for the last acks after the last send. */
      readonly ackTimeoutMs: number;
    }
  /** Wait until every open device holds everything expected, for at most `timeoutMs`. */
  | { readonly op: "settle"; readonly expect: ExpectationList; readonly timeoutMs: number }
  /** Close the given devices (all when absent), going offline; cursors are kept for the next open. */
  | { readonly op: "close"; readonly deviceIds?: readonly string[] }
  /** The delivery checker's verdict. */
  | { readonly op: "verify"; readonly expect: ExpectationList }
  /** Histograms and counters. */
  | { readonly op: "collect" }
  /** What was recorded since the previous window (or the start), and a new window from now. */
  | { readonly op: "window" };

export interface OpenResult {
  readonly opened: number;
  readonly live: number;
  readonly failed: number;
  /** Devices that held everything expected within the timeout (with `expect`). */
  readonly synced: number;
  /** Messages still lacking at the end of the wait (with `expect`). */
  readonly lacking: number;
  /** From the first start to the last device live (or synced, with `expect`). */
  readonly elapsedMs: number;
}

export interface SendResult {
  readonly written: number;
  readonly acked: number;
  readonly failed: number;
  readonly ledger: Readonly<Record<string, LedgerEntry>>;
  /** Epoch ms of the first due send and of the last ack. */
  readonly firstDueMs: number;
  readonly lastAckMs: number;
  /** How far the pacer fell behind its schedule at worst (the sender could not keep up). */
  readonly behindMaxMs: number;
}

export interface SettleResult {
  readonly settled: boolean;
  readonly lacking: number;
  readonly elapsedMs: number;
}

/** Cumulative counters of one client process. */
export interface FleetCounters {
  readonly live: number;
  readonly opened: number;
  readonly received: number;
  readonly written: number;
  readonly acked: number;
  readonly sendFailures: number;
  readonly connectFailures: number;
  /** Live connections lost while they were supposed to stay up. */
  readonly drops: number;
  readonly errors: number;
  /** Epoch ms of the first and last message received from another device (0: none). */
  readonly firstReceiptMs: number;
  readonly lastReceiptMs: number;
  /** Heartbeats that were due while the device's previous one was unanswered (lean devices; none sent). */
  readonly heartbeatsLate: number;
  /** Out-of-order and duplicate findings of the delivery checker so far (pushes, as lean devices see them). */
  readonly outOfOrder: number;
  readonly duplicates: number;
  /** CPU time (user + system) this client process has used, in milliseconds. */
  readonly cpuMs: number;
  /** Resident memory of this client process, in bytes. */
  readonly rssBytes: number;
  /** The first error messages (bounded). */
  readonly errorSamples: readonly string[];
}

/** Histogram names; values are HdrHistogram compressed base64. */
export type HistogramName = "connect" | "rtt" | "delivery" | "deliveryFromWrite" | "ack" | "sync";

export interface CollectResult {
  readonly histograms: Readonly<Record<HistogramName, string>>;
  readonly counters: FleetCounters;
}

/** Histograms kept per window as well as for the whole run. */
export type WindowHistogramName = "rtt" | "delivery" | "deliveryFromWrite" | "ack";

/** One window of a client process: its histograms (encoded) and its counters at the window's end. */
export interface WindowResult {
  readonly histograms: Readonly<Record<WindowHistogramName, string>>;
  readonly counters: FleetCounters;
}

/** Sent by a client process every progressIntervalMs. */
export interface ProgressSample {
  readonly workerIndex: number;
  readonly counters: FleetCounters;
  /** Delivery latency and heartbeat RTT recorded since the previous sample (encoded). */
  readonly interval: { readonly delivery: string; readonly rtt: string };
}

export type ResultOf<C extends Command> = C["op"] extends "open"
  ? OpenResult
  : C["op"] extends "send"
    ? SendResult
    : C["op"] extends "settle"
      ? SettleResult
      : C["op"] extends "verify"
        ? CheckReport
        : C["op"] extends "collect"
          ? CollectResult
          : C["op"] extends "window"
            ? WindowResult
            : { readonly closed: number };

/** Coordinator -> client process. */
export type ToFleet =
  | { readonly type: "init"; readonly config: FleetConfig }
  | { readonly type: "command"; readonly id: number; readonly command: Command }
  | { readonly type: "shutdown" };

/** Client process -> coordinator. */
export type FromFleet =
  | { readonly type: "ready"; readonly pid: number }
  | { readonly type: "result"; readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly type: "result"; readonly id: number; readonly ok: false; readonly error: string }
  | { readonly type: "progress"; readonly sample: ProgressSample };
