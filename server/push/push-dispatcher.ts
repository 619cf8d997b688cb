import type { Logger } from "pino";
import type { NotifyDecision } from "../core/offline-push.js";
import type { DeviceRegistration, DeviceTokenStore, PushPlatform } from "./device-token-store.js";
import type { PushNotification, PushNotifier } from "./push-notifier.js";

/** How the dispatcher queues and retries. */
export interface PushDispatcherOptions {
  readonly devices: DeviceTokenStore;
  /** The provider for each platform; a webhook usually serves every platform. */
  readonly notifiers: Partial<Record<PushPlatform, PushNotifier>>;
  readonly logger: Logger;
  /** Notifications queued, waiting for a retry or in flight; beyond it new ones are dropped. Default 10,000. */
  readonly queueMax?: number;
  /** Provider requests in flight at once. Default 16. */
  readonly concurrency?: number;
  /** Attempts per notification, the first included. Default 6. */
  readonly attemptsMax?: number;
  /** First retry delay; doubles per attempt, with jitter, up to backoffMaxMs. Default 500 ms. */
  readonly backoffBaseMs?: number;
  /** Default 60 s. */
  readonly backoffMaxMs?: number;
  /** Deliveries remembered to suppress repeats (oldest forgotten first). Default 100,000. */
  readonly rememberMax?: number;
}

/** Counters since start. */
export interface PushDispatcherStats {
  readonly queued: number;
  readonly inFlight: number;
  readonly sent: number;
  readonly retries: number;
  /** Gave up after attemptsMax. */
  readonly failed: number;
  readonly rejected: number;
  /** Registrations removed because the provider said the token is no longer valid. */
  readonly invalidTokens: number;
  /** Not queued: the queue was full, or no provider serves the device's platform. */
  readonly dropped: number;
  /** Not queued again: this message had already been queued for this device. */
  readonly duplicates: number;
}

interface Job {
  readonly notification: PushNotification;
  readonly notifier: PushNotifier;
  attempt: number;
}

/**
 * Turns notify decisions into provider requests: one per registered device of the user, at
 * most once per (message, device) however often the decision comes, through a bounded queue
 * with a bounded number in flight, retrying transient failures with exponential backoff and
 * jitter (a provider's Retry-After is honoured), and removing registrations the provider
 * reports as invalid. Best effort, like every push: a full queue drops and counts; the store
 * stays the truth and the app syncs when opened.
 */
export class PushDispatcher {
  readonly #devices: DeviceTokenStore;
  readonly #notifiers: Partial<Record<PushPlatform, PushNotifier>>;
  readonly #logger: Logger;
  readonly #queueMax: number;
  readonly #concurrency: number;
  readonly #attemptsMax: number;
  readonly #backoffBaseMs: number;
  readonly #backoffMaxMs: number;
  readonly #rememberMax: number;
  readonly #ready: Job[] = [];
  readonly #timers = new Set<NodeJS.Timeout>();
  /** deliveryIds queued or done, oldest first. */
  readonly #remembered = new Set<string>();
  /** Jobs queued, in flight or waiting for a retry. */
  #held = 0;
  #inFlight = 0;
  #closed = false;
  #idle: (() => void)[] = [];
  /** Device look-ups under way: they count as held work for settled(). */
  #lookups = 0;
  #stats = { sent: 0, retries: 0, failed: 0, rejected: 0, invalidTokens: 0, dropped: 0, duplicates: 0 };

  constructor(options: PushDispatcherOptions) {
    this.#devices = options.devices;
    this.#notifiers = options.notifiers;
    this.#logger = options.logger;
    this.#queueMax = options.queueMax ?? 10_000;
    this.#concurrency = options.concurrency ?? 16;
    this.#attemptsMax = options.attemptsMax ?? 6;
    this.#backoffBaseMs = options.backoffBaseMs ?? 500;
    this.#backoffMaxMs = options.backoffMaxMs ?? 60_000;
    this.#rememberMax = options.rememberMax ?? 100_000;
  }

