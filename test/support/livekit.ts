import { execFile } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL("../../scripts/livekit.sh", import.meta.url));

/** A LiveKit server started by scripts/livekit.sh (built once into .tools/livekit). */
export interface Livekit {
  readonly port: number;
  readonly url: string;
  log(): string;
  stop(): Promise<void>;
}

export async function startLivekit(options: { key: string; secret: string; webhook: string; port: number }): Promise<Livekit> {
  let stdout: string;
  try {
    ({ stdout } = await run("bash", [SCRIPT, "start", "--key", options.key, "--secret", options.secret, "--webhook", options.webhook, "--port", String(options.port)], { timeout: 900_000 }));
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    throw new Error(`scripts/livekit.sh start failed: ${e.message}\n${e.stderr ?? ""}`);
  }
  const port = Number(/^LIVEKIT_PORT=(\d+)$/m.exec(stdout)?.[1]);
  const dir = /^LIVEKIT_DIR=(.+)$/m.exec(stdout)?.[1];
  if (!Number.isSafeInteger(port) || dir === undefined) throw new Error(`scripts/livekit.sh printed no port: ${stdout}`);
  return {
    port,
    url: `ws://127.0.0.1:${port}`,
    log: () => readFileSync(`${dir}/livekit.log`, "utf8"),
    async stop() {
      await run("bash", [SCRIPT, "stop", "--dir", dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Builds LiveKit if needed (the first time: minutes), so later starts are quick. */
export async function buildLivekit(): Promise<void> {
  await run("bash", [SCRIPT, "build"], { timeout: 900_000 });
}
