import { readFileSync } from "node:fs";
import type { Logger } from "pino";
import type { Clock } from "../core/clock.js";
import { OFFLINE_PUSH_DEFAULTS } from "../core/offline-push.js";
import type { ServerConfig } from "../config.js";
import type { Routing } from "../route/routing.js";
import type { MessageStore } from "../store/message-store.js";
import { ApnsPushNotifier } from "./apns-push-notifier.js";
import type { DeviceTokenStore, PushPlatform } from "./device-token-store.js";
import { FcmPushNotifier, type ServiceAccountKey } from "./fcm-push-notifier.js";
import { OfflinePushPipeline } from "./offline-push-pipeline.js";
import { PushDispatcher } from "./push-dispatcher.js";
import type { PushNotifier } from "./push-notifier.js";
import { WebhookPushNotifier } from "./webhook-push-notifier.js";

type PushConfig = Pick<
  ServerConfig,
  | "pushWebhookUrl"
  | "pushWebhookSecret"
  | "apnsKeyFile"
  | "apnsKeyId"
  | "apnsTeamId"
  | "apnsTopic"
  | "apnsOrigin"
  | "fcmServiceAccountFile"
  | "fcmEndpoint"
  | "pushGraceMs"
  | "pushPreviewChars"
  | "pushGroupMembersMax"
  | "pushConcurrency"
>;

/**
 * The providers the configuration names, by platform: APNs and FCM when their credentials are
 * given, the webhook for every platform left. Throws an Error naming a setting that is missing
 * or unreadable.
 */
export function pushNotifiers(config: PushConfig, clock: Clock): Partial<Record<PushPlatform, PushNotifier>> {
  const notifiers: Partial<Record<PushPlatform, PushNotifier>> = {};
  if (config.apnsKeyFile !== "") {
    for (const [flag, value] of [["apns-key-id", config.apnsKeyId], ["apns-team-id", config.apnsTeamId], ["apns-topic", config.apnsTopic]] as const) {
      if (value === "") throw new Error(`--${flag} is required with --apns-key-file`);
    }
    notifiers.apns = new ApnsPushNotifier({
      keyId: config.apnsKeyId,
      teamId: config.apnsTeamId,
      topic: config.apnsTopic,
      privateKeyPem: readSetting("apns-key-file", config.apnsKeyFile),
      origin: config.apnsOrigin,
      clock,
    });
  }
  if (config.fcmServiceAccountFile !== "") {
    let serviceAccount: ServiceAccountKey;
    try {
      serviceAccount = JSON.parse(readSetting("fcm-service-account-file", config.fcmServiceAccountFile)) as ServiceAccountKey;
    } catch (error) {
      throw new Error(`--fcm-service-account-file: ${(error as Error).message}`);
    }
    for (const field of ["project_id", "client_email", "private_key"] as const) {
      if (typeof serviceAccount[field] !== "string") throw new Error(`--fcm-service-account-file has no ${field}`);
    }
    notifiers.fcm = new FcmPushNotifier({ serviceAccount, endpoint: config.fcmEndpoint, clock });
  }
  if (config.pushWebhookUrl !== "") {
    if (config.pushWebhookSecret === "") throw new Error("--push-webhook-secret is required with --push-webhook-url");
    try {
      new URL(config.pushWebhookUrl);
    } catch {
      throw new Error(`--push-webhook-url is not a URL: ${JSON.stringify(config.pushWebhookUrl)}`);
    }
    const webhook = new WebhookPushNotifier({ url: config.pushWebhookUrl, secret: config.pushWebhookSecret, clock });
    notifiers.apns ??= webhook;
    notifiers.fcm ??= webhook;
  }
  return notifiers;
}

function readSetting(flag: string, file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    throw new Error(`--${flag}: cannot read ${file}: ${(error as Error).message}`);
  }
}

/** Offline push as configured: undefined when no provider is. */
export interface OfflinePush {
  readonly pipeline: OfflinePushPipeline;
  close(): Promise<void>;
}

/**
 * Starts offline push when a provider is configured: the pipeline hears the hub's presence
 * and the owner set's changes of `routing`, reads groups' members from `store`, and sends
 * through a PushDispatcher to the providers. Nothing runs, and nothing costs, without one.
 */
export function startOfflinePush(
  config: PushConfig,
  deps: { readonly routing: Routing; readonly store: MessageStore; readonly devices: DeviceTokenStore; readonly clock: Clock; readonly logger: Logger },
): OfflinePush | undefined {
  const notifiers = pushNotifiers(config, deps.clock);
  const providers = [...new Set(Object.values(notifiers))];
  if (providers.length === 0) return undefined;
  const { routing, clock, logger } = deps;
  if (config.pushConcurrency < 1) throw new Error("--push-concurrency must be at least 1");
  const dispatcher = new PushDispatcher({ devices: deps.devices, notifiers, logger, concurrency: config.pushConcurrency });
  const pipeline = new OfflinePushPipeline({
    self: routing.workerId,
    processes: () => routing.owners.members,
    link: routing.pushLink,
    localUsers: () => routing.hub.users(),
    listMembers: (conversationId, after, limit) => deps.store.listMembers(conversationId, after, limit),
    dispatcher,
    clock,
    logger,
    decider: { ...OFFLINE_PUSH_DEFAULTS, graceMs: config.pushGraceMs },
    previewChars: config.pushPreviewChars,
    groupMembersMax: config.pushGroupMembersMax,
  });
  routing.hub.onPresence((userId, online) => (online ? pipeline.userOnline(userId) : pipeline.userOffline(userId)));
  routing.onOwnersChanged((left) => pipeline.processesChanged(left));
  return {
    pipeline,
    async close() {
      await pipeline.close();
      await Promise.all(providers.map((p) => p.close()));
    },
  };
}
