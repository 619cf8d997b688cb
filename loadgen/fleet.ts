import type { ClientMessage } from "../client/client-message.js";
import { ImClient, type ClientState } from "../client/im-client.js";
import type { ClientCursor } from "../client/sync-engine.js";
import { directConversationId } from "../server/core/conversation-id.js";
import { mintToken } from "../server/gateway/auth.js";
import { DeliveryChecker, type CheckReport } from "./delivery-checker.js";
import { LatencyHistogram } from "./latency-histogram.js";
import { decodeLoadBody, encodeLoadBody, LOADGEN_CONTENT_TYPE, wallClockMs } from "./message-body.js";
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
} from "./protocol.js";
import { SendLedger, type ConversationExpectation } from "./send-ledger.js";
import { TransportPool, type TransportLease } from "./transport-pool.js";

interface Device {
  readonly spec: DeviceSpec;
  client: ImClient | undefined;
  lease: TransportLease | undefined;
  /** Where the device stood when it last went offline; the next open resumes from here. */
  cursors: ClientCursor[];
  /** performance.now() of the current open. */
  startedAt: number;
  liveAt: number | undefined;
  isLive: boolean;
  /** Live at least once, in any open. */
  everLive: boolean;
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

/**
 * The simulated devices of one client process and the commands the coordinator drives them
 * with (see protocol.ts). Every device is a real SDK client (ImClient) on a real HTTP/2
 * connection; what each receives goes through the DeliveryChecker.
 */
export class Fleet {
  readonly #config: FleetConfig;
  readonly #pool: TransportPool;
  readonly #devices = new Map<string, Device>();
  readonly #tokens = new Map<string, Promise<string>>();
  readonly #checker = new DeliveryChecker();
  readonly #histograms: Record<HistogramName, LatencyHistogram> = {
    connect: new LatencyHistogram(),
    rtt: new LatencyHistogram(),
    delivery: new LatencyHistogram(),
    deliveryFromWrite: new LatencyHistogram(),
    ack: new LatencyHistogram(),
    sync: new LatencyHistogram(),
  };
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
  #firstReceiptMs = 0;
  #lastReceiptMs = 0;

