import { ConnectError, createContextKey, createContextValues, type ContextValues, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import type { ConnectionProtocol } from "./connection-registry.js";

/** Set on requests that came over HTTP/1.1 (connect-node cannot tell a handler otherwise). */
const kHttp1 = createContextKey(false, { description: "the request came over HTTP/1.1" });

/** connect-node's `contextValues` hook: records the request's HTTP version for its handler. */
export function requestContextValues(req: { readonly httpVersionMajor: number }): ContextValues {
  return createContextValues().set(kHttp1, req.httpVersionMajor === 1);
}

/** How a long connection served by connect-node came (the lean path serves gRPC and Connect binary on HTTP/2). */
export function streamProtocolOf(ctx: HandlerContext): ConnectionProtocol {
  if (ctx.values.get(kHttp1)) return "http1";
  if (ctx.protocolName === "grpc-web") return "grpc_web";
  if (ctx.protocolName === "connect") return (ctx.requestHeader.get("content-type") ?? "").includes("json") ? "connect_json" : "connect";
  return "grpc";
}

/**
 * Observes the requests the gateway answers (metrics, traces). Absent, the gateway measures
 * and traces nothing and builds nothing per request for it.
 */
export interface RequestObserver {
  /**
   * Runs request `method` ("Connect/send" for a frame of the long connection,
   * "GatewayService/Send" for a unary call): `run` resolves with the code the request ended
   * with (0 for OK) and never rejects. Work `run` starts belongs to the request (its trace).
   */
  observe(method: string, run: () => Promise<number>): Promise<void>;
  /** A request refused before it ran (it failed validation), with its code. */
  refused(method: string, code: number): void;
}

/** Observes every unary call connect-node serves (streams are counted as connections instead). */
export function observingInterceptor(observer: RequestObserver): Interceptor {
  return (next) => async (req) => {
    if (req.stream) return next(req);
    let response: Awaited<ReturnType<typeof next>> | undefined;
    let failure: unknown;
    let failed = false;
    await observer.observe(`${req.service.name}/${req.method.name}`, async () => {
      try {
        response = await next(req);
        return 0;
      } catch (error) {
        failed = true;
        failure = error;
        return ConnectError.from(error).code;
      }
    });
    if (failed) throw failure;
    return response!;
  };
}
