/**
 * Entry point of one VU worker thread of the smoke harness: maps the k6 module names to the
 * shims, evaluates the script (its init context), then runs lifecycle functions on request.
 * An iteration ends when the function has returned and its streams, timers and async calls are
 * done, as in k6.
 */
import { registerHooks } from "node:module";
import { pathToFileURL } from "node:url";
import { parentPort } from "node:worker_threads";
import { runtime } from "./vu-runtime.js";

const SHIMS: Record<string, string> = {
  k6: "./modules/k6.ts",
  "k6/net/grpc": "./modules/grpc.ts",
  "k6/metrics": "./modules/metrics.ts",
  "k6/timers": "./modules/timers.ts",
  "k6/crypto": "./modules/crypto.ts",
  "k6/encoding": "./modules/encoding.ts",
};

registerHooks({
  resolve(specifier, context, next) {
    const shim = SHIMS[specifier];
    if (shim !== undefined) return { url: new URL(shim, import.meta.url).href, shortCircuit: true };
    if (specifier.startsWith("k6/") || specifier.startsWith("https://")) throw new Error(`the smoke harness does not provide ${specifier}`);
    return next(specifier, context);
  },
});

/** Main -> worker. */
export interface RunRequest {
  readonly type: "run";
  readonly fn: "setup" | "default" | "teardown" | "handleSummary";
  readonly arg: unknown;
  readonly iteration: number;
  readonly iterationTimeoutMs: number;
}

/** Worker -> main, after each run. */
export interface RunResult {
  readonly type: "result";
  readonly value: unknown;
  readonly error: string | undefined;
  readonly samples: readonly { metric: string; value: number }[];
  readonly checks: Readonly<Record<string, { passes: number; fails: number }>>;
  readonly errors: readonly string[];
}

const g = globalThis as Record<string, unknown>;
g.__ENV = { ...runtime.data.env };
g.__VU = runtime.data.vu;
g.__ITER = 0;

const script = (await import(pathToFileURL(runtime.data.scriptPath).href)) as Record<string, unknown>;
runtime.initContext = false;
const declared = [...runtime.metrics.values()];
parentPort!.postMessage({ type: "ready", options: JSON.parse(JSON.stringify(script.options ?? {})), exports: Object.keys(script), metrics: declared });

async function drain(timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (runtime.pending > 0) {
    if (performance.now() > deadline) throw new Error(`iteration still had ${runtime.pending} stream(s)/timer(s)/call(s) running after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

parentPort!.on("message", async (req: RunRequest) => {
  let value: unknown;
  let error: string | undefined;
  g.__ITER = req.iteration;
  const started = performance.now();
  try {
    const fn = script[req.fn];
    if (typeof fn !== "function") throw new Error(`the script has no ${req.fn}()`);
    value = await (fn as (a: unknown) => unknown)(req.arg);
    await drain(req.iterationTimeoutMs);
    if (req.fn === "default") {
      runtime.sample("iterations", 1);
      runtime.sample("iteration_duration", performance.now() - started);
    }
  } catch (e) {
    error = (e as Error).stack ?? String(e);
  }
  const result: RunResult = {
    type: "result",
    value: value === undefined ? undefined : JSON.parse(JSON.stringify(value)),
    error,
    samples: runtime.samples,
    checks: Object.fromEntries(runtime.checks),
    errors: runtime.errors,
  };
  runtime.samples = [];
  runtime.checks.clear();
  runtime.errors = [];
  parentPort!.postMessage(result);
});
