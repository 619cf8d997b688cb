import { parseConversationId } from "../server/core/conversation-id.js";
import type { Rng } from "./fault-plan.js";
import type { StoreBackend } from "./faulty-store.js";
import type { SimConfig } from "./scenarios.js";
import type { Scheduler } from "./scheduler.js";
import type { Device } from "./device.js";
import type { ClientDriver } from "./client-driver.js";

/** What the workload drives. */
export interface WorkloadContext {
  readonly config: SimConfig;
  readonly sched: Scheduler;
  readonly rng: Rng;
  readonly driver: ClientDriver;
  readonly backend: StoreBackend;
  readonly epochMs: number;
}

interface Group {
  readonly id: string;
  readonly senders: readonly number[];
  /** Its members are users start, start + 1, ... (mod users), `size` of them. */
  readonly start: number;
  readonly size: number;
}

/**
 * The population and its behaviour: users and their devices, groups (created in the store
 * before the run), who is online when (ramp, offline users and their return storm, presence
 * churn), and the traffic: direct messages between random pairs, and bursts of group messages
 * from a group's concurrent senders. Sends are generated lazily by two pump events, so the
 * event queue holds one pending send per pump, not the whole workload.
 */
export class Workload {
  readonly #ctx: WorkloadContext;
  /** Per user: index of its first device and number of devices. */
  readonly #firstDevice: Int32Array;
  readonly #deviceCount: Uint8Array;
  readonly #groups: Group[] = [];
  #directLeft: number;
  #burstsLeft: number;

  constructor(ctx: WorkloadContext) {
    this.#ctx = ctx;
    const { users } = ctx.config;
    this.#firstDevice = new Int32Array(users);
    this.#deviceCount = new Uint8Array(users);
    this.#directLeft = ctx.config.directMessages;
    this.#burstsLeft = Math.ceil(ctx.config.groupMessages / Math.max(1, ctx.config.groupBurst));
  }

  /** Creates users, devices and groups, and schedules presence and traffic. */
  async setup(): Promise<void> {
    const { config, rng, driver, sched } = this.#ctx;
    for (let u = 0; u < config.users; u++) {
      const userId = `u${u}`;
      const count = 1 + rng.int(config.devicesPerUserMax);
      this.#firstDevice[u] = driver.devices.length;
      this.#deviceCount[u] = count;
      const offline = rng.chance(config.offlineShare);
      for (let k = 0; k < count; k++) {
        const device = driver.add(userId, k, rng.chance(config.slowShare));
        if (offline) {
          device.away = true;
          sched.at(config.trafficEndMs + rng.int(config.offlineReturnSpreadMs + 1), this.#comeBack, device);
          continue;
        }
        device.away = true;
        sched.at(rng.int(config.rampMs + 1), this.#comeBack, device);
        if (rng.chance(config.churnShare)) {
          const leaveAt = Math.floor(rng.between(config.rampMs, config.trafficEndMs));
          const backAt = Math.min(config.healAtMs, leaveAt + Math.floor(rng.between(config.churnMinMs, config.churnMaxMs)));
          sched.at(leaveAt, this.#goAway, device);
          sched.at(backAt, this.#comeBack, device);
        }
      }
    }
    await this.#createGroups();
    const window = Math.max(1, config.trafficEndMs - config.rampMs);
    if (this.#directLeft > 0) sched.at(config.rampMs, this.#directPump, window / this.#directLeft);
    if (this.#burstsLeft > 0 && this.#groups.length > 0) sched.at(config.rampMs, this.#groupPump, window / this.#burstsLeft);
  }

  /** Whether `userId` is a member of `conversationId` (a workload group, or a direct conversation naming it). */
  isMember(userId: string, conversationId: string): boolean {
    const parsed = parseConversationId(conversationId);
    if (parsed === undefined) return false;
    if (parsed.kind === "direct") return parsed.userA === userId || parsed.userB === userId;
    const g = this.#groups[Number(conversationId.slice(3))];
    if (g === undefined || g.id !== conversationId || !userId.startsWith("u")) return false;
    const users = this.#ctx.config.users;
    const u = Number(userId.slice(1));
    return Number.isInteger(u) && u >= 0 && u < users && (u - g.start + users) % users < g.size;
  }

  /** Every device comes back (the heal): offline and churned users included. */
  everyoneBack(): void {
    for (const device of this.#ctx.driver.devices) if (device.away) this.#ctx.driver.comeBack(device);
  }

  async #createGroups(): Promise<void> {
    const { config, rng, backend, epochMs } = this.#ctx;
    const { users } = config;
    for (let g = 0; g < config.groups; g++) {
      const max = Math.min(config.groupSizeMax, users);
      const min = Math.min(config.groupSizeMin, max);
      const size = g === 0 ? max : Math.round(Math.exp(rng.between(Math.log(min), Math.log(max))));
      const start = rng.int(users);
      const members: string[] = [];
      for (let j = 0; j < size; j++) members.push(`u${(start + j) % users}`);
      const id = `g:g${g}`;
      await backend.inner.createGroup({ id, title: `group ${g}`, ownerId: members[0]!, createdAtMs: epochMs }, members);
      const senders: number[] = [];
      const offset = rng.int(size);
      for (let s = 0; s < Math.min(config.groupSenders, size); s++) senders.push((start + ((offset + s) % size)) % users);
      this.#groups.push({ id, senders, start, size });
    }
  }

  /** A random device of `user` that is not away, if any. */
  #deviceOf(user: number): Device | undefined {
    const first = this.#firstDevice[user]!;
    const count = this.#deviceCount[user]!;
    const k = this.#ctx.rng.int(count);
    for (let i = 0; i < count; i++) {
      const device = this.#ctx.driver.devices[first + ((k + i) % count)]!;
      if (!device.away) return device;
    }
    return undefined;
  }

  readonly #comeBack = (device: Device): void => {
    this.#ctx.driver.comeBack(device);
  };

  readonly #goAway = (device: Device): void => {
    if (this.#ctx.sched.nowMs < this.#ctx.config.healAtMs) this.#ctx.driver.goAway(device);
  };

  /** One direct message from a random online user to a random other user, then the next one. */
  readonly #directPump = (meanGapMs: number): void => {
    const { config, rng, driver, sched } = this.#ctx;
    if (this.#directLeft <= 0 || sched.nowMs >= config.trafficEndMs) return;
    this.#directLeft--;
    const from = rng.int(config.users);
    const to = (from + 1 + rng.int(config.users - 1)) % config.users;
    const device = this.#deviceOf(from);
    if (device !== undefined) driver.send(device, "", `u${to}`);
    sched.schedule(rng.exponential(meanGapMs), this.#directPump, meanGapMs);
  };

  /** One burst: each of a group's senders sends one message at the same instant. */
  readonly #groupPump = (meanGapMs: number): void => {
    const { config, rng, driver, sched } = this.#ctx;
    if (this.#burstsLeft <= 0 || sched.nowMs >= config.trafficEndMs) return;
    this.#burstsLeft--;
    const group = this.#groups[rng.int(this.#groups.length)]!;
    for (let b = 0; b < Math.min(config.groupBurst, group.senders.length); b++) {
      const device = this.#deviceOf(group.senders[b]!);
      if (device !== undefined) driver.send(device, group.id, "");
    }
    sched.schedule(rng.exponential(meanGapMs), this.#groupPump, meanGapMs);
  };
}
