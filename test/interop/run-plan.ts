import type { JsonObject } from "@bufbuild/protobuf";
import type { PlanFile, Report, ReportedError, StepReport, StreamStep, UnaryStep } from "./plan.js";

/** A stream opened by a driver. */
export interface DriverStream {
  /** Every frame received so far, as proto JSON. */
  readonly frames: JsonObject[];
  /** Response headers, once they arrived (lower-case names), if the stack exposes them. */
  headers(): Record<string, string> | undefined;
  /** Writes a request frame (proto JSON); bidi streams only. */
  write(frame: JsonObject): void;
  /** Half-closes the request side. */
  closeSend(): void;
  /** Cancels the call. */
  cancel(): void;
  /** Resolves with how the stream ended. */
  readonly ended: Promise<ReportedError>;
}

/** One client stack's way of making the plan's calls (the TypeScript stacks). */
export interface Driver {
  unary(step: UnaryStep, request: JsonObject | Uint8Array, token: string | undefined): Promise<Omit<StepReport, "name">>;
  stream(step: StreamStep, token: string): DriverStream;
}

/**
 * Runs a plan with a driver, as test/interop/python/client.py and test/interop/go/main.go do
 * in their languages: the same steps, substitutions, waits and report. Steps named in `cannot`
 * (which the stack has no way to express) are left out of the report, and expectReport checks
 * that exactly those are missing.
 */
export async function runPlan(stack: string, plan: PlanFile, driver: Driver, cannot: Readonly<Record<string, string>> = {}): Promise<Report> {
  const steps: StepReport[] = [];
  const saved = new Map<string, string>();
  const unary = async (step: UnaryStep) => {
    if (step.name in cannot) return;
    const request =
      step.raw !== undefined ? new Uint8Array(Buffer.from(step.raw, "base64")) : (JSON.parse(JSON.stringify(step.request ?? {}).replace(/\$\{(\w+)\}/g, (_, k: string) => saved.get(k) ?? "")) as JsonObject);
    const result = await driver.unary(step, request, step.as === undefined ? undefined : plan.tokens[step.as]);
    for (const [name, path] of Object.entries(step.capture ?? {})) {
      const value = path.split(".").reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], result.ok);
      if (typeof value === "string") saved.set(name, value);
    }
    steps.push({ name: step.name, ...result });
  };
  for (const step of plan.steps) {
    if (step.kind === "unary") {
      await unary(step);
      continue;
    }
    const stream = driver.stream(step, plan.tokens[step.as]);
    let end: ReportedError | undefined;
    void stream.ended.then((e) => (end = e));
    const waitUntil = async (what: string, done: () => boolean) => {
      const deadline = Date.now() + plan.stepTimeoutMs;
      while (!done()) {
        if (end !== undefined) throw new Error(`${step.name}: the stream ended (${JSON.stringify(end)}) while waiting for ${what}`);
        if (Date.now() > deadline) throw new Error(`${step.name}: no ${what} within ${plan.stepTimeoutMs} ms; frames: ${JSON.stringify(stream.frames)}`);
        await new Promise((r) => setTimeout(r, 2));
      }
    };
    for (const action of step.actions) {
      if ("write" in action) {
        const id = String(action.write.requestId);
        stream.write(action.write as JsonObject);
        await waitUntil(`answer to request ${id}`, () => stream.frames.some((f) => f.requestId === id));
      } else if ("unary" in action) {
        await unary(action.unary);
      } else if ("awaitPushes" in action) {
        await waitUntil(`${action.awaitPushes} pushes`, () => stream.frames.filter((f) => f.requestId === undefined).length >= action.awaitPushes);
      } else if ("awaitFrames" in action) {
        await waitUntil(`${action.awaitFrames} frames`, () => stream.frames.length >= action.awaitFrames);
      } else if ("close" in action) {
        stream.closeSend();
      } else {
        stream.cancel();
      }
    }
    const ended = await Promise.race([stream.ended, new Promise<undefined>((r) => setTimeout(() => r(undefined), plan.stepTimeoutMs))]);
    if (ended === undefined) throw new Error(`${step.name}: did not end within ${plan.stepTimeoutMs} ms`);
    steps.push({ name: step.name, frames: stream.frames, end: ended, headers: stream.headers() });
  }
  return { stack, steps };
}