  /** Queues the decision for every registered device of its user. Never throws. */
  notify(decision: NotifyDecision): void {
    if (this.#closed) return;
    this.#lookups++;
    this.#devices
      .listDevices(decision.userId)
      .then(
        (devices) => {
          for (const device of devices) this.#enqueue(decision, device);
        },
        (err: unknown) => {
          this.#stats.dropped++;
          this.#logger.warn({ err, userId: decision.userId }, "push: cannot list devices");
        },
      )
      .finally(() => {
        this.#lookups--;
        this.#pump();
      });
  }

  stats(): PushDispatcherStats {
    return { ...this.#stats, queued: this.#held - this.#inFlight, inFlight: this.#inFlight };
  }

  /** Resolves once nothing is queued, in flight, waiting for a retry or being looked up. */
  settled(): Promise<void> {
    if (this.#held === 0 && this.#lookups === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Stops taking work, drops pending retries, and waits for requests in flight (up to `timeoutMs`). */
  async close(timeoutMs = 5000): Promise<void> {
    this.#closed = true;
    // Each timer holds one job waiting for its retry.
    this.#held -= this.#timers.size;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#held -= this.#ready.length;
    this.#ready.length = 0;
    await Promise.race([this.settled(), new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
  }

  #enqueue(decision: NotifyDecision, device: DeviceRegistration): void {
    const notifier = this.#notifiers[device.platform];
    const deliveryId = `${decision.message.messageId}/${device.userId}/${device.deviceId}`;
    if (this.#remembered.has(deliveryId)) {
      this.#stats.duplicates++;
      return;
    }
    if (notifier === undefined || this.#held >= this.#queueMax || this.#closed) {
      this.#stats.dropped++;
      return;
    }
    this.#remembered.add(deliveryId);
    if (this.#remembered.size > this.#rememberMax) this.#remembered.delete(this.#remembered.values().next().value!);
    this.#held++;
    this.#ready.push({ notification: { device, message: decision.message, deliveryId }, notifier, attempt: 0 });
  }

  #pump(): void {
    while (this.#inFlight < this.#concurrency && this.#ready.length > 0) {
      const job = this.#ready.shift()!;
      this.#inFlight++;
      void this.#attempt(job).finally(() => {
        this.#inFlight--;
        this.#pump();
      });
    }
    if (this.#held === 0 && this.#lookups === 0) for (const wake of this.#idle.splice(0)) wake();
  }

  async #attempt(job: Job): Promise<void> {
    job.attempt++;
    const { notification } = job;
    let result;
    try {
      result = await job.notifier.send(notification);
    } catch (error) {
      result = { kind: "retry" as const, reason: (error as Error).message };
    }
    switch (result.kind) {
      case "sent":
        this.#stats.sent++;
        this.#held--;
        return;
      case "invalid-token":
        this.#stats.invalidTokens++;
        this.#held--;
        this.#logger.info({ userId: notification.device.userId, deviceId: notification.device.deviceId, reason: result.reason }, "push: token no longer valid, registration removed");
        await this.#devices.removeToken(notification.device.platform, notification.device.token).catch((err: unknown) => {
          this.#logger.warn({ err }, "push: cannot remove an invalid token");
        });
        return;
      case "rejected":
        this.#stats.rejected++;
        this.#held--;
        this.#logger.warn({ deliveryId: notification.deliveryId, reason: result.reason }, "push: rejected by the provider");
        return;
      case "retry": {
        if (job.attempt >= this.#attemptsMax || this.#closed) {
          this.#stats.failed++;
          this.#held--;
          this.#logger.warn({ deliveryId: notification.deliveryId, reason: result.reason, attempts: job.attempt }, "push: giving up");
          return;
        }
        this.#stats.retries++;
        const backoff = Math.min(this.#backoffBaseMs * 2 ** (job.attempt - 1), this.#backoffMaxMs) * (0.5 + Math.random() / 2);
        const timer = setTimeout(() => {
          this.#timers.delete(timer);
          this.#ready.push(job);
          this.#pump();
        }, Math.max(backoff, result.retryAfterMs ?? 0));
        timer.unref();
        this.#timers.add(timer);
        return;
      }
    }
  }
}
