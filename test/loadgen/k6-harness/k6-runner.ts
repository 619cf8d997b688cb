/**
 * The k6 smoke harness: runs a k6 script's lifecycle (init per VU, setup, `iterations` default
 * iterations on each of `vus` VUs, teardown, thresholds, handleSummary) in Node worker threads
 * with the shim modules of ./modules. It exists so CI can keep the k6 scripts honest without k6
 * (AGPL, not installed here): it is a smoke harness for the scripts, not a load tool. It ignores
 * the scripts' executors and durations; it runs exactly the VUs and iterations it is given.
 */
import { writeFile, mkdir } from "node:fs/promises";
import path from "node:path";
import { Worker } from "node:worker_threads";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { ServerReflectionRequestSchema, ServerReflectionResponseSchema, type ServerReflectionResponse } from "../../../gen/grpc/reflection/v1/reflection_pb.js";
import { summarize, type SummaryData, type ThresholdResult } from "./k6-summary.js";
import type { RunRequest, RunResult } from "./vu-worker.js";
import type { BlockingRequest, MetricDecl, Sample, VuWorkerData } from "./vu-runtime.js";

/** How to run a script. */
export interface K6RunOptions {
  readonly vus: number;
  readonly iterations: number;
  readonly env: Readonly<Record<string, string>>;
  /** Directory handleSummary's relative file names are written under (k6: its working directory). */
  readonly cwd: string;
  /** Bound on one lifecycle call including its streams and timers. */
  readonly iterationTimeoutMs?: number;
}

/** What a run produced. */
export interface K6RunResult {
  readonly options: Record<string, unknown>;
  readonly summary: SummaryData;
  readonly thresholds: readonly ThresholdResult[];
  /** Exceptions thrown by iterations or event handlers (k6 would log them). */
  readonly errors: readonly string[];
  /** What handleSummary returned for stdout, and the files it wrote. */
  readonly stdout: string;
  readonly files: readonly string[];
}

const BRIDGE_BYTES = 16 * 1024 * 1024;
const WORKER_ENTRY = new URL("./vu-worker.ts", import.meta.url);

interface Ready {
  readonly options: Record<string, unknown>;
  readonly exports: readonly string[];
  readonly metrics: readonly MetricDecl[];
}

/** The main-thread side of blocking calls: one grpc-js client per address. */
class Bridge {
  readonly #clients = new Map<string, grpc.Client>();

