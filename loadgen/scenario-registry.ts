import type { Scenario } from "./scenario.js";
import { connectionsScenario } from "./scenarios/connections.js";
import { groupFanoutScenario } from "./scenarios/group-fanout.js";
import { offlineSyncScenario } from "./scenarios/offline-sync.js";

/** Every scenario, by name. */
export const SCENARIOS: ReadonlyMap<string, Scenario> = new Map(
  [connectionsScenario, groupFanoutScenario, offlineSyncScenario].map((s) => [s.name, s]),
);
