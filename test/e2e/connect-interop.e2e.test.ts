import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, it } from "vitest";
import { createConnectDriver } from "../interop/connect-driver.js";
import { expectReport } from "../interop/expect-report.js";
import { startInteropServer, type InteropServer } from "../interop/interop-server.js";
import { logTimes } from "../interop/plan-file.js";
import { runPlan } from "../interop/run-plan.js";

/** The project's own Connect client (connect-node, the Connect protocol over HTTP/2) runs the interop plan. */
describe("interop with the Connect protocol (connect-node)", () => {
  let server: InteropServer;
  beforeAll(async () => {
    server = await startInteropServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("runs the interop plan: long connection, unary calls, refusals with their ErrorDetail, Subscribe", async () => {
    const baseUrl = `http://${server.target}`;
    const started = Date.now();
    const report = await runPlan("connect-node", await server.plan(), createConnectDriver(createConnectTransport({ baseUrl, httpVersion: "2" }), baseUrl));
    logTimes("connect-node", { plan: Date.now() - started });
    expectReport(report, { protocol: "connect", rawDetails: false, contentTypes: ["unary", "stream"], cancelObserved: true });
  });
});