  #client(address: string): grpc.Client {
    let c = this.#clients.get(address);
    if (c === undefined) this.#clients.set(address, (c = new grpc.Client(address, grpc.credentials.createInsecure())));
    return c;
  }

  async handle(req: BlockingRequest): Promise<unknown> {
    if (req.op === "connect") {
      const { address, reflect, timeoutMs } = req.payload as { address: string; reflect: boolean; timeoutMs: number };
      const client = this.#client(address);
      await new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + timeoutMs, (e) => (e ? reject(e) : resolve())));
      return { files: reflect ? await this.#reflect(client, timeoutMs) : [] };
    }
    const { address, path: rpcPath, request, metadata, timeoutMs } = req.payload as { address: string; path: string; request: string; metadata: Record<string, string>; timeoutMs: number };
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(metadata)) md.set(k, v);
    return new Promise((resolve) => {
      let headers: Record<string, string[]> = {};
      const call = this.#client(address).makeUnaryRequest(
        rpcPath,
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.from(request, "base64"),
        md,
        { deadline: Date.now() + timeoutMs },
        (error, value) => {
          const trailers: Record<string, string[]> = {};
          for (const [k, v] of Object.entries(error?.metadata.getMap() ?? {})) trailers[k] = [String(v)];
          resolve({ code: error?.code ?? 0, details: error?.details ?? "", response: value === undefined ? null : value.toString("base64"), headers, trailers });
        },
      );
      call.on("metadata", (m) => (headers = Object.fromEntries(Object.entries(m.getMap()).map(([k, v]) => [k, [String(v)]]))));
    });
  }

  /** What k6 does for `reflect: true`: list the services, then the files defining each (with dependencies). */
  async #reflect(client: grpc.Client, timeoutMs: number): Promise<string[]> {
    const call = client.makeBidiStreamRequest(
      "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
      (m: Parameters<typeof toBinary<typeof ServerReflectionRequestSchema>>[1]) => Buffer.from(toBinary(ServerReflectionRequestSchema, m)),
      (b: Buffer) => fromBinary(ServerReflectionResponseSchema, b),
      new grpc.Metadata(),
      { deadline: Date.now() + timeoutMs },
    );
    const answers: ServerReflectionResponse[] = [];
    let wake: (() => void) | undefined;
    let failure: Error | undefined;
    call.on("data", (r: ServerReflectionResponse) => {
      answers.push(r);
      wake?.();
    });
    call.on("error", (e: Error) => {
      failure = e;
      wake?.();
    });
    const ask = async (messageRequest: Parameters<typeof create<typeof ServerReflectionRequestSchema>>[1]): Promise<ServerReflectionResponse> => {
      call.write(create(ServerReflectionRequestSchema, messageRequest));
      while (answers.length === 0) {
        if (failure !== undefined) throw failure;
        await new Promise<void>((r) => (wake = r));
      }
      return answers.shift()!;
    };
    try {
      const list = await ask({ messageRequest: { case: "listServices", value: "" } });
      if (list.messageResponse.case !== "listServicesResponse") throw new Error(`reflection: unexpected answer ${list.messageResponse.case}`);
      const files = new Set<string>();
      for (const s of list.messageResponse.value.service) {
        const r = await ask({ messageRequest: { case: "fileContainingSymbol", value: s.name } });
        if (r.messageResponse.case !== "fileDescriptorResponse") throw new Error(`reflection: no file for ${s.name}`);
        for (const f of r.messageResponse.value.fileDescriptorProto) files.add(Buffer.from(f).toString("base64"));
      }
      return [...files];
    } finally {
      call.end();
    }
  }

  close(): void {
    for (const c of this.#clients.values()) c.close();
  }
}

/** One VU's worker thread. */
class VuWorker {
  readonly ready: Promise<Ready>;
  readonly #worker: Worker;
  readonly #bridge: SharedArrayBuffer;
  #pending: { resolve(r: RunResult): void; reject(e: Error): void } | undefined;
  #failure: Error | undefined;

  constructor(scriptPath: string, vu: number, env: Readonly<Record<string, string>>, bridge: Bridge) {
    this.#bridge = new SharedArrayBuffer(8 + BRIDGE_BYTES);
    const data: VuWorkerData = { scriptPath, vu, env, bridge: this.#bridge, blockingTimeoutMs: 120_000 };
    this.#worker = new Worker(WORKER_ENTRY, { workerData: data, execArgv: ["--import", "tsx"] });
    let ready: (r: Ready) => void;
    let notReady: (e: Error) => void;
    this.ready = new Promise((resolve, reject) => {
      ready = resolve;
      notReady = reject;
    });
    this.#worker.on("message", (m: { type: string } & Record<string, unknown>) => {
      if (m.type === "ready") ready(m as unknown as Ready);
      else if (m.type === "result") {
        const p = this.#pending;
        this.#pending = undefined;
        p?.resolve(m as unknown as RunResult);
      } else if (m.type === "blocking") {
        bridge.handle(m as unknown as BlockingRequest).then(
          (value) => this.#answer({ ok: true, value }),
          (error: unknown) => this.#answer({ ok: false, error: (error as Error).message }),
        );
      }
    });
    this.#worker.on("error", (e) => {
      this.#failure = e;
      notReady(e);
      this.#pending?.reject(e);
    });
  }

  run(fn: RunRequest["fn"], arg: unknown, iteration: number, iterationTimeoutMs: number): Promise<RunResult> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      this.#pending = { resolve, reject };
      this.#worker.postMessage({ type: "run", fn, arg, iteration, iterationTimeoutMs } satisfies RunRequest);
    });
  }

  terminate(): Promise<number> {
    return this.#worker.terminate();
  }

  #answer(answer: unknown): void {
    let bytes = new TextEncoder().encode(JSON.stringify(answer));
    if (bytes.length > BRIDGE_BYTES) bytes = new TextEncoder().encode(JSON.stringify({ ok: false, error: `answer of ${bytes.length} bytes is too large for the bridge` }));
    const ctrl = new Int32Array(this.#bridge, 0, 2);
    new Uint8Array(this.#bridge, 8).set(bytes);
    Atomics.store(ctrl, 1, bytes.length);
    Atomics.store(ctrl, 0, 1);
    Atomics.notify(ctrl, 0);
  }
}

