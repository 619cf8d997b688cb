import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import { ConnectRequestSchema, ConnectResponseSchema, PingResponseSchema, type ConnectRequest, type ConnectResponse } from "../../gen/im/v1/gateway_pb.js";
import type { Clock } from "../core/clock.js";
import { isCallFrame } from "./call-frames.js";
import type { Connection } from "./connection.js";
import { plainlyValid } from "./frame-precheck.js";
import { toConnectError, toRequestError } from "./errors.js";
import type { GatewayOperations } from "./gateway-operations.js";
import type { RequestValidator } from "./request-validator.js";
import type { RequestObserver } from "./request-context.js";

/** What answering the requests of long connections needs. */
export interface RequestLoopDeps {
  readonly operations: GatewayOperations;
  readonly validator: RequestValidator;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Answers call-control frames (server/calls-runtime.ts); absent: calls are not served. */
  readonly callFrames?: (userId: string, frame: ConnectRequest["frame"]) => Promise<ConnectResponse["frame"]>;
  /** Measures and traces each request (server/observe); absent: nothing is. */
  readonly observer?: RequestObserver;
}

/** "Connect/<frame>", the method name a frame's request is observed under, without building it per frame. */
const FRAME_METHODS = new Map<string | undefined, string>();
function frameMethod(frame: ConnectRequest["frame"]["case"]): string {
  let method = FRAME_METHODS.get(frame);
  if (method === undefined) FRAME_METHODS.set(frame, (method = `Connect/${frame ?? "unknown"}`));
  return method;
}

/**
 * The requests of one long connection: each validated, answered in a frame with the same
 * request_id, pings at once; sends applied in the order they were written (so a client's own
 * messages keep their order in every conversation), everything else concurrently up to the
 * connection's in-flight bound. Both the lean HTTP/2 path and connect-node's streams feed it.
 */
export class RequestLoop {
  readonly #deps: RequestLoopDeps;
  readonly #userId: string;
  readonly #conn: Connection;
  /** The last send taken, which the next one waits for; undefined before the first. */
  #sends: Promise<void> | undefined;
  /** The last call-control frame taken, likewise. */
  #callOps: Promise<void> | undefined;
  #running = 0;
  /** Resolves settled() callers once nothing runs. */
  #idle: (() => void)[] | undefined;

  constructor(deps: RequestLoopDeps, userId: string, conn: Connection) {
    this.#deps = deps;
    this.#userId = userId;
    this.#conn = conn;
  }

  /** Takes one request frame; false once the connection is ending (read nothing more). */
  take(frame: ConnectRequest): boolean {
    const { clock, validator } = this.#deps;
    const conn = this.#conn;
    conn.heard(clock.nowMs());
    if (conn.ending) return false;
    // Pings and plain syncs are checked by hand against the same rules; refusals are protovalidate's.
    const invalid = plainlyValid(frame) ? undefined : validator.check(ConnectRequestSchema, frame);
    if (invalid !== undefined) {
      this.#deps.observer?.refused(frameMethod(frame.frame.case), invalid.code);
      conn.reply(create(ConnectResponseSchema, { requestId: frame.requestId, frame: { case: "error", value: toRequestError(invalid) } }));
      return true;
    }
    if (frame.frame.case === "ping") {
      const pong = create(PingResponseSchema, { clientTimeMs: frame.frame.value.clientTimeMs, serverTimeMs: BigInt(clock.nowMs()) });
      conn.reply(create(ConnectResponseSchema, { requestId: frame.requestId, frame: { case: "pong", value: pong } }));
      return true;
    }
    if (!conn.begin()) return false;
    let task: Promise<void>;
    if (frame.frame.case === "send") task = this.#sends = (this.#sends ?? Promise.resolve()).then(() => this.#answer(frame));
    // Call control in order too: an answer before its signals, signals in order.
    else if (isCallFrame(frame.frame)) task = this.#callOps = (this.#callOps ?? Promise.resolve()).then(() => this.#answer(frame));
    else task = this.#answer(frame);
    this.#running++;
    void task.finally(() => {
      this.#running--;
      conn.end();
      if (this.#running === 0 && this.#idle !== undefined) {
        for (const resolve of this.#idle) resolve();
        this.#idle = undefined;
      }
    });
    return true;
  }

  /** Resolves once every request taken so far is answered. */
  settled(): Promise<void> {
    if (this.#running === 0) return Promise.resolve();
    return new Promise((resolve) => (this.#idle ??= []).push(resolve));
  }

  #answer(request: ConnectRequest): Promise<void> {
    const observer = this.#deps.observer;
    if (observer === undefined) return this.#reply(request).then(() => {});
    return observer.observe(frameMethod(request.frame.case), () => this.#reply(request));
  }

  /** Answers one request; resolves with the code it ended with (0: OK). */
  async #reply(request: ConnectRequest): Promise<number> {
    const { operations, logger } = this.#deps;
    const userId = this.#userId;
    const conn = this.#conn;
    let frame: ConnectResponse["frame"];
    let code = 0;
    try {
      switch (request.frame.case) {
        case "send":
          frame = { case: "send", value: await operations.send(userId, request.frame.value, conn.connectionId) };
          break;
        case "sync":
          frame = { case: "sync", value: await operations.sync(userId, request.frame.value) };
          break;
        case "fetchRange":
          frame = { case: "fetchRange", value: await operations.fetchRange(userId, request.frame.value) };
          break;
        case "markRead":
          frame = { case: "markRead", value: await operations.markRead(userId, request.frame.value, conn.connectionId) };
          break;
        default: {
          if (!isCallFrame(request.frame)) return 0;
          const calls = this.#deps.callFrames;
          if (calls === undefined) throw new ConnectError("calls are not served here", Code.Unimplemented);
          frame = await calls(userId, request.frame);
        }
      }
    } catch (error) {
      const connectError = toConnectError(error);
      if (connectError.cause !== undefined) logger.warn({ err: connectError.cause, userId }, "request failed");
      frame = { case: "error", value: toRequestError(connectError) };
      code = connectError.code;
    }
    conn.reply(create(ConnectResponseSchema, { requestId: request.requestId, frame }));
    return code;
  }
}
