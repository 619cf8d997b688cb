import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import type { Logger } from "pino";
import {
  DeviceSchema,
  ListDevicesRequestSchema,
  ListDevicesResponseSchema,
  PushPlatform as WirePlatform,
  PushService,
  RegisterDeviceRequestSchema,
  RegisterDeviceResponseSchema,
  UnregisterDeviceRequestSchema,
  UnregisterDeviceResponseSchema,
  type Device,
} from "../../gen/im/v1/push_pb.js";
import type { Clock } from "../core/clock.js";
import type { TokenVerifier } from "../gateway/auth.js";
import { invalidArgument } from "../gateway/errors.js";
import type { RequestValidator } from "../gateway/request-validator.js";
import { createUnaryRunner } from "../gateway/unary-call.js";
import type { DeviceRegistration, DeviceTokenStore, PushPlatform } from "./device-token-store.js";

/** What the push service needs. */
export interface PushServiceDeps {
  readonly devices: DeviceTokenStore;
  readonly verifier: TokenVerifier;
  readonly validator: RequestValidator;
  readonly clock: Clock;
  readonly logger: Logger;
}

const TO_PLATFORM: Partial<Record<WirePlatform, PushPlatform>> = { [WirePlatform.APNS]: "apns", [WirePlatform.FCM]: "fcm" };
const TO_WIRE: Record<PushPlatform, WirePlatform> = { apns: WirePlatform.APNS, fcm: WirePlatform.FCM };

function toWireDevice(d: DeviceRegistration): Device {
  return create(DeviceSchema, { deviceId: d.deviceId, platform: TO_WIRE[d.platform], token: d.token, registeredAtMs: BigInt(d.registeredAtMs) });
}

/** The PushService implementation: the caller's device push tokens (proto/im/v1/push.proto). */
export function createPushService(deps: PushServiceDeps): ServiceImpl<typeof PushService> {
  const { devices, clock } = deps;
  const unary = createUnaryRunner(deps.verifier, deps.validator, deps.logger);
  return {
    registerDevice: (req, ctx) =>
      unary(RegisterDeviceRequestSchema, req, ctx, async (userId) => {
        const platform = TO_PLATFORM[req.platform];
        if (platform === undefined) throw invalidArgument("platform is required");
        const registration = await devices.register(userId, { deviceId: req.deviceId, platform, token: req.token }, clock.nowMs());
        return create(RegisterDeviceResponseSchema, { device: toWireDevice(registration) });
      }),
    unregisterDevice: (req, ctx) =>
      unary(UnregisterDeviceRequestSchema, req, ctx, async (userId) => create(UnregisterDeviceResponseSchema, { removed: await devices.unregister(userId, req.deviceId) })),
    listDevices: (req, ctx) =>
      unary(ListDevicesRequestSchema, req, ctx, async (userId) => create(ListDevicesResponseSchema, { devices: (await devices.listDevices(userId)).map(toWireDevice) })),
  };
}
