import type { TestProject } from "vitest/node";
import { buildLivekit } from "../support/livekit.js";

/**
 * Builds LiveKit v1.13.5 once into .tools/livekit (scripts/livekit.sh build: go install from
 * the Go module proxy; minutes the first time, nothing afterwards) before any test starts
 * it. Under CI=true a failed build fails the run; elsewhere the LiveKit tests are skipped
 * with a warning.
 */
export default async function setup(project: TestProject): Promise<void> {
  try {
    await buildLivekit();
    project.provide("livekitBuilt", true);
  } catch (error) {
    if (process.env.CI === "true") throw error;
    process.stderr.write(`\nWARNING: LiveKit could not be built; tests that need it are skipped.\n${(error as Error).message}\n`);
    project.provide("livekitBuilt", false);
  }
}

declare module "vitest" {
  export interface ProvidedContext {
    /** True when test/global-setup/livekit.ts built the LiveKit server. */
    livekitBuilt: boolean;
  }
}
