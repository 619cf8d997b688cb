/**
 * The floor under the long-connection server, for `npm run bench:idle -- --server bare`: a
 * bare node:http2 server with the gateway's HTTP/2 settings (DEFAULT_EDGE_LIMITS) that answers
 * every stream with gRPC response headers and keeps it open, and nothing else (no token, no
 * hub, no store). Run as a child process; it sends its port and pid to the parent.
 */
import http2 from "node:http2";
import { DEFAULT_EDGE_LIMITS } from "../../server/gateway/gateway-server.js";

const edge = DEFAULT_EDGE_LIMITS;
const server = http2.createServer({
  maxSessionMemory: edge.maxSessionMemoryMb,
  maxHeaderListPairs: 64,
  settings: { maxConcurrentStreams: edge.maxConcurrentStreams, maxHeaderListSize: edge.maxHeaderListBytes },
});
server.on("stream", (stream) => {
  stream.on("error", () => {});
  stream.respond({ ":status": 200, "content-type": "application/grpc+proto", "grpc-accept-encoding": "gzip" });
});
server.on("session", (session) => session.on("error", () => {}));
server.listen({ host: "127.0.0.1", port: 0, backlog: 4096 }, () => {
  process.send!({ port: (server.address() as { port: number }).port, pid: process.pid });
});
process.on("disconnect", () => process.exit(0));