  constructor(config: FleetConfig, onProgress?: (sample: ProgressSample) => void) {
    this.#config = config;
    this.#pool = new TransportPool({
      baseUrl: `http://${config.target}`,
      streamsPerConnection: config.streamsPerConnection,
      sourceAddresses: config.sourceAddresses,
      addressOffset: config.workerIndex,
      onHeartbeatRtt: (ms) => {
        this.#histograms.rtt.record(ms);
        this.#intervalRtt.record(ms);
      },
    });
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
        return this.#checker.verify(new Map(command.expect)) satisfies CheckReport;
      case "collect":
        return this.#collect();
    }
  }

  /** Closes every device and connection (bounded: the SDK's close aborts its stream). */
  async shutdown(): Promise<void> {
    if (this.#progress !== undefined) clearInterval(this.#progress);
    await Promise.race([this.#closeAll(), sleep(10_000)]);
    this.#pool.closeAll();
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
      cpuMs: cpuMs(),
      errorSamples: [...this.#errorSamples],
    };
  }

  #error(message: string): void {
    this.#errors++;
    if (this.#errorSamples.length < ERROR_SAMPLES_MAX) this.#errorSamples.push(message);
  }

  #token(userId: string): Promise<string> {
    let t = this.#tokens.get(userId);
    if (t === undefined) {
      t = mintToken(this.#config.jwtSecret, userId, TOKEN_TTL_S);
      this.#tokens.set(userId, t);
    }
    return t;
  }

  #device(spec: DeviceSpec): Device {
    let d = this.#devices.get(spec.deviceId);
    if (d === undefined) {
      d = {
        spec,
        client: undefined,
        lease: undefined,
        cursors: [],
        startedAt: 0,
        liveAt: undefined,
        isLive: false,
        everLive: false,
        closing: false,
        failed: false,
        inFlight: 0,
        sent: 0,
        recordLatency: true,
        syncTarget: undefined,
        syncedAt: undefined,
      };
      this.#devices.set(spec.deviceId, d);
      this.#checker.track(spec.deviceId, spec.conversations);
    }
    return d;
  }

  #start(d: Device, recordLatency: boolean, syncTarget: ReadonlyMap<string, ConversationExpectation> | undefined): void {
    if (d.client !== undefined) throw new Error(`device ${d.spec.deviceId} is already open`);
    const heartbeatIntervalMs = this.#config.heartbeatIntervalMs;
    d.lease = this.#pool.acquire();
    d.startedAt = performance.now();
    d.liveAt = undefined;
    d.closing = false;
    d.failed = false;
    d.recordLatency = recordLatency;
    d.syncTarget = syncTarget;
    d.syncedAt = undefined;
    const client = new ImClient({
      transport: d.lease.transport,
      token: () => this.#token(d.spec.userId),
      userId: d.spec.userId,
      heartbeatIntervalMs,
      heartbeatTimeoutMs: Math.max(45_000, 3 * heartbeatIntervalMs),
      backoff: { baseMs: 250, maxMs: 5000 },
      cursors: d.cursors,
    });
    d.client = client;
    client.on("message", (m) => this.#onMessage(d, m));
    client.on("state", (s) => this.#onState(d, s));
    client.on("error", (e) => {
      if (!d.closing) this.#error(`${d.spec.deviceId}: ${e.message}`);
    });
    client.on("stuck", (s) => this.#error(`${d.spec.deviceId}: gap in ${s.conversationId} after seq ${s.lastSeq} could not be closed`));
    this.#opened++;
    client.start();
  }

  #onMessage(d: Device, m: ClientMessage): void {
    this.#checker.record(d.spec.deviceId, m);
    if (m.senderId !== d.spec.userId) {
      this.#received++;
      const now = wallClockMs();
      if (this.#firstReceiptMs === 0) this.#firstReceiptMs = now;
      this.#lastReceiptMs = now;
      if (d.recordLatency) {
        const body = decodeLoadBody(m.contentType, m.data);
        if (body !== undefined) {
          this.#histograms.delivery.record(now - body.dueMs);
          this.#histograms.deliveryFromWrite.record(now - body.writtenMs);
          this.#intervalDelivery.record(now - body.dueMs);
        }
      }
    }
    this.#checkSynced(d);
  }

  #onState(d: Device, s: ClientState): void {
    if (s === "live") {
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
    } else if (d.isLive) {
      d.isLive = false;
      this.#live--;
      if (!d.closing) this.#drops++;
    }
  }

  #checkSynced(d: Device): void {
    if (d.syncTarget === undefined || d.syncedAt !== undefined) return;
    if (this.#checker.lacking(d.spec.deviceId, d.syncTarget) > 0) return;
    d.syncedAt = performance.now();
    this.#histograms.sync.record(d.syncedAt - d.startedAt);
  }

  async #closeDevice(d: Device): Promise<void> {
    const client = d.client;
    if (client === undefined) return;
    d.closing = true;
    await client.close();
    d.cursors = client.cursors();
    d.client = undefined;
    d.lease?.release();
    d.lease = undefined;
    if (d.isLive) {
      d.isLive = false;
      this.#live--;
    }
  }

  async #closeAll(only?: ReadonlySet<string>): Promise<number> {
    const open = [...this.#devices.values()].filter((d) => d.client !== undefined && (only === undefined || only.has(d.spec.deviceId)));
    await Promise.all(open.map((d) => this.#closeDevice(d)));
    return open.length;
  }

  async #open(cmd: Extract<Command, { op: "open" }>): Promise<OpenResult> {
    const t0 = performance.now();
    const expect = cmd.expect === undefined ? undefined : new Map(cmd.expect);
    const devices = cmd.devices.map((spec) => this.#device(spec));
    const intervalMs = cmd.ratePerS > 0 ? 1000 / cmd.ratePerS : 0;
    for (let i = 0; i < devices.length; i++) {
      const wait = t0 + i * intervalMs - performance.now();
      if (wait >= 1) await sleep(wait);
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
        if (now - d.startedAt > cmd.timeoutMs) {
          if (d.liveAt === undefined) {
            d.failed = true;
            this.#connectFailures++;
            // A device that never connected is a connect failure, not a delivery finding;
            // a device that was live before (a reconnect wave) stays checked: its gap counts.
            if (!d.everLive) this.#checker.exclude(d.spec.deviceId);
            this.#error(`${d.spec.deviceId}: not live within ${cmd.timeoutMs} ms (state ${d.client?.state ?? "closed"})`);
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
      const client = device.client!;
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
      const input = entry.conversationId !== undefined ? { conversationId: entry.conversationId } : { toUserId: entry.toUserId ?? "" };
      client.send({ ...input, body: data, contentType: LOADGEN_CONTENT_TYPE, clientMsgId: key }).then(
        (r) => {
          if (!settle()) return;
          const now = wallClockMs();
          result.acked++;
          this.#acked++;
          result.lastAckMs = Math.max(result.lastAckMs, now);
          this.#histograms.ack.record(now - dueMs);
          ledger.acked(r.conversationId, Number(r.seq), r.messageId, r.duplicate);
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
      for (const d of this.#devices.values()) if (d.client !== undefined) lacking += this.#checker.lacking(d.spec.deviceId, expect);
      const elapsedMs = performance.now() - t0;
      if (lacking === 0) return { settled: true, lacking, elapsedMs };
      if (elapsedMs > timeoutMs) return { settled: false, lacking, elapsedMs };
      await sleep(25);
    }
  }

  #collect(): CollectResult {
    const histograms = Object.fromEntries(Object.entries(this.#histograms).map(([k, h]) => [k, h.encode()])) as Record<HistogramName, string>;
    return { histograms, counters: this.counters() };
  }
}