/** Runs a k6 script through the smoke harness; see the file comment. */
export async function runK6Script(scriptPath: string, options: K6RunOptions): Promise<K6RunResult> {
  const bridge = new Bridge();
  const iterationTimeoutMs = options.iterationTimeoutMs ?? 60_000;
  const samples: Sample[] = [];
  const checks = new Map<string, { passes: number; fails: number }>();
  const errors: string[] = [];
  const collect = (r: RunResult, what: string) => {
    samples.push(...r.samples);
    for (const [name, c] of Object.entries(r.checks)) {
      const t = checks.get(name) ?? { passes: 0, fails: 0 };
      t.passes += c.passes;
      t.fails += c.fails;
      checks.set(name, t);
    }
    errors.push(...r.errors.map((e) => `${what}: ${e}`));
    if (r.error !== undefined) errors.push(`${what}: ${r.error}`);
  };
  const workers: VuWorker[] = [];
  const t0 = performance.now();
  try {
    const main = new VuWorker(scriptPath, 0, options.env, bridge);
    workers.push(main);
    // As k6 does: every VU's init context runs before setup().
    const vus = Array.from({ length: options.vus }, (_, i) => new VuWorker(scriptPath, i + 1, options.env, bridge));
    workers.push(...vus);
    const ready = await main.ready;
    await Promise.all(vus.map((vu) => vu.ready));
    let data: unknown;
    if (ready.exports.includes("setup")) {
      const r = await main.run("setup", undefined, 0, iterationTimeoutMs);
      collect(r, "setup");
      if (r.error !== undefined) throw new Error(`setup() failed: ${r.error}`);
      data = r.value;
    }
    await Promise.all(
      vus.map(async (vu, i) => {
        for (let iteration = 0; iteration < options.iterations; iteration++) {
          collect(await vu.run("default", data, iteration, iterationTimeoutMs), `VU ${i + 1} iteration ${iteration}`);
        }
      }),
    );
    if (ready.exports.includes("teardown")) collect(await main.run("teardown", data, 0, iterationTimeoutMs), "teardown");
    const thresholds = ((ready.options as { thresholds?: Record<string, string[]> }).thresholds ?? {});
    const { data: summary, thresholds: results } = summarize(ready.metrics, samples, checks, thresholds, performance.now() - t0);
    let stdout = "";
    const files: string[] = [];
    if (ready.exports.includes("handleSummary")) {
      const r = await main.run("handleSummary", summary, 0, iterationTimeoutMs);
      collect(r, "handleSummary");
      for (const [key, content] of Object.entries((r.value ?? {}) as Record<string, string>)) {
        if (key === "stdout") stdout = content;
        else if (key !== "stderr") {
          const file = path.resolve(options.cwd, key);
          await mkdir(path.dirname(file), { recursive: true });
          await writeFile(file, content);
          files.push(file);
        }
      }
    }
    return { options: ready.options, summary, thresholds: results, errors, stdout, files };
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
    bridge.close();
  }
}
