import { directConversationId } from "../server/core/conversation-id.js";
import type { ClientCursor } from "../client/sync-engine.js";
import { DeliveryChecker, type CheckReport, type Delivery, type TrackedDevice } from "./delivery-checker.js";
import { SdkLink, type DeviceLink } from "./device-link.js";
import { HeartbeatWheel, type Beating } from "./heartbeat-wheel.js";
import { LatencyHistogram } from "./latency-histogram.js";
import { LeanLink, type LeanLinkContext, type LeanLinkEvents } from "./lean-link.js";
import { encodeLoadBody, LOADGEN_CONTENT_TYPE, readLoadTimes, wallClockMs } from "./message-body.js";
import type {
  CollectResult,
  Command,
  DeviceSpec,
  FleetConfig,
  FleetCounters,
  HistogramName,
  OpenResult,
  ProgressSample,
  SendResult,
  SettleResult,
  WindowHistogramName,
  WindowResult,
} from "./protocol.js";
import { SendLedger, type ConversationExpectation } from "./send-ledger.js";
import { createTokenMinter, type TokenMinter } from "./token-minter.js";
import { TransportPool, type TransportLease } from "./transport-pool.js";

interface Device {
  readonly spec: DeviceSpec;
  /** The device in the delivery checker. */
  readonly checked: TrackedDevice;
  /** The device's place in this process, which picks its target and source address. */
  readonly index: number;
  link: DeviceLink | undefined;
  /** The HTTP/2 connection an sdk device holds a share of. */
  lease: TransportLease | undefined;
  /** Where the device stood when it last went offline; the next open resumes from here. */
  cursors: ClientCursor[];
  /** performance.now() of the current open. */
  startedAt: number;
  liveAt: number | undefined;
  isLive: boolean;
  /** Live at least once, in any open. */
  everLive: boolean;
  /** The current link is over for good (a lean device that closed or could not connect). */
  ended: boolean;
  /** Started and not yet live, failed or closed (counted in Fleet.#connecting). */
  connecting: boolean;
  closing: boolean;
  failed: boolean;
  inFlight: number;
  sent: number;
  recordLatency: boolean;
  syncTarget: ReadonlyMap<string, ConversationExpectation> | undefined;
  syncedAt: number | undefined;
}

const ERROR_SAMPLES_MAX = 10;

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}
const TOKEN_TTL_S = 24 * 3600;

// Node truncates timer delays to whole milliseconds: round up, so a paced send is never early.
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, Math.ceil(ms))));

function histograms<N extends string>(names: readonly N[]): Record<N, LatencyHistogram> {
  return Object.fromEntries(names.map((n) => [n, new LatencyHistogram()])) as Record<N, LatencyHistogram>;
}

const HISTOGRAMS: readonly HistogramName[] = ["connect", "rtt", "delivery", "deliveryFromWrite", "ack", "sync"];
const WINDOW_HISTOGRAMS: readonly WindowHistogramName[] = ["rtt", "delivery", "deliveryFromWrite", "ack"];

/**
 * The simulated devices of one client process and the commands the coordinator drives them
 * with (see protocol.ts). Each device is a real SDK client or a lean raw stream (DeviceKind)
 * on its own HTTP/2 connection; what each receives goes through the DeliveryChecker.
 */
export class Fleet {
  readonly #config: FleetConfig;
  /** One per target (sdk devices). */
  readonly #pools: TransportPool[] = [];
  readonly #linkEvents: LeanLinkEvents<Device>;
  readonly #lean: LeanLinkContext<Device> | undefined;
  readonly #mint: TokenMinter;
  readonly #devices = new Map<string, Device>();
  readonly #checker = new DeliveryChecker();
  readonly #histograms = histograms(HISTOGRAMS);
  readonly #window = histograms(WINDOW_HISTOGRAMS);
  readonly #intervalDelivery = new LatencyHistogram();
  readonly #intervalRtt = new LatencyHistogram();
  readonly #progress: ReturnType<typeof setInterval> | undefined;
  readonly #errorSamples: string[] = [];
  #live = 0;
  #opened = 0;
  #received = 0;
  #written = 0;
  #acked = 0;
  #sendFailures = 0;
  #connectFailures = 0;
  #drops = 0;
  #errors = 0;
  #heartbeatsLate = 0;
  #connecting = 0;
  #firstReceiptMs = 0;
  #lastReceiptMs = 0;

