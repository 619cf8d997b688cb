import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTokenVerifier, DEV_JWT_SECRET } from "../../server/gateway/auth.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

const run = promisify(execFile);

describe("the CLI", () => {
  let t: TestServer;
  const cli = (...args: string[]) => run(process.execPath, ["--import", "tsx", "server/cli.ts", ...args, "--target", t.baseUrl], { encoding: "utf8" });
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterAll(async () => {
    await t.stop();
  });

  it("mints a token the server accepts for that user", async () => {
    const { stdout } = await cli("token", "erin");
    const principal = await createTokenVerifier(DEV_JWT_SECRET).verify(`Bearer ${stdout.trim()}`);
    expect(principal.userId).toBe("erin");
  });

  it("sends, creates a group and lists sessions", async () => {
    expect((await cli("send", "--as", "alice", "--to", "bob", "hello", "there")).stdout).toMatch(/^d:alice:bob seq=1 prev_seq=0 id=\w{26}\n$/);
    const group = (await cli("create-group", "--as", "alice", "--title", "team", "--members", "bob")).stdout.trim();
    expect(group).toMatch(/^g:\w{26}$/);
    const { stdout } = await cli("sessions", "--as", "bob");
    expect(stdout.split("\n").filter(Boolean).map((l) => l.split("\t").slice(0, 3))).toEqual([
      [group, "team", "last_seq=0"],
      ["d:alice:bob", "alice", "last_seq=1"],
    ]);
  });

  it("reports a refusal with its code and exits non-zero", async () => {
    const err = (await cli("send", "--as", "dave", "--conversation", "d:alice:bob", "x").catch((e: unknown) => e)) as { code: number; stderr: string };
    expect(err.code).toBe(1);
    expect(err.stderr).toBe('error: [PermissionDenied] you are not a member of conversation "d:alice:bob"\n');
  });
});
