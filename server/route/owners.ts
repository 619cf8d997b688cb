import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { OwnerCallSchema, OwnerReplySchema, type OwnerCall, type OwnerReply } from "../../gen/im/cluster/v1/cluster_pb.js";
import { ErrorDetailSchema, ErrorReason } from "../../gen/im/v1/message_pb.js";

/**
 * The processes that own conversations, as this process knows them: every live worker of the
 * node (from the primary) or of the deployment (from Redis). Each conversation's owner is
 * chosen by rendezvous hashing over them, so it moves only when that set changes, and only
 * for the conversations the joining or leaving process wins or held.
 */
export class OwnerSet {
  readonly self: string;
  #members: readonly string[];
  readonly #cache = new Map<string, string>();
  /** Cached owners beyond this are forgotten all at once (a bounded memo, not an LRU). */
  readonly #cacheMax: number;

  constructor(self: string, members: readonly string[] = [self], cacheMax = 100_000) {
    this.self = self;
    this.#members = normalize(self, members);
    this.#cacheMax = cacheMax;
  }

  /** The live owner processes (this one included), sorted. */
  get members(): readonly string[] {
    return this.#members;
  }

  /** Replaces the live set; returns true when it changed. This process always counts as live. */
  update(members: readonly string[]): boolean {
    const next = normalize(this.self, members);
    if (next.length === this.#members.length && next.every((m, i) => m === this.#members[i])) return false;
    this.#members = next;
    this.#cache.clear();
    return true;
  }

  /** The owner of `conversationId`: the member with the highest rendezvous score. */
  ownerOf(conversationId: string): string {
    if (this.#members.length === 1) return this.#members[0]!;
    let owner = this.#cache.get(conversationId);
    if (owner !== undefined) return owner;
    owner = rendezvousWinner(this.#members, conversationId);
    if (this.#cache.size >= this.#cacheMax) this.#cache.clear();
    this.#cache.set(conversationId, owner);
    return owner;
  }
}

/** The member of `members` (not empty) with the highest rendezvous score for `key`. */
export function rendezvousWinner(members: readonly string[], key: string): string {
  let winner = members[0]!;
  let best = -1;
  for (const member of members) {
    const score = rendezvousScore(member, key);
    if (score > best) {
      best = score;
      winner = member;
    }
  }
  return winner;
}

function normalize(self: string, members: readonly string[]): string[] {
  return [...new Set([self, ...members])].sort();
}

/**
 * The rendezvous (highest random weight) score of `member` for `key`: 32-bit FNV-1a of both,
 * then a murmur3 finalizer for avalanche, so owners spread evenly and independently per key.
 */
export function rendezvousScore(member: string, key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < member.length; i++) h = Math.imul(h ^ member.charCodeAt(i), 0x01000193);
  h = Math.imul(h ^ 0xff, 0x01000193);
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Moves owner calls and replies between processes (the IPC relay, or Redis). */
export interface OwnerTransport {
  /** False while calls cannot leave this process (Redis down): owners are not reachable. */
  available(): boolean;
  /** Sends encoded bytes to process `to`; best effort (a lost call times out). */
  send(to: string, kind: "call" | "reply", bytes: Uint8Array): void;
  /** Sets where calls and replies addressed to this process go. */
  onReceive(receive: (kind: "call" | "reply", bytes: Uint8Array) => void): void;
}

/** Options of OwnerCalls. */
export interface OwnerCallsOptions {
  /** How long a call waits for its owner's answer before UNAVAILABLE. Default 5000. */
  readonly timeoutMs?: number;
  /** Calls waiting for answers; beyond it new calls fail with UNAVAILABLE at once. Default 10 000. */
  readonly pendingMax?: number;
  /** After a call to an owner timed out, it counts as unreachable for this long. Default 5000. */
  readonly suspectMs?: number;
  /** Carries traces across the hop (server/observe/tracing.ts); absent: calls carry none. */
  readonly tracing?: OwnerCallTracing;
}

/** Carries a trace across the owner hop. */
export interface OwnerCallTracing {
  /** Runs a call to `owner` in a span of its own; `run` gets the traceparent to send with it. */
  call<T>(owner: string, run: (traceparent: string) => Promise<T>): Promise<T>;
  /** Runs the owner's side of a call in a span under the caller's `traceparent`. */
  serve<T>(traceparent: string, run: () => Promise<T>): Promise<T>;
}

type Request = OwnerCall["request"];

/**
 * Requests carried out by a conversation's owner process on behalf of the process that holds
 * the caller's connection: one hop there, one back. A call that gets no answer in time
 * rejects with UNAVAILABLE: the owner may or may not have done it, and every such request is
 * idempotent (a send keeps its client_msg_id), so the caller may carry it out itself; the
 * owner then counts as unreachable for a while. Deadlines are data, advanced by `tick(now)`.
 */
export class OwnerCalls {
  readonly #self: string;
  readonly #transport: OwnerTransport;
  readonly #timeoutMs: number;
  readonly #pendingMax: number;
  readonly #suspectMs: number;
  readonly #tracing: OwnerCallTracing | undefined;
  /** Owners whose last call timed out, until when they count as unreachable. */
  readonly #suspects = new Map<string, number>();
  readonly #pending = new Map<bigint, { owner: string; resolve(reply: OwnerReply): void; reject(error: ConnectError): void; deadlineMs: number }>();
  #serve: (call: OwnerCall) => Promise<OwnerReply> = async (call) => errorReply(call.callId, new ConnectError("no owner here", Code.Unavailable));
  #nextId = 0n;
  #nowMs = 0;
  #forwarded = 0;
  #served = 0;
  #timedOut = 0;

  constructor(self: string, transport: OwnerTransport, options: OwnerCallsOptions = {}) {
    this.#self = self;
    this.#transport = transport;
    this.#timeoutMs = options.timeoutMs ?? 5000;
    this.#pendingMax = options.pendingMax ?? 10_000;
    this.#suspectMs = options.suspectMs ?? 5000;
    this.#tracing = options.tracing;
    transport.onReceive((kind, bytes) => (kind === "call" ? this.#onCall(bytes) : this.#onReply(bytes)));
  }

  /** Sets what carries out calls addressed to this process. */
  serve(handler: (call: OwnerCall) => Promise<OwnerReply>): void {
    this.#serve = handler;
  }

  /** Whether a call to `owner` can be made now (the transport is up and the owner answered lately). */
  reachable(owner: string): boolean {
    if (!this.#transport.available()) return false;
    const until = this.#suspects.get(owner);
    if (until === undefined) return true;
    if (this.#nowMs < until) return false;
    this.#suspects.delete(owner);
    return true;
  }

  /** Has process `owner` carry out `request` for `userId`; resolves with its reply. */
  call(owner: string, userId: string, originConnectionId: string, request: Request): Promise<OwnerReply> {
    const tracing = this.#tracing;
    if (tracing !== undefined) return tracing.call(owner, (traceparent) => this.#call(owner, userId, originConnectionId, request, traceparent));
    return this.#call(owner, userId, originConnectionId, request, "");
  }

  #call(owner: string, userId: string, originConnectionId: string, request: Request, traceparent: string): Promise<OwnerReply> {
    if (this.#pending.size >= this.#pendingMax) {
      return Promise.reject(unavailable(`more than ${this.#pendingMax} requests waiting for their conversation's owner`));
    }
    const callId = ++this.#nextId;
    const call = create(OwnerCallSchema, { callId, replyTo: this.#self, userId, originConnectionId, request, traceparent });
    this.#forwarded++;
    return new Promise<OwnerReply>((resolve, reject) => {
      this.#pending.set(callId, { owner, resolve, reject, deadlineMs: this.#nowMs + this.#timeoutMs });
      this.#transport.send(owner, "call", toBinary(OwnerCallSchema, call));
    });
  }

  /** Fails the calls whose owner did not answer in time. */
  tick(nowMs: number): void {
    this.#nowMs = nowMs;
    for (const [id, pending] of this.#pending) {
      if (nowMs < pending.deadlineMs) continue;
      this.#pending.delete(id);
      this.#timedOut++;
      this.#suspects.set(pending.owner, nowMs + this.#suspectMs);
      pending.reject(unavailable("the conversation's owner did not answer in time; retry (a send with the same client_msg_id)"));
    }
  }

  /** Fails every call waiting for process `owner` at once (it is gone). */
  abandon(owner: string, reason: string): void {
    for (const [id, pending] of this.#pending) {
      if (pending.owner !== owner) continue;
      this.#pending.delete(id);
      pending.reject(unavailable(reason));
    }
  }

  stats(): { forwarded: number; served: number; pending: number; timedOut: number } {
    return { forwarded: this.#forwarded, served: this.#served, pending: this.#pending.size, timedOut: this.#timedOut };
  }

  #onCall(bytes: Uint8Array): void {
    let call: OwnerCall;
    try {
      call = fromBinary(OwnerCallSchema, bytes);
    } catch {
      return;
    }
    this.#served++;
    const tracing = this.#tracing;
    const serving = tracing === undefined || call.traceparent === "" ? this.#serve(call) : tracing.serve(call.traceparent, () => this.#serve(call));
    serving.then(
      (reply) => this.#transport.send(call.replyTo, "reply", toBinary(OwnerReplySchema, reply)),
      (error: unknown) => this.#transport.send(call.replyTo, "reply", toBinary(OwnerReplySchema, errorReply(call.callId, ConnectError.from(error)))),
    );
  }

  #onReply(bytes: Uint8Array): void {
    // Any answer proves the link; the owner that sent it is reachable again (found below).
    let reply: OwnerReply;
    try {
      reply = fromBinary(OwnerReplySchema, bytes);
    } catch {
      return;
    }
    const pending = this.#pending.get(reply.callId);
    if (pending === undefined) return;
    this.#pending.delete(reply.callId);
    this.#suspects.delete(pending.owner);
    pending.resolve(reply);
  }
}

/** An OwnerReply carrying `error` (code, message, ErrorDetail). */
export function errorReply(callId: bigint, error: ConnectError): OwnerReply {
  const detail = error.findDetails(ErrorDetailSchema)[0];
  return create(OwnerReplySchema, { callId, result: { case: "error", value: { code: error.code, message: error.rawMessage, detail } } });
}

/** The ConnectError an error reply stands for. */
export function replyError(reply: OwnerReply & { result: { case: "error" } }): ConnectError {
  const { code, message, detail } = reply.result.value;
  return new ConnectError(message, code as Code, undefined, detail === undefined ? undefined : [{ desc: ErrorDetailSchema, value: detail }]);
}

function unavailable(message: string): ConnectError {
  return new ConnectError(message, Code.Unavailable, undefined, [
    { desc: ErrorDetailSchema, value: create(ErrorDetailSchema, { reason: ErrorReason.UNAVAILABLE, retryable: true, retryAfterMs: 200 }) },
  ]);
}
