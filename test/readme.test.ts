import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { DEV_JWT_SECRET } from "../server/gateway/auth.js";
import { OPTIONS } from "../server/config.js";

const readme = readFileSync("README.md", "utf8");

describe("README", () => {
  it.each(OPTIONS.map((o) => [o.env, o]))("documents %s with its flag and default", (_env, o) => {
    const shown = o.fallback === DEV_JWT_SECRET ? "(development secret)" : o.fallback === "" ? "(none)" : `\`${o.fallback}\``;
    expect(readme).toContain(`| \`--${o.flag}\` | \`${o.env}\` | ${shown} |`);
  });

  it("gives the same test command as .ci/run", () => {
    const ci = readFileSync(".ci/run", "utf8");
    expect(readme).toContain("npm ci && npm test");
    expect(ci).toMatch(/^npm ci && npm test$/m);
  });
});
