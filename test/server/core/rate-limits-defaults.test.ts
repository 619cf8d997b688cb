import { describe, expect, it } from "vitest";
import { loadConfig } from "../../../server/config.js";
import { DEFAULT_RATE_LIMITS } from "../../../server/core/rate-limits.js";

describe("DEFAULT_RATE_LIMITS", () => {
  it("are the configuration's defaults", () => {
    const c = loadConfig([], {});
    expect({
      userSendsPerS: c.rateUserSendsPerS,
      userBytesPerS: c.rateUserBytesPerS,
      connectionSendsPerS: c.rateConnectionSendsPerS,
      connectionBytesPerS: c.rateConnectionBytesPerS,
      userGroupsPerMin: c.rateUserGroupsPerMin,
      burstS: c.rateBurstS,
    }).toEqual(DEFAULT_RATE_LIMITS);
  });
});
