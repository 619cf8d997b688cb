import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { JsonObject } from "@bufbuild/protobuf";
import { codeFromString } from "@connectrpc/connect/protocol-connect";
import type { ReportedError } from "./plan.js";
import type { Driver, DriverStream } from "./run-plan.js";
import { statusJson, statusJsonFromDetailsBin } from "./status-details.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
/** The project's buf (a dev dependency), called directly: npx would add a second process per call. */
export const BUF = path.join(ROOT, "node_modules/.bin/buf");

/** What `buf curl -v` printed about the response of its RPC: headers, then trailers. */
interface Verbose {
  headers: Record<string, string>;
  trailers: Record<string, string>;
}

/**
 * Reads `buf curl -v` stderr: "buf: < (#n) Name: value" lines of the RPC's stream (the last
 * stream number; reflection, when used, has the earlier ones), headers until the first empty
 * "<" line, trailers after it. Anything not prefixed "buf:" is buf's own output (the error JSON).
 */
function parseVerbose(stderr: string): Verbose & { rest: string } {
  const lines = stderr.split("\n");
  const rest = lines.filter((l) => !l.startsWith("buf: ")).join("\n");
  const streams = lines.map((l) => /^buf: < \(#(\d+)\)/.exec(l)?.[1]).filter((n): n is string => n !== undefined);
  const last = streams[streams.length - 1];
  const out: Verbose = { headers: {}, trailers: {} };
  let target: Record<string, string> | undefined;
  for (const line of lines) {
    const m = /^buf: < \(#(\d+)\) ?(.*)$/.exec(line);
    if (m === null || m[1] !== last) continue;
    const text = m[2]!;
    if (text.startsWith("HTTP/")) target = out.headers;
    else if (text === "") target = target === out.headers ? out.trailers : target;
    else if (target !== undefined) {
      const colon = text.indexOf(": ");
      if (colon > 0) target[text.slice(0, colon).toLowerCase()] = text.slice(colon + 2);
    }
  }
  return { ...out, rest };
}

/** An RPC failure as buf curl prints it (Connect's error JSON), with the trailers -v showed. */
function reported(errorJson: string, v: Verbose): ReportedError {
  const e = JSON.parse(errorJson) as { code: string; message?: string; details?: { type: string; value: string }[] };
  const code = codeFromString(e.code);
  if (code === undefined) throw new Error(`buf curl printed an unknown code: ${errorJson}`);
  const details = (e.details ?? []).map((d) => ({ typeUrl: `type.googleapis.com/${d.type}`, value: new Uint8Array(Buffer.from(d.value, "base64")) }));
  const bin = v.trailers["grpc-status-details-bin"] ?? null;
  // Cross-check: what buf decoded equals the trailer's google.rpc.Status.
  const status = statusJson(code, e.message ?? "", details);
  if (bin !== null && JSON.stringify(statusJsonFromDetailsBin(bin)) !== JSON.stringify(status)) {
    throw new Error(`buf curl's error ${errorJson} does not match grpc-status-details-bin ${bin}`);
  }
  return { code, message: e.message ?? "", status, detailsBin: bin };
}

/** Splits buf curl's stdout (pretty-printed JSON documents, one after another) into documents. */
export function splitJsonDocuments(text: string): { docs: JsonObject[]; rest: string } {
  const docs: JsonObject[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "{") {
      if (depth++ === 0) start = i;
    } else if (c === "}" && --depth === 0) {
      docs.push(JSON.parse(text.slice(start, i + 1)) as JsonObject);
      start = -1;
    }
  }
  const consumed = start >= 0 ? start : text.length;
  return { docs, rest: depth > 0 ? text.slice(consumed) : "" };
}

/** The plan's calls through `buf curl --protocol grpc` processes, schema from a buf image. */
export function createBufCurlDriver(baseUrl: string, schemaImage: string): Driver {
  const args = (path: string, token: string | undefined) => [
    "curl",
    "--schema",
    schemaImage,
    "--protocol",
    "grpc",
    "--http2-prior-knowledge",
    "-v",
    ...(token === undefined ? [] : ["-H", `authorization: Bearer ${token}`]),
    `${baseUrl}/${path}`,
  ];
  return {
    unary(step, request, token) {
      if (request instanceof Uint8Array) throw new Error(`${step.name}: buf curl only sends messages it encodes from JSON`);
      return new Promise((resolve, reject) => {
        const child = spawn(BUF, [...args(`${step.service}/${step.method}`, token), "-d", JSON.stringify(request)], { stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
        child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
        child.on("error", reject);
        child.on("exit", (code) => {
          const v = parseVerbose(stderr);
          try {
            // Exit code 0: success; an RPC failure exits with its gRPC code shifted left by 3.
            if (code === 0) resolve({ ok: JSON.parse(stdout) as JsonObject, headers: v.headers });
            else if (code !== null && code >= 8) resolve({ error: reported(v.rest, v), headers: v.headers, trailers: v.trailers });
            else reject(new Error(`buf curl ${step.name} failed (exit ${code}):\n${stderr}`));
          } catch (error) {
            reject(error as Error);
          }
        });
      });
    },
    stream(step, token) {
      const method = step.kind === "connect" ? "Connect" : "Subscribe";
      const child = spawn(BUF, [...args(`im.v1.GatewayService/${method}`, token), "-d", step.kind === "connect" ? "@-" : "{}"], { stdio: ["pipe", "pipe", "pipe"] });
      const frames: JsonObject[] = [];
      let pending = "";
      let stderr = "";
      child.stdout.setEncoding("utf8").on("data", (d: string) => {
        const { docs, rest } = splitJsonDocuments(pending + d);
        frames.push(...docs);
        pending = rest;
      });
      child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
      const ended = new Promise<ReportedError>((resolve) =>
        child.on("exit", (code, signal) => {
          const v = parseVerbose(stderr);
          if (code === 0) resolve({ code: 0, message: "", status: null, detailsBin: null });
          else if (code !== null && code >= 8) resolve(reported(v.rest, v));
          // Killed by cancel(): the process saw no status of its own.
          else resolve({ code: -1, message: `buf curl ended by ${signal ?? `exit ${code}`}`, status: null, detailsBin: null });
        }),
      );
      const stream: DriverStream = {
        frames,
        headers: () => parseVerbose(stderr).headers,
        write: (frame) => void child.stdin.write(`${JSON.stringify(frame)}\n`),
        closeSend: () => void child.stdin.end(),
        cancel: () => void child.kill("SIGTERM"),
        ended,
      };
      return stream;
    },
  };
}
