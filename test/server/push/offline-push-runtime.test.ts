import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../../server/config.js";
import { ApnsPushNotifier } from "../../../server/push/apns-push-notifier.js";
import { FcmPushNotifier } from "../../../server/push/fcm-push-notifier.js";
import { pushNotifiers } from "../../../server/push/offline-push-runtime.js";
import { WebhookPushNotifier } from "../../../server/push/webhook-push-notifier.js";
import { systemClock } from "../../../server/system.js";

const dir = mkdtempSync(path.join(tmpdir(), "push-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const apnsKey = path.join(dir, "AuthKey.p8");
writeFileSync(apnsKey, generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }));
const fcmKey = path.join(dir, "service-account.json");
writeFileSync(fcmKey, JSON.stringify({ project_id: "p", client_email: "a@p.iam.gserviceaccount.com", private_key: "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n" }));

const notifiers = (...flags: string[]) => pushNotifiers(loadConfig(flags, {}), systemClock);
const APNS = ["--apns-key-file", apnsKey, "--apns-key-id", "ABCDEFGHIJ", "--apns-team-id", "TEAM123456", "--apns-topic", "com.example.chat"];
const WEBHOOK = ["--push-webhook-url", "https://push.example.com/hook", "--push-webhook-secret", "s3cret"];

describe("push providers from the configuration", () => {
  it("configures none by default: offline push stays off", () => {
    expect(notifiers()).toEqual({});
  });

  it("serves every platform with the webhook alone", () => {
    const n = notifiers(...WEBHOOK);
    expect(n.apns).toBeInstanceOf(WebhookPushNotifier);
    expect(n.fcm).toBe(n.apns);
  });

  it("gives a platform its own provider, and the webhook the others", () => {
    const n = notifiers(...APNS, ...WEBHOOK);
    expect(n.apns).toBeInstanceOf(ApnsPushNotifier);
    expect(n.fcm).toBeInstanceOf(WebhookPushNotifier);
    const both = notifiers(...APNS, "--fcm-service-account-file", fcmKey);
    expect(both.apns).toBeInstanceOf(ApnsPushNotifier);
    expect(both.fcm).toBeInstanceOf(FcmPushNotifier);
  });

  it.each([
    ["a webhook without its secret", ["--push-webhook-url", "https://push.example.com/hook"], /--push-webhook-secret is required/],
    ["a webhook URL that is not one", ["--push-webhook-url", "push.example.com", "--push-webhook-secret", "s"], /--push-webhook-url is not a URL/],
    ["an APNs key without its team", ["--apns-key-file", apnsKey, "--apns-key-id", "K", "--apns-topic", "t"], /--apns-team-id is required/],
    ["an APNs key file that cannot be read", [...APNS.slice(2), "--apns-key-file", path.join(dir, "missing.p8")], /--apns-key-file: cannot read/],
    ["an FCM key that is not JSON", ["--fcm-service-account-file", apnsKey], /--fcm-service-account-file/],
  ])("refuses %s, naming the setting", (_what, flags, message) => {
    expect(() => notifiers(...flags)).toThrow(message);
  });
});
