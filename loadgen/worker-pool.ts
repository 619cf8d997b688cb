import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Fleet } from "./fleet.js";
import type { Command, FleetConfig, FromFleet, ProgressSample, ResultOf, ToFleet } from "./protocol.js";

/** One client process (or the in-process fleet) as the coordinator sees it. */
export interface FleetHandle {
  readonly index: number;
  readonly pid: number;
  run<C extends Command>(command: C): Promise<ResultOf<C>>;
  stop(): Promise<void>;
}

/** Pool settings. */
export interface WorkerPoolOptions {
  /** Client processes to fork; 0 runs one fleet inside this process (small runs, debugging). */
  readonly processes: number;
  readonly config: Omit<FleetConfig, "workerIndex" | "workers">;
  readonly onProgress: (sample: ProgressSample) => void;
  /** Node flags of the forked processes; default: load TypeScript through tsx, a larger heap. */
  readonly execArgv?: readonly string[];
  /** How long a process may take to start. */
  readonly startTimeoutMs?: number;
}

const WORKER_ENTRY = fileURLToPath(new URL("./worker.ts", import.meta.url));

class ForkedFleet implements FleetHandle {
  readonly index: number;
  pid = 0;
  readonly #child: ChildProcess;
  readonly #pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  #nextId = 1;
  #exited: Error | undefined;
  readonly #exit: Promise<void>;

  constructor(index: number, execArgv: readonly string[], onProgress: (s: ProgressSample) => void) {
    this.index = index;
    this.#child = fork(WORKER_ENTRY, [], { execArgv: [...execArgv], stdio: ["ignore", "inherit", "inherit", "ipc"] });
    this.#child.on("message", (raw) => {
      const m = raw as FromFleet;
      if (m.type === "progress") onProgress(m.sample);
      else if (m.type === "result") {
        const p = this.#pending.get(m.id);
        this.#pending.delete(m.id);
        if (m.ok) p?.resolve(m.value);
        else p?.reject(new Error(`client process ${index}: ${m.error}`));
      }
    });
    this.#exit = new Promise((resolve) => {
      this.#child.once("exit", (code, signal) => {
        this.#exited = new Error(`client process ${index} exited (code ${code}, signal ${signal})`);
        for (const p of this.#pending.values()) p.reject(this.#exited);
        this.#pending.clear();
        resolve();
      });
    });
  }

  async init(config: FleetConfig, timeoutMs: number): Promise<void> {
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`client process ${this.index} did not start within ${timeoutMs} ms`)), timeoutMs);
      this.#child.on("message", (raw) => {
        const m = raw as FromFleet;
        if (m.type !== "ready") return;
        clearTimeout(timer);
        this.pid = m.pid;
        resolve();
      });
      void this.#exit.then(() => {
        clearTimeout(timer);
        reject(this.#exited);
      });
    });
    this.#post({ type: "init", config });
    await ready;
  }

  run<C extends Command>(command: C): Promise<ResultOf<C>> {
    if (this.#exited !== undefined) return Promise.reject(this.#exited);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.#post({ type: "command", id, command });
    });
  }

  async stop(): Promise<void> {
    if (this.#exited === undefined) {
      this.#post({ type: "shutdown" });
      const killer = setTimeout(() => this.#child.kill("SIGKILL"), 15_000);
      await this.#exit;
      clearTimeout(killer);
    }
  }

  #post(message: ToFleet): void {
    if (this.#child.connected) this.#child.send(message);
  }
}

class InProcessFleet implements FleetHandle {
  readonly index = 0;
  readonly pid = process.pid;
  readonly #fleet: Fleet;

  constructor(config: FleetConfig, onProgress: (s: ProgressSample) => void) {
    this.#fleet = new Fleet(config, onProgress);
  }

  async run<C extends Command>(command: C): Promise<ResultOf<C>> {
    // Through JSON, as over IPC, so both paths see the same data.
    return JSON.parse(JSON.stringify(await this.#fleet.run(command))) as ResultOf<C>;
  }

  stop(): Promise<void> {
    return this.#fleet.shutdown();
  }
}

/** The load generator's client processes. */
export class WorkerPool {
  readonly fleets: readonly FleetHandle[];

  private constructor(fleets: readonly FleetHandle[]) {
    this.fleets = fleets;
  }

  /** Forks the processes (or makes the in-process fleet) and waits until each is ready. */
  static async start(options: WorkerPoolOptions): Promise<WorkerPool> {
    if (options.processes === 0) {
      return new WorkerPool([new InProcessFleet({ ...options.config, workerIndex: 0, workers: 1 }, options.onProgress)]);
    }
    const execArgv = options.execArgv ?? ["--import", "tsx", "--max-old-space-size=8192"];
    const fleets = Array.from({ length: options.processes }, (_, i) => new ForkedFleet(i, execArgv, options.onProgress));
    try {
      await Promise.all(fleets.map((f, i) => f.init({ ...options.config, workerIndex: i, workers: options.processes }, options.startTimeoutMs ?? 30_000)));
    } catch (error) {
      await Promise.all(fleets.map((f) => f.stop()));
      throw error;
    }
    return new WorkerPool(fleets);
  }

  get size(): number {
    return this.fleets.length;
  }

  /** Runs one command per process (none where `make` returns undefined), in parallel. */
  async each<C extends Command>(make: (index: number) => C | undefined): Promise<ResultOf<C>[]> {
    const runs: Promise<ResultOf<C>>[] = [];
    for (const f of this.fleets) {
      const command = make(f.index);
      if (command !== undefined) runs.push(f.run(command));
    }
    return Promise.all(runs);
  }

  /** Stops every process (bounded: a process that does not exit is killed). */
  async stop(): Promise<void> {
    await Promise.all(this.fleets.map((f) => f.stop()));
  }
}
