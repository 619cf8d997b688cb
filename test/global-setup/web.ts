import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { TestProject } from "vitest/node";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const VITE = fileURLToPath(new URL("../../node_modules/vite/bin/vite.js", import.meta.url));

/** Test files that drive a real browser. */
export const BROWSER_TEST = /\.browser\.test\.ts$/;

/**
 * For runs that include browser tests (`*.browser.test.ts`): builds the web client into
 * web/dist (the gateway serves it) and finds Debian's Chromium, installing it with apt-get
 * when missing (scripts/chromium.sh), and hands its path to tests as `inject("chromiumPath")`.
 * Under CI=true a failure of either fails the run; elsewhere a missing Chromium skips the
 * browser tests with a warning. Other runs pay nothing.
 */
export default async function setup(project: TestProject): Promise<void> {
  const filters = (project.vitest as unknown as { filenamePattern?: string[] }).filenamePattern ?? [];
  const specs = await project.vitest.globTestSpecifications(filters);
  if (!specs.some((spec) => BROWSER_TEST.test(spec.moduleId))) {
    project.provide("chromiumPath", "");
    return;
  }
  try {
    // As `npm start` builds it: vitest's NODE_ENV=test would give a development build (no service worker).
    await run(process.execPath, [VITE, "build", "web", "--logLevel", "warn"], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024, env: { ...process.env, NODE_ENV: "production" } });
  } catch (error) {
    const e = error as { stderr?: string; stdout?: string; message: string };
    throw new Error(`the web client did not build (vite build web): ${e.message}\n${e.stdout ?? ""}${e.stderr ?? ""}`);
  }
  try {
    const { stdout } = await run("bash", [fileURLToPath(new URL("../../scripts/chromium.sh", import.meta.url))], { cwd: ROOT, timeout: 15 * 60_000 });
    const found = /^CHROMIUM=(.+)$/m.exec(stdout)?.[1];
    if (found === undefined) throw new Error(`scripts/chromium.sh printed no path: ${stdout}`);
    project.provide("chromiumPath", found);
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    const message = `Chromium is not available, so the browser tests cannot run: ${e.message}\n${e.stderr ?? ""}`;
    if (process.env.CI === "true") throw new Error(message);
    process.stderr.write(`\nWARNING: ${message}\nThe browser tests are skipped.\n`);
    project.provide("chromiumPath", "");
  }
}

declare module "vitest" {
  export interface ProvidedContext {
    /** Debian's Chromium for browser tests; "" when this run has none (or, outside CI, none could be installed). */
    chromiumPath: string;
  }
}
