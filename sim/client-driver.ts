import { fromBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { ConnectResponseSchema, type ConnectResponse } from "../gen/im/v1/gateway_pb.js";
import { ClientCore, type ClientRestore, type Settled } from "../client/client-core.js";
import { fromWireMessage, type ClientMessage } from "../client/client-message.js";
import { clientSettings, type ClientSettings } from "../client/client-settings.js";
import type { Answer, ClientRequest, LinkCloseCause, PendingSend, SendAck } from "../client/client-protocol.js";
import { SyncEngine } from "../client/sync-engine.js";
import { answerOf, connectRequest, disconnectKind, errorOfFrame, failureOf, syncAnswerOf } from "../client/wire-codec.js";
import { directConversationId } from "../server/core/conversation-id.js";
import { ENVELOPE_HEADER_BYTES } from "../server/route/publication.js";
import type { Adversaries } from "./adversary.js";
import type { Checkers } from "./checkers.js";
import { breakEngine, type ClientBugs } from "./client-bugs.js";
import { Device, type ClientConfig, type DeviceDriver } from "./device.js";
import type { Faults } from "./fault-plan.js";
import type { GatewayNode } from "./gateway-node.js";
import type { Link, Network, ServerFrame } from "./network.js";
import type { Scheduler } from "./scheduler.js";
import { mintToken } from "./sim-auth.js";
import type { Stats } from "./stats.js";
import type { Trace } from "./trace.js";

/** What the client driver shares with the rest of the simulation. */
export interface ClientContext {
  readonly sched: Scheduler;
  readonly network: Network;
  readonly faults: Faults;
  readonly stats: Stats;
  readonly trace: Trace;
  readonly checkers: Checkers;
  readonly nodes: readonly GatewayNode[];
  readonly config: ClientConfig & { readonly tokenTtlMs: number };
  readonly bugs: ClientBugs;
  /** Virtual time 0 as epoch milliseconds (token expiry). */
  readonly epochMs: number;
}

/** The body of every simulated send (its bytes do not matter). */
const BODY = new Uint8Array(16);

/** A push as the client decodes it from its frame. */
type Pushed =
  | { readonly kind: "message"; readonly message: ClientMessage }
  | { readonly kind: "read"; readonly conversationId: string; readonly readSeq: number }
  | { readonly kind: "membership" }
  | { readonly kind: "malformed"; readonly detail: string };

/**
 * Runs the production client core (client/client-core.ts, with its SyncEngine) on every
 * simulated device, on virtual time, through an in-process transport: the core's links are
 * the simulated network's links, its requests and answers are the network's frames, its clock
 * is the scheduler's, its randomness the run's PRNG, and its wake-up times are scheduler
 * events. The driver also keeps the simulation's books on the side (stats, gap tracking,
 * checkers) and plays the app (sends, markRead, going away and coming back).
 */
export class ClientDriver implements DeviceDriver {
  readonly devices: Device[] = [];
  /** The adversarial clients, which hold links on the same network (set once by the simulation). */
  adversaries: Adversaries | undefined;
  readonly #ctx: ClientContext;
  readonly #settings: ClientSettings<ClientMessage>;
  /** Push frames as decoded: every connection a process pushes a publication to gets the same bytes. */
  readonly #pushes = new WeakMap<Uint8Array, Pushed>();
  /** A conversation is traced: only then are trace lines built. */
  readonly #tracing: boolean;
  #openGaps = 0;

  constructor(ctx: ClientContext) {
    this.#ctx = ctx;
    this.#tracing = ctx.trace.conversationId !== undefined;
    const { config, bugs, sched, faults } = ctx;
    const broken = bugs.skipGapRepair === true || bugs.redeliverSeen === true || bugs.overflowForgets === true || bugs.delayPagedRest === true;
    this.#settings = clientSettings<ClientMessage>({
      clock: { nowMs: () => sched.nowMs },
      random: () => faults.rng.float(),
      ownMessage: (ack, send) => this.#ownMessage(ack, send),
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      heartbeatTimeoutMs: config.heartbeatTimeoutMs,
      backoff: { baseMs: config.backoffBaseMs, maxMs: config.backoffMaxMs },
      resyncIntervalMs: config.resyncIntervalMs,
      outboxMax: config.outboxMax,
      requestsInFlightMax: config.requestsInFlightMax,
      pendingMax: config.pendingMax,
      reorderWindowMs: config.reorderWindowMs,
      createEngine: broken ? (options) => breakEngine(new SyncEngine<ClientMessage>(options), bugs, config.pendingMax, { clock: options.clock!, reorderWindowMs: config.reorderWindowMs }) : undefined,
    });
  }

  /** Adds a device of a user (its app not open yet). */
  add(userId: string, k: number, slow: boolean): Device {
    const device = new Device(this.devices.length, userId, k, this);
    device.slow = slow;
    device.core = new ClientCore(this.#settings, device);
    this.devices.push(device);
    return device;
  }

  /** Gaps open right now, over every device. */
  openGaps(): number {
    return this.#openGaps;
  }

  /** The app opens (or comes back): its client starts. */
  comeBack(device: Device): void {
    device.away = false;
    device.core.start();
    this.#arm(device);
  }

  /**
   * The app closes: its client is closed, and what the app stored (cursors, outbox) becomes
   * the next client's restore, as a ClientStore would hand it back after a restart.
   */
  goAway(device: Device): void {
    device.away = true;
    const core = device.core;
    if (core.state === "idle") return;
    if (this.#tracing) this.#traceDevice(device, `${device.name} goes away`);
    const restore: ClientRestore = { cursors: core.cursors(), outbox: core.outbox() };
    core.close();
    device.core = new ClientCore(this.#settings, device, restore);
    this.#ctx.checkers.clientReplaced(device);
    device.wakeAt = Infinity;
  }

  /** The app sends a message to a conversation, or to the direct conversation with a user. */
  send(device: Device, conversationId: string, toUserId: string): void {
    const { stats, trace, sched } = this.#ctx;
    stats.appSends++;
    const clientMsgId = `${device.index}-${device.sendCount++}`;
    const outcome = device.core.send({ clientMsgId, conversationId, toUserId, contentType: "text/plain", data: BODY });
    if (outcome !== "queued") {
      stats.sendsRejected++;
      return;
    }
    if (trace.conversationId !== undefined && trace.wants(conversationId || directConversationId(device.userId, toUserId))) {
      trace.add(sched.nowMs, `${device.name} sends ${clientMsgId}${device.link === undefined ? " (offline: queued)" : ""}`, device.index);
    }
    this.#arm(device);
  }

  /** A frame from the node reached the client end of a link. */
  atClient(frame: ServerFrame): void {
    const link = frame.link;
    if (link.client.adversary) {
      this.adversaries!.atClient(frame);
      return;
    }
    const device = link.client as Device;
    if (device.link !== link) return;
    const core = device.core;
    const id = device.coreLink;
    switch (frame.kind) {
      case "push": {
        const push = this.#decodePush(frame.bytes);
        if (push.kind === "message") {
          this.#ctx.checkers.pushed(link, push.message);
          core.push(id, push.message);
          this.#ctx.checkers.took(device, push.message);
          // A slow consumer's answers queue behind its pushes: the shown bound is not theirs.
          if (!device.slow) this.#ctx.checkers.pushHandled(device, push.message);
        } else if (push.kind === "read") core.readPushed(id, push.conversationId, push.readSeq);
        else if (push.kind === "membership") core.membershipChanged(id);
        else this.#ctx.checkers.report("invariant", "", device.name, push.detail);
        break;
      }
      case "reply":
        this.#reply(device, link, frame.response);
        break;
      case "end":
        if (frame.disconnect !== undefined) core.serverDisconnect(id, disconnectKind(frame.disconnect.reason), frame.disconnect.reconnectAfterMs);
        // The stream is over (ImClient's ended()): unless the core already let go of it.
        if (device.link === link) this.#lostAtClient(link, frame.error === undefined ? "ended" : `ended: ${frame.error.rawMessage}`);
        break;
    }
    this.#arm(device);
  }

  #reply(device: Device, link: Link, response: ConnectResponse): void {
    const core = device.core;
    const id = device.coreLink;
    const requestId = Number(response.requestId);
    const request = link.answered(requestId);
    const f = response.frame;
    if (f.case === "error") {
      const error = errorOfFrame(f.value);
      if (error.code === Code.Internal) this.#ctx.checkers.report("invariant", requestConversation(request), device.name, `the server answered ${request?.kind ?? "a request"} with INTERNAL: ${error.rawMessage}`);
      else if (request !== undefined) this.#ctx.checkers.refused(device, request, error.code, error.rawMessage);
      if (this.#tracing && request !== undefined) this.#traceConversation(device, requestConversation(request), `${device.name} ${request.kind} refused: ${error.rawMessage}`);
      core.failed(id, requestId, failureOf(error));
      return;
    }
    const answer: Answer<ClientMessage> | undefined = f.case === "sync" ? { kind: "sync", answer: syncAnswerOf(f.value) } : answerOf(f);
    if (answer === undefined) return;
    const checkers = this.#ctx.checkers;
    if (request !== undefined) checkers.answered(device, request, answer);
    if (answer.kind === "fetch" && this.#tracing && request?.kind === "fetch") {
      this.#traceConversation(device, request.conversationId, `${device.name} fetch answer: ${answer.messages.length} messages${answer.hasMore ? ", more" : ""}`);
    }
    const handed: Answer<ClientMessage> = answer.kind === "fetch" && this.#ctx.bugs.dropFetchAnswers === true ? { kind: "fetch", messages: [], hasMore: false } : answer;
    if (request !== undefined) checkers.answering(device, request, handed);
    core.answered(id, requestId, handed);
    if (request !== undefined) checkers.answerHandled(device, handed, { current: device.link === link && device.core === core, inFlight: (link.requests?.length ?? 0) / 2 });
    if (answer.kind === "fetch" && request?.kind === "fetch" && device.gaps !== undefined) this.#gapProgress(device, request.conversationId);
  }

  resetAtClient(link: Link): void {
    if (link.client.adversary) return this.adversaries!.lost(link);
    if ((link.client as Device).link === link) this.#lostAtClient(link, "reset");
  }

  refusedAtClient(link: Link): void {
    if (link.client.adversary) return this.adversaries!.lost(link);
    if ((link.client as Device).link === link) this.#lostAtClient(link, "refused");
  }

  // DeviceDriver: what the devices' cores ask for.

  fetchToken(device: Device, attempt: number): void {
    const { config, faults, sched, epochMs } = this.#ctx;
    // Tokens expire while faults are on; after the heal they last (the run must be able to settle).
    const expiresAtMs = config.tokenTtlMs > 0 && faults.active ? epochMs + sched.nowMs + config.tokenTtlMs : 0;
    device.core.tokenReady(attempt, mintToken(device.userId, expiresAtMs));
  }

  openLink(device: Device, link: number, _attempt: number, token: string): void {
    const { nodes, network, sched, stats, faults } = this.#ctx;
    const node = nodes[faults.rng.int(nodes.length)]!;
    const l = network.open(device, node);
    device.link = l;
    device.coreLink = link;
    stats.connects++;
    if (this.#tracing) this.#traceDevice(device, `${device.name} connects to node ${node.index} (${l.name})`);
    const dropMs = faults.dropAfterMs();
    if (dropMs !== undefined) sched.schedule(dropMs, this.#dropTimer, l);
    network.toNode({ kind: "open", link: l, token });
    // A stream carries requests at once (its first requests wait at the node until it is registered).
    device.core.linkReady(link);
  }

  closeLink(device: Device, link: number, cause: LinkCloseCause): void {
    if (device.coreLink !== link || device.link === undefined) return;
    const { network, stats } = this.#ctx;
    const l = device.link;
    device.link = undefined;
    device.coreLink = 0;
    network.close(l);
    this.#gapsInterrupted(device);
    this.#ctx.checkers.linkEnded(l);
    if (cause === "heartbeat-timeout") stats.clientTimeouts++;
    else if (cause === "request-failed") stats.failedRequests++;
    if (this.#tracing) this.#traceDevice(device, `${device.name} closes ${l.name}: ${cause}`);
  }

  write(device: Device, requestId: number, request: ClientRequest): void {
    const link = device.link;
    if (link === undefined) return;
    const { network, stats, bugs } = this.#ctx;
    let wire = request;
    switch (request.kind) {
      case "send":
        if (request.attempt > 1) stats.resends++;
        if (bugs.freshIdOnRetry === true && request.attempt > 1) wire = { ...request, send: { ...request.send, clientMsgId: `${request.send.clientMsgId}~${request.attempt}` } };
        break;
      case "sync":
        stats.syncs++;
        if (request.resync) stats.resyncs++;
        break;
      case "fetch":
        stats.fetches++;
        this.#gapFound(device, request.conversationId, request.upToSeq);
        if (this.#tracing) this.#traceConversation(device, request.conversationId, `${device.name} fetches (${request.afterSeq}, ${request.upToSeq || "newest"}]`);
        break;
      case "markRead":
        stats.markReads++;
        break;
      case "ping":
        stats.pings++;
        break;
    }
    if (wire.kind !== "ping") link.wrote(requestId, wire);
    this.#ctx.checkers.wrote(device, request);
    const frame = connectRequest(requestId, wire);
    if (bugs.fetchOneAtATime === true && frame.frame.case === "fetchRange") frame.frame.value.limit = 1;
    network.toNode({ kind: "request", link, request: frame });
  }

  deliver(device: Device, conversationId: string, messages: readonly ClientMessage[]): void {
    const { checkers, stats, faults, config } = this.#ctx;
    for (const m of messages) checkers.delivered(device, m);
    stats.deliveries += messages.length;
    if (this.#tracing) this.#traceConversation(device, conversationId, `${device.name} delivers seq ${messages.map((m) => m.seq).join(",")}`);
    if (device.gaps !== undefined) this.#gapProgress(device, conversationId);
    const core = device.core;
    if (core.state === "live" && faults.rng.chance(config.markReadProbability)) core.markRead(0, conversationId, core.lastSeq(conversationId));
  }

  readMoved(device: Device, conversationId: string, readSeq: number): void {
    this.#ctx.checkers.readMoved(device, conversationId, readSeq);
  }

  stuck(device: Device, conversationId: string, lastSeq: number): void {
    this.#ctx.stats.stuck++;
    this.#ctx.checkers.stuck(device, conversationId, lastSeq);
    if (this.#tracing) this.#traceConversation(device, conversationId, `${device.name} stuck at seq ${lastSeq}`);
  }

  sendSettled(device: Device, send: PendingSend, outcome: Settled<SendAck>): void {
    const { stats, checkers } = this.#ctx;
    if (outcome.ok) {
      stats.acked++;
      const ack = outcome.value;
      if (this.#tracing) this.#traceConversation(device, ack.conversationId, `${device.name} ack ${send.clientMsgId}: seq ${ack.seq} (prev ${ack.prevSeq})`);
      checkers.acknowledged(device, ack);
    } else if (outcome.failure.reason !== "closed") {
      // Closed: the app went away; the send resumes with its next client.
      stats.sendsFailed++;
    }
  }

  /** Open gaps, for the liveness report. */
  gapsOpen(): Array<{ device: Device; conversationId: string; sinceMs: number }> {
    const out: Array<{ device: Device; conversationId: string; sinceMs: number }> = [];
    if (this.#openGaps === 0) return out;
    for (const device of this.devices) for (const [conversationId, gap] of device.gaps ?? []) out.push({ device, conversationId, sinceMs: gap.sinceMs });
    return out;
  }

  #lostAtClient(link: Link, cause: string): void {
    const device = link.client as Device;
    const id = device.coreLink;
    this.#gapsInterrupted(device);
    this.#ctx.checkers.linkEnded(link);
    device.link = undefined;
    device.coreLink = 0;
    this.#ctx.network.close(link);
    if (this.#tracing) this.#traceDevice(device, `${device.name} lost ${link.name}: ${cause}`);
    device.core.linkLost(id);
    this.#arm(device);
  }

  /** The client's own message from the acknowledgement of its send (ImClient's ownMessage). */
  #ownMessage(ack: SendAck, send: PendingSend): ClientMessage {
    // The simulated clientMsgIds are `<device index>-<n>`: the sender is that device's user.
    const sender = this.devices[Number(send.clientMsgId.slice(0, send.clientMsgId.indexOf("-")))]?.userId ?? "";
    return { conversationId: ack.conversationId, seq: ack.seq, prevSeq: ack.prevSeq, messageId: ack.messageId, senderId: sender, sentAtMs: ack.sentAtMs, contentType: send.contentType, data: send.data, clientMsgId: send.clientMsgId };
  }

  /** Decodes a push frame as a client does (once per frame bytes: they are the same for every device of a process). */
  #decodePush(bytes: Uint8Array): Pushed {
    let pushed = this.#pushes.get(bytes);
    if (pushed !== undefined) return pushed;
    const length = bytes.byteLength >= ENVELOPE_HEADER_BYTES ? new DataView(bytes.buffer, bytes.byteOffset + 1, 4).getUint32(0) : -1;
    if (bytes[0] !== 0 || length !== bytes.byteLength - ENVELOPE_HEADER_BYTES) {
      pushed = { kind: "malformed", detail: `a push frame's envelope says ${length} bytes for ${bytes.byteLength - ENVELOPE_HEADER_BYTES}` };
    } else {
      try {
        const frame = fromBinary(ConnectResponseSchema, bytes.subarray(ENVELOPE_HEADER_BYTES)).frame;
        if (frame.case === "message") pushed = { kind: "message", message: fromWireMessage(frame.value) };
        else if (frame.case === "read") pushed = { kind: "read", conversationId: frame.value.conversationId, readSeq: Number(frame.value.readSeq) };
        else if (frame.case === "membership") pushed = { kind: "membership" };
        else pushed = { kind: "malformed", detail: `a push frame carries ${String(frame.case)}` };
      } catch (error) {
        pushed = { kind: "malformed", detail: `a push frame does not decode: ${(error as Error).message}` };
      }
    }
    this.#pushes.set(bytes, pushed);
    return pushed;
  }

  /** Schedules the core's next wake-up, unless an earlier one is already scheduled. */
  #arm(device: Device): void {
    const at = device.core.nextWakeMs();
    if (at === undefined || at >= device.wakeAt) return;
    device.wakeAt = at;
    this.#ctx.sched.at(at, this.#wake, device);
  }

  readonly #wake = (device: Device): void => {
    const now = this.#ctx.sched.nowMs;
    // A wake-up that was overtaken by an earlier one (or by the device going away) is stale.
    if (device.wakeAt !== now) return;
    device.wakeAt = Infinity;
    device.core.tick();
    const at = device.core.nextWakeMs();
    if (at !== undefined && at <= now) {
      // The core keeps its deadlines moving; this only guards the scheduler against a stall.
      device.wakeAt = now + 1;
      this.#ctx.sched.at(now + 1, this.#wake, device);
      return;
    }
    this.#arm(device);
  };

  #gapFound(device: Device, conversationId: string, upToSeq: number): void {
    const target = upToSeq !== 0 ? upToSeq : this.#ctx.checkers.head(conversationId);
    const lastSeq = device.core.lastSeq(conversationId);
    // "Anything newer?" with nothing newer is not a gap.
    if (target <= lastSeq) return;
    device.gaps ??= new Map();
    const gap = device.gaps.get(conversationId);
    if (gap !== undefined) {
      gap.target = Math.max(gap.target, target);
      gap.fetches++;
      return;
    }
    device.gaps.set(conversationId, { sinceMs: this.#ctx.sched.nowMs, fromSeq: lastSeq, target, fetches: 1, linksLost: 0 });
    this.#openGaps++;
    this.#ctx.stats.gapsFound++;
  }

  #gapProgress(device: Device, conversationId: string): void {
    const gap = device.gaps!.get(conversationId);
    if (gap === undefined || device.core.lastSeq(conversationId) < gap.target) return;
    device.gaps!.delete(conversationId);
    if (device.gaps!.size === 0) device.gaps = undefined;
    this.#openGaps--;
    const { stats, checkers, sched } = this.#ctx;
    stats.gapsRepaired++;
    stats.longestRepairMs = Math.max(stats.longestRepairMs, sched.nowMs - gap.sinceMs);
    const missing = checkers.indexOf(conversationId, gap.target) - checkers.indexOf(conversationId, gap.fromSeq);
    checkers.gapRepaired(device, conversationId, missing, gap.fetches, gap.linksLost);
  }

  /** A device's link is gone: its open gaps are repaired on the next one. */
  #gapsInterrupted(device: Device): void {
    if (device.gaps !== undefined) for (const gap of device.gaps.values()) gap.linksLost++;
  }

  #traceConversation(device: Device, conversationId: string, text: string): void {
    const trace = this.#ctx.trace;
    if (trace.wants(conversationId)) trace.add(this.#ctx.sched.nowMs, text, device.index);
  }

  #traceDevice(device: Device, text: string): void {
    const trace = this.#ctx.trace;
    if (trace.wantsDevice(device.index)) trace.add(this.#ctx.sched.nowMs, text);
  }

  readonly #dropTimer = (link: Link): void => {
    if ((link.client as Device).link === link && this.#ctx.faults.active) this.#ctx.network.drop(link, false);
  };
}

/** The conversation a request names ("" for none), for reports. */
function requestConversation(request: ClientRequest | undefined): string {
  if (request === undefined) return "";
  if (request.kind === "send") return request.send.conversationId;
  if (request.kind === "sync" || request.kind === "ping") return "";
  return request.conversationId;
}
