import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import type { Logger } from "pino";
import { PushHomeMessageSchema, type PushAppended } from "../../gen/im/cluster/v1/cluster_pb.js";
import type { Clock } from "../core/clock.js";
import { parseConversationId } from "../core/conversation-id.js";
import type { EventSink } from "../core/events.js";
import type { ConversationRecord, StoredMessage } from "../core/model.js";
import { OfflinePushDecider, type AppendedMessage, type NotifyDecision, type OfflinePushOptions } from "../core/offline-push.js";
import { PresenceLeases, type PresenceChange } from "../core/push-presence.js";
import { rendezvousWinner } from "../route/owners.js";
import type { OfflinePushCounters } from "../observe/gateway-metrics.js";
import { GroupMembersCache, type ListMembers } from "./group-members-cache.js";
import type { PushDispatcher } from "./push-dispatcher.js";

/** Bytes to and from the other processes' pipelines (the direct link of the broker). */
export interface PushHomeLink {
  /** Best effort, in order per destination. */
  send(to: string, bytes: Uint8Array): void;
  onReceive(receive: (bytes: Uint8Array) => void): void;
}

/** What the pipeline is built from. */
export interface OfflinePushPipelineOptions {
  /** This process's id among the live processes. */
  readonly self: string;
  /** The live processes, this one included (the conversation owners' set). */
  readonly processes: () => readonly string[];
  /** Reaches the other processes; unused while this is the only one. */
  readonly link: PushHomeLink;
  /** The users with a live connection at this process (the hub's). */
  readonly localUsers: () => Iterable<string>;
  /** A page of a group's members (the store's). */
  readonly listMembers: ListMembers;
  readonly dispatcher: Pick<PushDispatcher, "notify" | "stats" | "close">;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The decider's grace and bounds. */
  readonly decider: OfflinePushOptions;
  /** Characters of a text message shown in its notification; 0 shows none. */
  readonly previewChars: number;
  /** Messages of groups larger than this notify nobody offline. */
  readonly groupMembersMax: number;
  /** How often each process renews its presence at every home (a snapshot). Default 10 s. */
  readonly refreshMs?: number;
  /** A presence report lapses this long after it was made unless renewed. Default 35 s. */
  readonly leaseMs?: number;
  /** Presence changes are gathered this long before they are sent. Default 50 ms. */
  readonly flushMs?: number;
  /** Appends waiting for their group's members to be read; beyond it they notify nobody. Default 10,000. */
  readonly waitingMax?: number;
}

/**
 * Offline push in a running deployment: the core's appends and member changes in (an
 * EventSink beside the channel publisher), the hub's presence in, notify decisions out to
 * the PushDispatcher.
 *
 * Each user has a **push home**: one of the live processes, by rendezvous hashing on the
 * user id (as conversations have owners), which runs the OfflinePushDecider for it. Every
 * process tells each user's home when the user's first local connection begins and its last
 * ends (gathered for `flushMs`), and sends every home a snapshot of its users every
 * `refreshMs`, so that presence is a lease that a dead process or a lost report cannot keep
 * alive beyond `leaseMs`. The process that appends a message (the conversation's owner) sends
 * it once to each home of its members, with those members: the two participants of a direct
 * conversation from its id, a group's from a bounded cache kept current by the member changes
 * carried out here. When the set of processes changes, homes move: every process sends its
 * snapshots at once, and forgets the leases of the processes that left.
 *
 * Best effort, like every push: a report lost between processes makes a notification late
 * (a lease) or missing, never wrong for long; the store stays the truth.
 */
export class OfflinePushPipeline implements EventSink {
  readonly #self: string;
  readonly #processes: () => readonly string[];
  readonly #link: PushHomeLink;
  readonly #localUsers: () => Iterable<string>;
  readonly #dispatcher: Pick<PushDispatcher, "notify" | "stats" | "close">;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #decider: OfflinePushDecider;
  readonly #leases: PresenceLeases;
  readonly #members: GroupMembersCache;
  readonly #previewChars: number;
  readonly #refreshMs: number;
  readonly #flushMs: number;
  readonly #waitingMax: number;
  /** Local presence changes not sent yet: userId -> online. */
  readonly #changes = new Map<string, boolean>();
  #flushTimer: NodeJS.Timeout | undefined;
  readonly #tickTimer: NodeJS.Timeout;
  #lastRefreshMs = 0;
  /** Bumped when the set of processes changes: the homes of the groups' members are grouped again. */
  #version = 0;
  #waiting = 0;
  #closed = false;
  #counters = { candidates: 0, decided: 0, dropped: 0 };

