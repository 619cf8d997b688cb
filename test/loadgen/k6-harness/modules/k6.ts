/** The `k6` module of the smoke harness: check, sleep (blocking, as in k6), group, fail. */
import { runtime } from "../vu-runtime.js";

type Checker<T> = ((value: T) => unknown) | unknown;

export function check<T>(value: T, sets: Record<string, Checker<T>>, _tags?: object): boolean {
  let all = true;
  for (const [name, checker] of Object.entries(sets)) {
    let ok: boolean;
    try {
      ok = Boolean(typeof checker === "function" ? (checker as (v: T) => unknown)(value) : checker);
    } catch {
      ok = false;
    }
    all &&= ok;
    runtime.sample("checks", ok ? 1 : 0);
    const tally = runtime.checks.get(name) ?? { passes: 0, fails: 0 };
    if (ok) tally.passes++;
    else tally.fails++;
    runtime.checks.set(name, tally);
  }
  return all;
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Blocks the VU for `seconds`, like k6's sleep (nothing else of this VU runs meanwhile). */
export function sleep(seconds: number): void {
  if (seconds > 0) Atomics.wait(sleeper, 0, 0, seconds * 1000);
}

export function group<T>(_name: string, fn: () => T): T {
  return fn();
}

export function fail(message?: string): never {
  throw new Error(message ?? "fail() called");
}

export default { check, sleep, group, fail };
