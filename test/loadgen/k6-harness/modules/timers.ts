/** The `k6/timers` module of the smoke harness: timers that keep the iteration alive until they fire or are cleared. */
import { runtime } from "../vu-runtime.js";

const active = new Map<number, { timer: NodeJS.Timeout; release: () => void }>();
let nextId = 1;

export function setTimeout(fn: (...args: unknown[]) => void, delay: number, ...args: unknown[]): number {
  const id = nextId++;
  const release = runtime.hold();
  const timer = globalThis.setTimeout(() => {
    active.delete(id);
    runtime.guard("setTimeout callback", () => fn(...args));
    release();
  }, delay);
  active.set(id, { timer, release });
  return id;
}

export function setInterval(fn: (...args: unknown[]) => void, delay: number, ...args: unknown[]): number {
  const id = nextId++;
  const release = runtime.hold();
  const timer = globalThis.setInterval(() => runtime.guard("setInterval callback", () => fn(...args)), delay);
  active.set(id, { timer, release });
  return id;
}

function clear(id: number): void {
  const t = active.get(id);
  if (t === undefined) return;
  active.delete(id);
  globalThis.clearTimeout(t.timer);
  t.release();
}

export const clearTimeout = clear;
export const clearInterval = clear;

export default { setTimeout, setInterval, clearTimeout, clearInterval };
