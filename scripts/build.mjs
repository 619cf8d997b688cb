// Compiles the server, the client SDK and gen/ into dist/ (or --out-dir DIR) for `npm start`
// and `npm run cli`, which then run plain JavaScript on Node instead of a development
// transpiler. `npm ci` runs it as the `prepare` script.
//
// Plain JavaScript itself, so it runs before anything is compiled. The output directory is
// emptied first, so a deleted source file leaves no stale module behind.
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, rmSync, symlinkSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { values } = parseArgs({ options: { "out-dir": { type: "string", default: "dist" } } });
const outDir = path.resolve(root, values["out-dir"]);

/** Files the compiled code reads at run time, at the same place relative to the modules. */
const ASSETS = ["deploy/cassandra/schema.cql"];

rmSync(outDir, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
const result = spawnSync(process.execPath, [tsc, "-p", path.join(root, "tsconfig.build.json"), "--outDir", outDir], { stdio: "inherit" });
if (result.status !== 0) process.exit(result.status ?? 1);
for (const asset of ASSETS) {
  mkdirSync(path.dirname(path.join(outDir, asset)), { recursive: true });
  copyFileSync(path.join(root, asset), path.join(outDir, asset));
}
// The gateway serves the web client from web/dist beside the modules (server/gateway/
// web-routes.ts), which `npm run build:web` (npm start's prestart) writes at the project
// root: link it, so the compiled server serves what the last web build made.
mkdirSync(path.join(outDir, "web"), { recursive: true });
symlinkSync(path.relative(path.join(outDir, "web"), path.join(root, "web/dist")), path.join(outDir, "web/dist"), "dir");
