import { describe, expect, it } from "vitest";
import { createLogger, type LogDestination } from "../../server/logger.js";

/** A destination that keeps what was written, and claims to be a terminal or not. */
function capture(isTTY: boolean): LogDestination & { readonly text: () => string } {
  const chunks: string[] = [];
  return { isTTY, write: (line: string) => chunks.push(line), text: () => chunks.join("") };
}

// eslint-disable-next-line no-control-regex
const stripAnsi = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, "");

describe("createLogger()", () => {
  it("writes one JSON object per line when the destination is not a terminal", async () => {
    const out = capture(false);
    const logger = await createLogger({ level: "info", destination: out });
    logger.info({ port: 8080 }, "listening on 127.0.0.1:8080");
    logger.debug("not at this level");
    const lines = out.text().trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 30, port: 8080, msg: "listening on 127.0.0.1:8080", pid: process.pid });
  });

  it("writes readable, coloured lines when the destination is a terminal", async () => {
    const out = capture(true);
    const logger = await createLogger({ level: "info", destination: out });
    logger.warn({ worker: 1 }, "worker exited unexpectedly");
    const text = out.text();
    expect(text).toMatch(/\x1b\[/);
    expect(() => JSON.parse(text)).toThrow();
    const plain = stripAnsi(text);
    expect(plain).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] WARN \(\d+\): worker exited unexpectedly\n/);
    expect(plain).toContain("worker: 1");
  });

  it("writes the terminal line before the call returns, so a following exit loses nothing", async () => {
    const out = capture(true);
    const logger = await createLogger({ level: "info", destination: out });
    logger.info("stopped");
    expect(stripAnsi(out.text())).toContain("INFO");
  });
});
