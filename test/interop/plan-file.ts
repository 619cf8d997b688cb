import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { PlanFile } from "./plan.js";

/** Writes a plan to a new temporary file; `remove` deletes it. */
export function writePlanFile(plan: PlanFile): { path: string; remove(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), "im-interop-"));
  const file = path.join(dir, "plan.json");
  writeFileSync(file, JSON.stringify(plan));
  return { path: file, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** One line per stack with what it cost, so the test budget stays visible in every run. */
export function logTimes(stack: string, times: Record<string, number>): void {
  process.stdout.write(`interop ${stack}: ${Object.entries(times).map(([k, ms]) => `${k} ${ms} ms`).join(", ")}\n`);
}