  constructor(options: OfflinePushPipelineOptions) {
    this.#self = options.self;
    this.#processes = options.processes;
    this.#link = options.link;
    this.#localUsers = options.localUsers;
    this.#dispatcher = options.dispatcher;
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#decider = new OfflinePushDecider(options.decider);
    this.#leases = new PresenceLeases(options.leaseMs ?? 35_000);
    this.#members = new GroupMembersCache({
      listMembers: options.listMembers,
      groupsMax: 10_000,
      idsMax: 1_000_000,
      ttlMs: 60_000,
      groupMembersMax: options.groupMembersMax,
    });
    this.#previewChars = options.previewChars;
    this.#refreshMs = options.refreshMs ?? 10_000;
    this.#flushMs = options.flushMs ?? 50;
    this.#waitingMax = options.waitingMax ?? 10_000;
    this.#link.onReceive((bytes) => this.#receive(bytes));
    // One timer: decisions whose grace ran out, leases that lapsed, snapshots due.
    this.#tickTimer = setInterval(() => this.#tick(), Math.min(250, Math.max(10, Math.floor(options.decider.graceMs / 4))));
    this.#tickTimer.unref();
  }

  /** The home process of `userId` among the live processes. */
  homeOf(userId: string): string {
    return homeOf(this.#processes(), userId);
  }

  counters(): OfflinePushCounters {
    const d = this.#dispatcher.stats();
    // Dropped: appends given up here, and notifications the dispatcher could not queue (full, or no provider).
    return { ...this.#counters, dropped: this.#counters.dropped + d.dropped, sent: d.sent, retries: d.retries, failed: d.failed, queued: d.queued + d.inFlight };
  }

  stats(): Record<string, number> {
    return { ...this.#counters, pending: this.#decider.pendingCount, online: this.#leases.onlineCount, cachedGroups: this.#members.groups, waiting: this.#waiting };
  }

  // --- presence at this process (the hub's first attach and last detach of a user) ---

  userOnline(userId: string): void {
    this.#change(userId, true);
  }

  userOffline(userId: string): void {
    this.#change(userId, false);
  }

  /** The set of live processes changed: homes move, and the leases of those that left end. */
  processesChanged(left: readonly string[]): void {
    this.#version++;
    const now = this.#clock.nowMs();
    for (const process of left) this.#presence(this.#leases.processGone(process), now);
    this.#snapshot();
  }

  // --- EventSink: what the core stored here ---

  messageAppended(conversation: ConversationRecord, message: StoredMessage): void {
    if (this.#closed) return;
    const appended: AppendedMessage = {
      messageId: message.messageId,
      conversationId: message.conversationId,
      seq: message.seq,
      senderId: message.senderId,
      preview: this.#preview(message),
    };
    const parsed = parseConversationId(conversation.id);
    if (parsed?.kind === "direct") {
      const other = parsed.userA === message.senderId ? parsed.userB : parsed.userA;
      this.#route(appended, new Map([[this.homeOf(other), [other]]]));
      return;
    }
    if (this.#waiting >= this.#waitingMax) {
      this.#counters.dropped++;
      return;
    }
    this.#waiting++;
    const processes = this.#processes();
    this.#members
      .partition(conversation.id, this.#clock.nowMs(), this.#version, (userId) => homeOf(processes, userId))
      .then(
        (byHome) => {
          if (byHome !== undefined) this.#route(appended, byHome);
        },
        (err: unknown) => {
          this.#counters.dropped++;
          this.#logger.warn({ err, conversationId: conversation.id }, "offline push: cannot read the group's members");
        },
      )
      .finally(() => this.#waiting--);
  }

  readMoved(): void {}

  membersChanged(conversation: ConversationRecord, added: readonly string[], removed: readonly string[]): void {
    this.#members.changed(conversation.id, added, removed);
  }

  /** Stops the timers and the dispatcher (waiting for requests in flight up to `timeoutMs`). */
  async close(timeoutMs?: number): Promise<void> {
    this.#closed = true;
    clearInterval(this.#tickTimer);
    clearTimeout(this.#flushTimer);
    await this.#dispatcher.close(timeoutMs);
  }

  /** The first `previewChars` characters of a text message, "…" when cut. */
  #preview(message: StoredMessage): string {
    const max = this.#previewChars;
    if (max === 0 || !message.contentType.startsWith("text/")) return "";
    // At most 4 bytes per character: the rest is never decoded (streaming, a character the
    // cut splits is left out rather than shown as U+FFFD).
    const cut = message.data.byteLength > max * 4;
    const chars = [...new TextDecoder().decode(message.data.subarray(0, max * 4), { stream: true })];
    return chars.length > max || cut ? `${chars.slice(0, max).join("")}…` : chars.join("");
  }

  #route(appended: AppendedMessage, byHome: ReadonlyMap<string, readonly string[]>): void {
    for (const [home, memberIds] of byHome) {
      if (home === this.#self) {
        this.#appendedHere(appended, memberIds);
        continue;
      }
      this.#send(home, { case: "appended", value: { ...appended, seq: BigInt(appended.seq), memberIds: [...memberIds] } });
    }
  }

  #appendedHere(appended: AppendedMessage, memberIds: readonly string[]): void {
    this.#counters.candidates += memberIds.length - (memberIds.includes(appended.senderId) ? 1 : 0);
    this.#notify(this.#decider.messageAppended(appended, memberIds, this.#clock.nowMs()));
  }

  #notify(decisions: readonly NotifyDecision[]): void {
    for (const decision of decisions) {
      this.#counters.decided++;
      this.#dispatcher.notify(decision);
    }
  }

  #change(userId: string, online: boolean): void {
    if (this.#closed) return;
    this.#changes.set(userId, online);
    this.#flushTimer ??= setTimeout(() => this.#flush(), this.#flushMs);
  }

  /** Sends the gathered presence changes to their homes. */
  #flush(): void {
    this.#flushTimer = undefined;
    const byHome = new Map<string, { online: string[]; offline: string[] }>();
    const processes = this.#processes();
    for (const [userId, online] of this.#changes) {
      const home = homeOf(processes, userId);
      let lists = byHome.get(home);
      if (lists === undefined) byHome.set(home, (lists = { online: [], offline: [] }));
      (online ? lists.online : lists.offline).push(userId);
    }
    this.#changes.clear();
    for (const [home, { online, offline }] of byHome) this.#report(home, online, offline, false);
  }

  /** Sends every live process this process's users whose home it is (an empty list too). */
  #snapshot(): void {
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    this.#changes.clear();
    this.#lastRefreshMs = this.#clock.nowMs();
    const processes = this.#processes();
    const byHome = new Map<string, string[]>(processes.map((p) => [p, []]));
    for (const userId of this.#localUsers()) byHome.get(homeOf(processes, userId))?.push(userId);
    for (const [home, online] of byHome) this.#report(home, online, [], true);
  }

  #report(home: string, online: string[], offline: string[], snapshot: boolean): void {
    if (home === this.#self) {
      const now = this.#clock.nowMs();
      this.#presence(this.#leases.report(this.#self, online, offline, snapshot, now), now);
    } else {
      this.#send(home, { case: "presence", value: { online, offline, snapshot } });
    }
  }

  #presence(changes: readonly PresenceChange[], nowMs: number): void {
    for (const change of changes) {
      if (change.online) this.#decider.connected(change.userId, nowMs);
      else this.#decider.disconnected(change.userId, nowMs);
    }
  }

  #send(to: string, event: MessageInitShape<typeof PushHomeMessageSchema>["event"]): void {
    this.#link.send(to, toBinary(PushHomeMessageSchema, create(PushHomeMessageSchema, { from: this.#self, event })));
  }

  #receive(bytes: Uint8Array): void {
    if (this.#closed) return;
    let message;
    try {
      message = fromBinary(PushHomeMessageSchema, bytes);
    } catch {
      return;
    }
    const now = this.#clock.nowMs();
    const { event } = message;
    if (event.case === "presence") {
      const { online, offline, snapshot } = event.value;
      this.#presence(this.#leases.report(message.from, online, offline, snapshot, now), now);
    } else if (event.case === "appended") {
      this.#appendedHere(fromWire(event.value), event.value.memberIds);
    }
  }

  #tick(): void {
    const now = this.#clock.nowMs();
    if (now - this.#lastRefreshMs >= this.#refreshMs) {
      this.#presence(this.#leases.expire(now), now);
      this.#snapshot();
    }
    this.#notify(this.#decider.tick(now));
  }
}

function fromWire(appended: PushAppended): AppendedMessage {
  return { messageId: appended.messageId, conversationId: appended.conversationId, seq: Number(appended.seq), senderId: appended.senderId, preview: appended.preview };
}

/** The live process with the highest rendezvous score for the user. */
export function homeOf(processes: readonly string[], userId: string): string {
  return processes.length === 1 ? processes[0]! : rendezvousWinner(processes, `u:${userId}`);
}