  constructor(config: FleetConfig, onProgress?: (sample: ProgressSample) => void) {
    this.#config = config;
    this.#mint = createTokenMinter(config.jwtSecret, TOKEN_TTL_S);
    const rtt = (ms: number) => {
      this.#histograms.rtt.record(ms);
      this.#window.rtt.record(ms);
      this.#intervalRtt.record(ms);
    };
    this.#linkEvents = this.#events(rtt);
    if (config.device === "sdk") {
      for (const target of config.targets) {
        this.#pools.push(
          new TransportPool({
            baseUrl: `http://${target}`,
            streamsPerConnection: config.streamsPerConnection,
            sourceAddresses: config.sourceAddresses,
            addressOffset: config.workerIndex,
            onHeartbeatRtt: rtt,
          }),
        );
      }
    } else {
      this.#lean = { events: this.#linkEvents, wheel: new HeartbeatWheel<Beating>(config.heartbeatIntervalMs) };
    }
    if (onProgress !== undefined) {
      this.#progress = setInterval(() => {
        const interval = { delivery: this.#intervalDelivery.encode(), rtt: this.#intervalRtt.encode() };
        this.#intervalDelivery.reset();
        this.#intervalRtt.reset();
        onProgress({ workerIndex: config.workerIndex, counters: this.counters(), interval });
      }, config.progressIntervalMs);
      this.#progress.unref();
    }
  }

  /** Carries out one command. */
  async run(command: Command): Promise<unknown> {
    switch (command.op) {
      case "open":
        return this.#open(command);
      case "send":
        return this.#send(command);
      case "settle":
        return this.#settle(new Map(command.expect), command.timeoutMs);
      case "close":
        return { closed: await this.#closeAll(command.deviceIds === undefined ? undefined : new Set(command.deviceIds)) };
      case "verify":
        for (const d of this.#devices.values()) d.link?.flush();
        return this.#checker.verify(new Map(command.expect)) satisfies CheckReport;
      case "collect":
        return this.#collect();
      case "window":
        return this.#takeWindow();
    }
  }

  /** Closes every device and connection (bounded: every link's close is). */
  async shutdown(): Promise<void> {
    if (this.#progress !== undefined) clearInterval(this.#progress);
    await Promise.race([this.#closeAll(), sleep(10_000)]);
    for (const pool of this.#pools) pool.closeAll();
    this.#lean?.wheel.stop();
  }

  counters(): FleetCounters {
    return {
      live: this.#live,
      opened: this.#opened,
      received: this.#received,
      written: this.#written,
      acked: this.#acked,
      sendFailures: this.#sendFailures,
      connectFailures: this.#connectFailures,
      drops: this.#drops,
      errors: this.#errors,
      firstReceiptMs: this.#firstReceiptMs,
      lastReceiptMs: this.#lastReceiptMs,
      heartbeatsLate: this.#heartbeatsLate,
      outOfOrder: this.#checker.count("out-of-order"),
      duplicates: this.#checker.count("duplicate"),
      cpuMs: cpuMs(),
      rssBytes: process.memoryUsage.rss(),
      errorSamples: [...this.#errorSamples],
    };
  }

  #error(message: string): void {
    this.#errors++;
    if (this.#errorSamples.length < ERROR_SAMPLES_MAX) this.#errorSamples.push(message);
  }

  /** What links report, for every device of this fleet (one object, no closures per device). */
  #events(rtt: (ms: number) => void): LeanLinkEvents<Device> {
    return {
      live: (d) => {
        this.#settled(d);
        if (!d.isLive) {
          d.isLive = true;
          this.#live++;
        }
        d.everLive = true;
        if (d.liveAt === undefined) {
          d.liveAt = performance.now();
          this.#histograms.connect.record(d.liveAt - d.startedAt);
        }
        this.#checkSynced(d);
      },
      down: (d) => {
        if (!d.isLive) return;
        d.isLive = false;
        this.#live--;
        if (!d.closing) this.#drops++;
      },
      ended: (d) => {
        d.ended = true;
        this.#settled(d);
      },
      arrived: (d, contentType, data) => this.#arrived(d, contentType, data),
      delivered: (d, delivery) => this.#delivered(d, delivery),
      error: (d, message) => {
        if (!d.closing) this.#error(`${d.spec.deviceId}: ${message}`);
      },
      rtt,
      heartbeatLate: () => {
        this.#heartbeatsLate++;
      },
      lastSeq: (d, conversationId) => this.#checker.lastSeq(d.spec.deviceId, conversationId),
    };
  }

  /** The device is no longer opening (live, over, or given up). */
  #settled(d: Device): void {
    if (!d.connecting) return;
    d.connecting = false;
    this.#connecting--;
  }

  #arrived(d: Device, contentType: string, data: Uint8Array): void {
    this.#received++;
    const now = wallClockMs();
    if (this.#firstReceiptMs === 0) this.#firstReceiptMs = now;
    this.#lastReceiptMs = now;
    if (!d.recordLatency) return;
    const body = readLoadTimes(contentType, data);
    if (body === undefined) return;
    this.#histograms.delivery.record(now - body.dueMs);
    this.#histograms.deliveryFromWrite.record(now - body.writtenMs);
    this.#window.delivery.record(now - body.dueMs);
    this.#window.deliveryFromWrite.record(now - body.writtenMs);
    this.#intervalDelivery.record(now - body.dueMs);
  }

  #delivered(d: Device, delivery: Delivery): void {
    this.#checker.recordFor(d.checked, delivery);
    if (d.syncTarget !== undefined) this.#checkSynced(d);
  }

  #device(spec: DeviceSpec): Device {
    let d = this.#devices.get(spec.deviceId);
    if (d === undefined) {
      d = {
        spec,
        checked: this.#checker.tracked(spec.deviceId, spec.conversations),
        index: this.#devices.size,
        link: undefined,
        lease: undefined,
        cursors: [],
        startedAt: 0,
        liveAt: undefined,
        isLive: false,
        everLive: false,
        ended: false,
        connecting: false,
        closing: false,
        failed: false,
        inFlight: 0,
        sent: 0,
        recordLatency: true,
        syncTarget: undefined,
        syncedAt: undefined,
      };
      this.#devices.set(spec.deviceId, d);
    }
    return d;
  }

  #start(d: Device, recordLatency: boolean, syncTarget: ReadonlyMap<string, ConversationExpectation> | undefined): void {
    if (d.link !== undefined) throw new Error(`device ${d.spec.deviceId} is already open`);
    const { targets, sourceAddresses, workerIndex, heartbeatIntervalMs } = this.#config;
    d.startedAt = performance.now();
    d.liveAt = undefined;
    d.ended = false;
    d.closing = false;
    d.failed = false;
    d.recordLatency = recordLatency;
    d.syncTarget = syncTarget;
    d.syncedAt = undefined;
    const userId = d.spec.userId;
    if (this.#lean !== undefined) {
      const target = targets[d.index % targets.length]!;
      const localAddress = sourceAddresses.length > 0 ? sourceAddresses[(workerIndex + d.index) % sourceAddresses.length] : undefined;
      d.link = new LeanLink(this.#lean, d, { url: `http://${target}`, token: this.#mint(userId), ...(localAddress === undefined ? {} : { localAddress }) });
    } else {
      d.lease = this.#pools[d.index % this.#pools.length]!.acquire();
      d.link = new SdkLink(this.#linkEvents, d, { userId, transport: d.lease.transport, token: () => this.#mint(userId), heartbeatIntervalMs, cursors: d.cursors });
    }
    this.#opened++;
    d.connecting = true;
    this.#connecting++;
    d.link.start();
  }

  #checkSynced(d: Device): void {
    if (d.syncTarget === undefined || d.syncedAt !== undefined) return;
    if (this.#checker.lacking(d.spec.deviceId, d.syncTarget) > 0) return;
    d.syncedAt = performance.now();
    this.#histograms.sync.record(d.syncedAt - d.startedAt);
  }

  async #closeDevice(d: Device): Promise<void> {
    const link = d.link;
    if (link === undefined) return;
    d.closing = true;
    this.#settled(d);
    await link.close();
    link.flush();
    d.cursors = link.cursors();
    d.link = undefined;
    d.lease?.release();
    d.lease = undefined;
    if (d.isLive) {
      d.isLive = false;
      this.#live--;
    }
  }

  async #closeAll(only?: ReadonlySet<string>): Promise<number> {
    const open = [...this.#devices.values()].filter((d) => d.link !== undefined && (only === undefined || only.has(d.spec.deviceId)));
    await Promise.all(open.map((d) => this.#closeDevice(d)));
    return open.length;
  }

  async #open(cmd: Extract<Command, { op: "open" }>): Promise<OpenResult> {
    const t0 = performance.now();
    const expect = cmd.expect === undefined ? undefined : new Map(cmd.expect);
    const devices = cmd.devices.map((spec) => this.#device(spec));
    const intervalMs = cmd.ratePerS > 0 ? 1000 / cmd.ratePerS : 0;
    const parallel = cmd.parallel ?? 0;
    // With a bound on devices opening at once the schedule slips to what the server accepts.
    let slipMs = 0;
    for (let i = 0; i < devices.length; i++) {
      const wait = t0 + slipMs + i * intervalMs - performance.now();
      if (wait >= 1) await sleep(wait);
      if (parallel > 0 && this.#connecting >= parallel) {
        const blocked = performance.now();
        while (this.#connecting >= parallel && performance.now() - blocked < cmd.timeoutMs) await sleep(1);
        slipMs += performance.now() - blocked;
      }
      this.#start(devices[i]!, cmd.recordLatency, expect);
    }
    const gaveUp = new Set<Device>();
    let lastDone = t0;
    for (;;) {
      const now = performance.now();
      let pending = 0;
      for (const d of devices) {
        if (d.failed || gaveUp.has(d)) continue;
        const done = d.liveAt !== undefined && (expect === undefined || d.syncedAt !== undefined);
        if (done) {
          lastDone = Math.max(lastDone, d.syncedAt ?? d.liveAt!);
          continue;
        }
        if (now - d.startedAt > cmd.timeoutMs || (d.ended && d.liveAt === undefined)) {
          if (d.liveAt === undefined) {
            d.failed = true;
            this.#connectFailures++;
            // A device that never connected is a connect failure, not a delivery finding;
            // a device that was live before (a reconnect wave) stays checked: its gap counts.
            if (!d.everLive) this.#checker.exclude(d.spec.deviceId);
            this.#error(`${d.spec.deviceId}: not live within ${cmd.timeoutMs} ms (state ${d.link?.state ?? "closed"})`);
            void this.#closeDevice(d);
          } else {
            gaveUp.add(d);
          }
          continue;
        }
        pending++;
      }
      if (pending === 0) break;
      await sleep(20);
    }
    const live = devices.filter((d) => d.liveAt !== undefined).length;
    const synced = expect === undefined ? 0 : devices.filter((d) => d.syncedAt !== undefined).length;
    const lacking = expect === undefined ? 0 : devices.reduce((n, d) => n + this.#checker.lacking(d.spec.deviceId, expect), 0);
    return { opened: devices.length, live, failed: devices.length - live, synced, lacking, elapsedMs: lastDone - t0 };
  }

  async #send(cmd: Extract<Command, { op: "send" }>): Promise<SendResult> {
    const ledger = new SendLedger();
    const entries = cmd.entries.map((e) => {
      const device = this.#devices.get(e.deviceId);
      if (device === undefined) throw new Error(`send: unknown device ${e.deviceId}`);
      const conversationId = e.conversationId ?? directConversationId(device.spec.userId, e.toUserId ?? "");
      return { device, entry: e, conversationId };
    });
    const result = { written: 0, acked: 0, failed: 0, firstDueMs: 0, lastAckMs: 0, behindMaxMs: 0 };
    if (entries.length === 0 || cmd.ratePerS <= 0) return { ...result, ledger: ledger.toJSON() };
    const intervalMs = 1000 / cmd.ratePerS;
    const startPerf = performance.now() + 5;
    const startWall = wallClockMs() + 5;
    const endPerf = startPerf + cmd.durationMs;
    result.firstDueMs = startWall;
    const pending = new Map<string, { readonly device: Device; readonly conversationId: string }>();
    let cursor = 0;
    const max = this.#config.sendsInFlightMax;
    outer: for (let i = 0; cmd.count === 0 || i < cmd.count; i++) {
      const dueOffset = i * intervalMs;
      if (dueOffset > cmd.durationMs) break;
      const wait = startPerf + dueOffset - performance.now();
      if (wait >= 1) await sleep(wait);
      let picked: (typeof entries)[number] | undefined;
      for (;;) {
        for (let k = 0; k < entries.length && picked === undefined; k++) {
          const candidate = entries[(cursor + k) % entries.length]!;
          if (candidate.device.isLive && candidate.device.inFlight < max) {
            picked = candidate;
            cursor = (cursor + k + 1) % entries.length;
          }
        }
        if (picked !== undefined) break;
        // Every sender is at its in-flight bound (or offline): the schedule slips, and the
        // latency measured from the due time shows it.
        if (performance.now() > endPerf) break outer;
        await sleep(1);
      }
      const { device, entry, conversationId } = picked;
      const link = device.link!;
      result.behindMaxMs = Math.max(result.behindMaxMs, performance.now() - (startPerf + dueOffset));
      const dueMs = startWall + dueOffset;
      const n = device.sent++;
      const data = encodeLoadBody({ dueMs, writtenMs: wallClockMs(), from: device.spec.deviceId, n }, this.#config.bodyBytes);
      const key = `${device.spec.deviceId}.${n}`;
      pending.set(key, { device, conversationId });
      device.inFlight++;
      result.written++;
      this.#written++;
      /** Counts the send out once: false when it was already settled (or abandoned). */
      const settle = (): boolean => {
        if (!pending.delete(key)) return false;
        device.inFlight--;
        return true;
      };
      link.send({ conversationId, ...(entry.conversationId === undefined ? { toUserId: entry.toUserId ?? "" } : {}), data, contentType: LOADGEN_CONTENT_TYPE, clientMsgId: key }).then(
        (r) => {
          if (!settle()) return;
          const now = wallClockMs();
          result.acked++;
          this.#acked++;
          result.lastAckMs = Math.max(result.lastAckMs, now);
          this.#histograms.ack.record(now - dueMs);
          this.#window.ack.record(now - dueMs);
          ledger.acked(r.conversationId, r.seq, r.messageId, r.duplicate);
        },
        (error: unknown) => {
          if (!settle()) return;
          result.failed++;
          this.#sendFailures++;
          this.#error(`${device.spec.deviceId}: send failed: ${(error as Error).message}`);
          ledger.failed(conversationId);
        },
      );
    }
    const ackDeadline = performance.now() + cmd.ackTimeoutMs;
    while (pending.size > 0 && performance.now() < ackDeadline) await sleep(10);
    // Sends still unacknowledged are failures: one may still be stored later, so the ledger
    // stops vouching for the exact content of that conversation.
    for (const [key, p] of pending) {
      p.device.inFlight--;
      result.failed++;
      this.#sendFailures++;
      this.#error(`${key}: no ack within ${cmd.ackTimeoutMs} ms after the send phase`);
      ledger.failed(p.conversationId);
    }
    pending.clear();
    return { ...result, ledger: ledger.toJSON() };
  }

  async #settle(expect: ReadonlyMap<string, ConversationExpectation>, timeoutMs: number): Promise<SettleResult> {
    const t0 = performance.now();
    for (;;) {
      let lacking = 0;
      for (const d of this.#devices.values()) if (d.link !== undefined) lacking += this.#checker.lacking(d.spec.deviceId, expect);
      const elapsedMs = performance.now() - t0;
      if (lacking === 0) return { settled: true, lacking, elapsedMs };
      if (elapsedMs > timeoutMs) return { settled: false, lacking, elapsedMs };
      await sleep(25);
    }
  }

  #takeWindow(): WindowResult {
    const encoded = Object.fromEntries(WINDOW_HISTOGRAMS.map((n) => [n, this.#window[n].encode()])) as Record<WindowHistogramName, string>;
    for (const n of WINDOW_HISTOGRAMS) this.#window[n].reset();
    return { histograms: encoded, counters: this.counters() };
  }

  #collect(): CollectResult {
    const histograms = Object.fromEntries(Object.entries(this.#histograms).map(([k, h]) => [k, h.encode()])) as Record<HistogramName, string>;
    return { histograms, counters: this.counters() };
  }
}
