import { execFile } from "node:child_process";
import { rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL("../../scripts/coturn.sh", import.meta.url));

/** A coturn started by scripts/coturn.sh (installed with apt-get when missing). */
export interface Coturn {
  readonly port: number;
  readonly secret: string;
  stop(): Promise<void>;
}

export async function startCoturn(secret: string): Promise<Coturn> {
  let stdout: string;
  try {
    ({ stdout } = await run("bash", [SCRIPT, "start", "--secret", secret], { timeout: 300_000 }));
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    throw new Error(`scripts/coturn.sh start failed: ${e.message}\n${e.stderr ?? ""}`);
  }
  const port = Number(/^TURN_PORT=(\d+)$/m.exec(stdout)?.[1]);
  const dir = /^TURN_DIR=(.+)$/m.exec(stdout)?.[1];
  if (!Number.isSafeInteger(port) || dir === undefined) throw new Error(`scripts/coturn.sh printed no port: ${stdout}`);
  return {
    port,
    secret,
    async stop() {
      await run("bash", [SCRIPT, "stop", "--dir", dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
