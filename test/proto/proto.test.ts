import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";

const BUF = path.resolve("node_modules/.bin/buf");

function files(dir: string, prefix = ""): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? files(full, `${prefix}${name}/`) : [`${prefix}${name}`];
  });
}

describe("proto/", () => {
  it("passes buf lint", () => {
    // execFileSync throws with buf's findings on a non-zero exit.
    expect(execFileSync(BUF, ["lint"], { encoding: "utf8" })).toBe("");
  });

  it("matches the generated code in gen/ (run `npm run proto` after editing a .proto)", () => {
    const out = mkdtempSync(path.join(os.tmpdir(), "im-gen-"));
    try {
      execFileSync(BUF, ["generate", "--output", out], { encoding: "utf8" });
      const fresh = path.join(out, "gen");
      expect(files(fresh).sort()).toEqual(files("gen").sort());
      for (const f of files(fresh)) {
        expect(readFileSync(path.join(fresh, f), "utf8"), f).toBe(readFileSync(path.join("gen", f), "utf8"));
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
