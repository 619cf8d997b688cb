import { Code } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { ConnectRequestSchema, type ConnectRequest, type ConnectResponse } from "../gen/im/v1/gateway_pb.js";
import { ErrorDetailSchema, ErrorReason } from "../gen/im/v1/message_pb.js";
import { directConversationId } from "../server/core/conversation-id.js";
import type { Checkers } from "./checkers.js";
import type { Faults } from "./fault-plan.js";
import type { GatewayNode } from "./gateway-node.js";
import type { Link, LinkClient, Network, ServerFrame } from "./network.js";
import type { Scheduler } from "./scheduler.js";
import { mintToken } from "./sim-auth.js";
import type { Stats } from "./stats.js";

/** What the adversaries need. */
export interface AdversaryContext {
  readonly sched: Scheduler;
  readonly network: Network;
  readonly faults: Faults;
  readonly stats: Stats;
  readonly checkers: Checkers;
  readonly nodes: readonly GatewayNode[];
  readonly config: {
    /** Adversarial clients (users x0, x1, ... that belong to no conversation). */
    readonly adversaries: number;
    /** Each sends one probe this often during the traffic window. */
    readonly adversaryEveryMs: number;
    readonly rampMs: number;
    readonly trafficEndMs: number;
    readonly users: number;
    readonly groups: number;
  };
}

/** What a probe must be answered with: a refusal with this code and reason, or a sync that shows nothing. */
type Expect = { readonly code: Code; readonly reason: ErrorReason } | "empty-sync";

interface Probe {
  readonly what: string;
  readonly conversationId: string;
  readonly expect: Expect;
  readonly sentAtMs: number;
}

/** Probes without an answer for this long mean the link is dead (a half-open connection): reconnect. */
const PROBE_TIMEOUT_MS = 10_000;

const NOT_MEMBER: Expect = { code: Code.PermissionDenied, reason: ErrorReason.NOT_MEMBER };
const NOT_FOUND: Expect = { code: Code.NotFound, reason: ErrorReason.CONVERSATION_NOT_FOUND };
const INVALID: Expect = { code: Code.InvalidArgument, reason: ErrorReason.INVALID_ARGUMENT };

/** One adversarial client: a user of its own on a raw long connection, speaking the wire protocol directly. */
class Adversary implements LinkClient {
  readonly index: number;
  readonly name: string;
  readonly userId: string;
  readonly slow = false;
  readonly adversary = true;
  link: Link | undefined;
  nextRequestId = 0;
  readonly pending = new Map<number, Probe>();

  constructor(k: number) {
    this.index = -1 - k;
    this.userId = `x${k}`;
    this.name = `${this.userId}/adversary`;
  }
}

/**
 * Adversarial clients: users that belong to no conversation and, during the traffic window,
 * try to read (fetch, sync with a cursor), write (send) and mark read in conversations they
 * are not members of: existing groups, direct conversations of two other users, groups that
 * do not exist, and requests that break the API's rules. The access checker expects every
 * attempt to be refused with the documented code and reason (NOT_MEMBER as PERMISSION_DENIED,
 * CONVERSATION_NOT_FOUND as NOT_FOUND, INVALID_ARGUMENT; UNAVAILABLE is a retry, not an
 * answer), a sync to show nothing, and no push ever to reach them.
 */
export class Adversaries {
  readonly #ctx: AdversaryContext;
  readonly #list: Adversary[] = [];

  constructor(ctx: AdversaryContext) {
    this.#ctx = ctx;
    for (let k = 0; k < ctx.config.adversaries; k++) this.#list.push(new Adversary(k));
  }

