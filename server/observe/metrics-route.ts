import type { HttpRoute } from "../media/livekit-webhook.js";

/** Where Prometheus scrapes a node. */
export const METRICS_PATH = "/metrics";

/** Prometheus text exposition format 0.0.4. */
const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/**
 * GET /metrics: the node's metrics in the Prometheus text format, from `scrape` (every worker
 * of the node, merged); 503 when they could not be gathered.
 */
export function createMetricsRoute(scrape: () => Promise<string | undefined>): HttpRoute {
  return (req, res) => {
    const url = req.url ?? "";
    if (url !== METRICS_PATH && !url.startsWith(`${METRICS_PATH}?`)) return false;
    if (req.method !== "GET") {
      res.writeHead(405, { allow: "GET", "content-type": "text/plain" });
      res.end("method not allowed");
      return true;
    }
    scrape().then(
      (text) => {
        if (text === undefined) {
          res.writeHead(503, { "content-type": "text/plain" });
          res.end("metrics could not be gathered from the workers in time");
          return;
        }
        res.writeHead(200, { "content-type": CONTENT_TYPE });
        res.end(text);
      },
      (error: unknown) => {
        res.writeHead(500, { "content-type": "text/plain" });
        res.end(`metrics failed: ${(error as Error).message}`);
      },
    );
    return true;
  };
}
