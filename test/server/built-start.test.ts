import { execFile, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTokenVerifier, DEV_JWT_SECRET } from "../../server/gateway/auth.js";

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, "../..");
const pkg = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> };

/** The module a `node dist/...` script runs, relative to dist/. */
function distModule(script: string): string {
  const match = /^node dist\/(\S+\.js)$/.exec(pkg.scripts[script] ?? "");
  if (match === null) throw new Error(`npm run ${script} is not "node dist/<module>.js": ${pkg.scripts[script]}`);
  return match[1]!;
}

describe("the built start", () => {
  let out: string;
  let dataDir: string;
  beforeAll(async () => {
    // Inside the project, so the compiled modules resolve its node_modules as dist/ does.
    mkdirSync(path.join(ROOT, "node_modules/.cache"), { recursive: true });
    out = mkdtempSync(path.join(ROOT, "node_modules/.cache/built-start-"));
    dataDir = mkdtempSync(path.join(tmpdir(), "built-start-data-"));
    // The same script `npm ci` runs as `prepare`, into a directory of this test's own.
    await run(process.execPath, [path.join(ROOT, "scripts/build.mjs"), "--out-dir", out], { cwd: ROOT });
  }, 180_000);
  afterAll(() => {
    rmSync(out, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("is what npm start and npm run cli run, and npm ci builds it", () => {
    expect(pkg.scripts.prepare).toBe("node scripts/build.mjs");
    expect(distModule("start")).toBe("server/main.js");
    expect(distModule("cli")).toBe("server/cli.js");
  });

  it("forks workers that run the compiled entry point, not the transpiler", async () => {
    const main = path.join(out, distModule("start"));
    const child = spawn(process.execPath, [main, "--port", "0", "--workers", "2", "--data-dir", dataDir, "--log-level", "info"], {
      cwd: ROOT,
      env: { ...process.env, NODE_OPTIONS: "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let text = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (text += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (text += c));
    const exited = new Promise((resolve) => child.once("exit", resolve));
    try {
      const cluster = await new Promise<{ workers: number[] }>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the cluster did not listen:\n${text}`)), 60_000);
        child.stdout.on("data", () => {
          const line = text.split("\n").find((l) => l.includes('"msg":"cluster of'));
          if (line !== undefined) {
            clearTimeout(timer);
            resolve(JSON.parse(line) as { workers: number[] });
          }
        });
        child.once("exit", () => reject(new Error(`the server exited:\n${text}`)));
      });
      expect(cluster.workers).toHaveLength(2);
      for (const pid of [child.pid!, ...cluster.workers]) {
        const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
        expect(argv.slice(1, 2)).toEqual([main]);
        expect(argv.join(" ")).not.toMatch(/tsx/);
      }
    } finally {
      child.kill("SIGTERM");
      await exited;
    }
  });

  it("runs the compiled CLI", async () => {
    const { stdout } = await run(process.execPath, [path.join(out, distModule("cli")), "token", "zoe"], { cwd: ROOT, encoding: "utf8" });
    expect((await createTokenVerifier(DEV_JWT_SECRET).verify(`Bearer ${stdout.trim()}`)).userId).toBe("zoe");
  });

  it("finds the web client where the last web build put it", () => {
    const link = path.join(out, "web/dist");
    expect(path.resolve(path.dirname(link), readlinkSync(link))).toBe(path.join(ROOT, "web/dist"));
  });

  it("carries the Cassandra schema the compiled store reads", () => {
    expect(readFileSync(path.join(out, "deploy/cassandra/schema.cql"), "utf8")).toBe(readFileSync(path.join(ROOT, "deploy/cassandra/schema.cql"), "utf8"));
  });
});