  /** Schedules the probes of every adversary over the traffic window. */
  start(): void {
    const { sched, config } = this.#ctx;
    if (config.adversaryEveryMs <= 0) return;
    for (const adversary of this.#list) sched.at(config.rampMs + adversary.index * -7, this.#step, adversary);
  }

  holds(link: Link): boolean {
    return link.client.adversary;
  }

  atClient(frame: ServerFrame): void {
    const adversary = frame.link.client as Adversary;
    if (adversary.link !== frame.link) return;
    const { checkers } = this.#ctx;
    if (frame.kind === "push") {
      checkers.report("access", "", adversary.name, `${adversary.userId}, a member of nothing, was pushed ${frame.size} bytes`);
    } else if (frame.kind === "end") {
      this.lost(frame.link);
    } else {
      this.#answered(adversary, frame.response);
    }
  }

  /** The adversary's link died: it reconnects at its next step. */
  lost(link: Link): void {
    const adversary = link.client as Adversary;
    if (adversary.link !== link) return;
    adversary.link = undefined;
    adversary.pending.clear();
    this.#ctx.network.close(link);
  }

  readonly #step = (adversary: Adversary): void => {
    const { sched, config, network, nodes, faults } = this.#ctx;
    if (sched.nowMs >= config.trafficEndMs) {
      if (adversary.link !== undefined) this.lost(adversary.link);
      return;
    }
    const oldest = adversary.pending.values().next().value;
    if (adversary.link !== undefined && oldest !== undefined && sched.nowMs - oldest.sentAtMs > PROBE_TIMEOUT_MS) this.lost(adversary.link);
    if (adversary.link === undefined) {
      const link = network.open(adversary, nodes[faults.rng.int(nodes.length)]!);
      adversary.link = link;
      adversary.nextRequestId = 0;
      network.toNode({ kind: "open", link, token: mintToken(adversary.userId, 0) });
    }
    this.#probe(adversary, adversary.link);
    sched.schedule(config.adversaryEveryMs, this.#step, adversary);
  };

  #probe(adversary: Adversary, link: Link): void {
    const { faults, config, network, stats, sched } = this.#ctx;
    const rng = faults.rng;
    let target: string;
    let expect: Expect;
    const pick = rng.int(3);
    if (pick === 0 && config.groups > 0) {
      target = `g:g${rng.int(config.groups)}`;
      expect = NOT_MEMBER;
    } else if (pick === 2) {
      target = `g:missing${rng.int(1000)}`;
      expect = NOT_FOUND;
    } else {
      const a = rng.int(config.users);
      const b = (a + 1 + rng.int(config.users - 1)) % config.users;
      target = directConversationId(`u${a}`, `u${b}`);
      expect = NOT_MEMBER;
    }
    const requestId = ++adversary.nextRequestId;
    let frame: ConnectRequest["frame"];
    let what: string;
    switch (rng.int(5)) {
      case 0:
        what = "fetch";
        frame = { case: "fetchRange", value: { $typeName: "im.v1.FetchRangeRequest", conversationId: target, afterSeq: 0n, upToSeq: 0n, limit: 0 } };
        break;
      case 1:
        what = "send";
        frame = { case: "send", value: { $typeName: "im.v1.SendRequest", target: { case: "conversationId", value: target }, clientMsgId: `${adversary.userId}-${requestId}`, body: { $typeName: "im.v1.MessageBody", contentType: "text/plain", data: new Uint8Array(4) } } };
        break;
      case 2:
        what = "markRead";
        frame = { case: "markRead", value: { $typeName: "im.v1.MarkReadRequest", conversationId: target, readSeq: 1n } };
        break;
      case 3:
        what = "sync";
        expect = "empty-sync";
        frame = { case: "sync", value: { $typeName: "im.v1.SyncRequest", cursors: [{ $typeName: "im.v1.SyncCursor", conversationId: target, lastSeq: 0n, readSeq: 0n }], maxMessagesPerConversation: 0, maxSessions: 0 } };
        break;
      default:
        what = "fetch without a conversation id";
        expect = INVALID;
        target = "";
        frame = { case: "fetchRange", value: { $typeName: "im.v1.FetchRangeRequest", conversationId: target, afterSeq: 0n, upToSeq: 0n, limit: 0 } };
        break;
    }
    stats.adversaryProbes++;
    adversary.pending.set(requestId, { what, conversationId: target, expect, sentAtMs: sched.nowMs });
    network.toNode({ kind: "request", link, request: create(ConnectRequestSchema, { requestId: BigInt(requestId), frame }) });
  }

  #answered(adversary: Adversary, response: ConnectResponse): void {
    const requestId = Number(response.requestId);
    const probe = adversary.pending.get(requestId);
    if (probe === undefined) return;
    adversary.pending.delete(requestId);
    const { checkers, stats } = this.#ctx;
    const f = response.frame;
    const id = probe.conversationId;
    const who = `${adversary.userId}'s ${probe.what} of ${id}`;
    if (f.case === "error") {
      if (f.value.code === Code.Unavailable) return;
      const reason = f.value.detail?.reason ?? ErrorReason.UNSPECIFIED;
      if (probe.expect === "empty-sync" || f.value.code !== probe.expect.code || reason !== probe.expect.reason) {
        const wanted = probe.expect === "empty-sync" ? "an empty sync" : `${Code[probe.expect.code]} ${ErrorReason[probe.expect.reason]}`;
        checkers.report("access", id, adversary.name, `${who} was refused with ${Code[f.value.code] ?? f.value.code} ${ErrorReason[reason] ?? reason} ("${f.value.message}"), not ${wanted}`);
        return;
      }
      if (!(f.value.detail !== undefined && f.value.detail.$typeName === create(ErrorDetailSchema).$typeName)) checkers.report("access", id, adversary.name, `${who} was refused without an ErrorDetail`);
      stats.adversaryRefused++;
      return;
    }
    if (probe.expect === "empty-sync" && f.case === "sync") {
      const sessions = f.value.sessions.map((s) => s.session?.conversationId ?? "");
      if (sessions.length > 0) checkers.report("access", id, adversary.name, `${who} answered sessions ${sessions.join(", ")}`);
      else if (!f.value.removedConversationIds.includes(id)) checkers.report("access", id, adversary.name, `${who} did not report ${id} as not the user's`);
      else stats.adversaryRefused++;
      return;
    }
    const got = f.case === "fetchRange" ? `${f.value.messages.length} messages` : f.case === "send" ? `seq ${f.value.seq}` : f.case === "markRead" ? `read seq ${f.value.readSeq}` : String(f.case);
    checkers.report("access", id, adversary.name, `${who} was answered (${got}) instead of refused`);
  }
}
