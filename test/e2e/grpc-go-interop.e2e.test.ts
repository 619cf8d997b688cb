import { afterAll, beforeAll, describe, it } from "vitest";
import { expectReport } from "../interop/expect-report.js";
import { startInteropServer, type InteropServer } from "../interop/interop-server.js";
import type { Report } from "../interop/plan.js";
import { logTimes, writePlanFile } from "../interop/plan-file.js";
import { prepareGoClient, runClient, type InteropClient } from "../interop/toolchains.js";

/**
 * a grpc-go client (test/interop/go/main.go) runs the interop plan against a server
 * process. The toolchain is installed by the test itself (never skipped, under CI or not).
 */
describe("interop with a grpc-go client", () => {
  let server: InteropServer;
  let client: InteropClient;
  beforeAll(async () => {
    [client, server] = await Promise.all([prepareGoClient(), startInteropServer()]);
  }, 600_000);
  afterAll(async () => {
    await server?.stop();
  });

  it("runs the interop plan: long connection, unary calls, refusals with their ErrorDetail, Subscribe", async () => {
    const plan = writePlanFile(await server.plan());
    try {
      const started = Date.now();
      const report = (await runClient(client, plan.path)) as Report;
      logTimes(report.stack, { prepared: client.preparedMs, plan: Date.now() - started });
      expectReport(report, { protocol: "grpc", rawDetails: true, contentTypes: ["unary", "stream"], cancelObserved: true });
    } finally {
      plan.remove();
    }
  });
});
