/**
 * The state of one k6 VU in the smoke harness: one worker thread per VU (as k6 runs each VU in
 * its own JS runtime), shared by the shim modules (k6, k6/net/grpc, k6/metrics, ...) loaded in
 * that thread. Blocking k6 calls (client.connect, client.invoke, sleep) block this thread for
 * real: the main thread carries them out while this one waits on a SharedArrayBuffer.
 */
import path from "node:path";
import { parentPort, workerData } from "node:worker_threads";

/** What the main thread gives a VU worker. */
export interface VuWorkerData {
  readonly scriptPath: string;
  /** 0 for the setup/teardown/handleSummary runtime, 1..N for VUs (k6's __VU). */
  readonly vu: number;
  readonly env: Readonly<Record<string, string>>;
  /** [0]: state (0 waiting, 1 answered), [1]: answer length; bytes from offset 8. */
  readonly bridge: SharedArrayBuffer;
  readonly blockingTimeoutMs: number;
}

export type MetricType = "counter" | "gauge" | "rate" | "trend";

export interface MetricDecl {
  readonly name: string;
  readonly type: MetricType;
  readonly contains: "time" | "default";
}

export interface Sample {
  readonly metric: string;
  readonly value: number;
}

/** Worker -> main: a blocking operation to carry out. */
export interface BlockingRequest {
  readonly type: "blocking";
  readonly op: "connect" | "invoke";
  readonly payload: unknown;
}

const BUILTIN: readonly MetricDecl[] = [
  { name: "checks", type: "rate", contains: "default" },
  { name: "iterations", type: "counter", contains: "default" },
  { name: "iteration_duration", type: "trend", contains: "time" },
  { name: "grpc_req_duration", type: "trend", contains: "time" },
  { name: "grpc_streams", type: "counter", contains: "default" },
  { name: "grpc_streams_msgs_sent", type: "counter", contains: "default" },
  { name: "grpc_streams_msgs_received", type: "counter", contains: "default" },
];

const decoder = new TextDecoder();

/** One VU's runtime; see the file comment. */
export class VuRuntime {
  readonly data: VuWorkerData;
  readonly scriptDir: string;
  /** True while the script's module (init context) is being evaluated. */
  initContext = true;
  /** Async work that keeps the current iteration alive: streams, timers, asyncInvoke calls. */
  pending = 0;
  samples: Sample[] = [];
  readonly metrics = new Map<string, MetricDecl>(BUILTIN.map((m) => [m.name, m]));
  readonly checks = new Map<string, { passes: number; fails: number }>();
  errors: string[] = [];
  readonly #ctrl: Int32Array;
  readonly #bytes: Uint8Array;

  constructor(data: VuWorkerData) {
    this.data = data;
    this.scriptDir = path.dirname(data.scriptPath);
    this.#ctrl = new Int32Array(data.bridge, 0, 2);
    this.#bytes = new Uint8Array(data.bridge, 8);
  }

  /** Declares a metric; k6 allows this in the init context only. */
  declare(decl: MetricDecl): void {
    if (!this.initContext) throw new Error(`metric ${decl.name}: metrics can only be created in the init context`);
    const known = this.metrics.get(decl.name);
    if (known !== undefined && known.type !== decl.type) throw new Error(`metric ${decl.name} already declared as a ${known.type}`);
    this.metrics.set(decl.name, decl);
  }

  sample(metric: string, value: number): void {
    if (!this.metrics.has(metric)) throw new Error(`metric ${metric} was never declared`);
    this.samples.push({ metric, value });
  }

  /** Counts one piece of async work in; the returned function counts it out (once). */
  hold(): () => void {
    this.pending++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.pending--;
    };
  }

  /** Runs a script callback; an exception is recorded as an error of the run, as k6 logs it. */
  guard(what: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.errors.push(`${what}: ${(error as Error).stack ?? String(error)}`);
    }
  }

  /** Carries out `op` on the main thread and blocks this thread until it answers. */
  blocking(op: BlockingRequest["op"], payload: unknown): unknown {
    Atomics.store(this.#ctrl, 0, 0);
    parentPort!.postMessage({ type: "blocking", op, payload } satisfies BlockingRequest);
    const r = Atomics.wait(this.#ctrl, 0, 0, this.data.blockingTimeoutMs);
    if (r === "timed-out") throw new Error(`${op}: no answer within ${this.data.blockingTimeoutMs} ms`);
    const length = Atomics.load(this.#ctrl, 1);
    const answer = JSON.parse(decoder.decode(this.#bytes.slice(0, length))) as { ok: boolean; value?: unknown; error?: string };
    if (!answer.ok) throw new Error(answer.error);
    return answer.value;
  }
}

/** The runtime of this worker thread (one VU per thread). */
export const runtime = new VuRuntime(workerData as VuWorkerData);
