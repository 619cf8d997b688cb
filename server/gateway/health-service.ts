import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthCheckResponseSchema,
} from "../../gen/grpc/health/v1/health_pb.js";
import type { HealthCheckRequest, HealthCheckResponse } from "../../gen/grpc/health/v1/health_pb.js";

/**
 * The serving status of a service, as `grpc.health.v1` defines it. `SERVICE_UNKNOWN` is only
 * ever sent by `Watch` for a service that has no status; never pass it to `setStatus`.
 */
export { ServingStatus };

/** The name under which the health of the whole server is reported. */
export const OVERALL_SERVER = "";

/** Default cap on concurrent `Watch` calls across all services. */
export const HEALTH_WATCHERS_MAX_DEFAULT = 256;

/** Options of {@link createHealthService}. */
export interface HealthServiceOptions {
  /** Concurrent `Watch` calls allowed; one more fails with RESOURCE_EXHAUSTED. */
  readonly watchersMax?: number;
}

/**
 * The `grpc.health.v1.Health` service (what Kubernetes gRPC probes, Envoy and grpc-health-probe
 * call). The vendored health.proto has no `List` method, so none is served.
 */
export interface HealthService {
  /** Registers `grpc.health.v1.Health` on the router. Call once per router. */
  register(router: ConnectRouter): void;
  /**
   * Sets the status of `service` ("" is the whole server) and pushes it to its watchers.
   * Ignored after `shutdown()`, so a late `setStatus(SERVING)` cannot undo a drain.
   */
  setStatus(service: string, status: ServingStatus): void;
  /**
   * Marks every service NOT_SERVING, sends NOT_SERVING to every watcher and ends every `Watch`
   * call; later `Watch` calls get NOT_SERVING and end at once. Idempotent. Call it before
   * closing the HTTP/2 server, so that open `Watch` streams do not hold the close up.
   */
  shutdown(): void;
}

/** One open `Watch` call. Holds at most one undelivered status: newer ones replace it. */
interface Watcher {
  readonly service: string;
  pending: ServingStatus | undefined;
  closed: boolean;
  wake: () => void;
}

const noop = (): void => {};

/**
 * Creates a health service in which only the overall server ("") is known, as SERVING.
 * `Check` of a service without a status fails with NOT_FOUND. `Watch` sends the current status
 * at once (SERVICE_UNKNOWN if none, without ending), then each change; a slow reader only gets
 * the latest status, never a backlog. It ends when the client cancels or on `shutdown()`.
 */
export function createHealthService(options: HealthServiceOptions = {}): HealthService {
  const watchersMax = options.watchersMax ?? HEALTH_WATCHERS_MAX_DEFAULT;
  const statuses = new Map<string, ServingStatus>([[OVERALL_SERVER, ServingStatus.SERVING]]);
  const watchers = new Set<Watcher>();
  let shutDown = false;

  function push(watcher: Watcher, status: ServingStatus): void {
    watcher.pending = status;
    watcher.wake();
  }

  function check(request: HealthCheckRequest): HealthCheckResponse {
    const status = statuses.get(request.service);
    if (status === undefined) {
      throw new ConnectError(`unknown service ${JSON.stringify(request.service)}`, Code.NotFound);
    }
    return create(HealthCheckResponseSchema, { status });
  }

  async function* watch(
    request: HealthCheckRequest,
    context: HandlerContext,
  ): AsyncGenerator<HealthCheckResponse> {
    if (watchers.size >= watchersMax) {
      throw new ConnectError("too many health watchers", Code.ResourceExhausted);
    }
    const watcher: Watcher = { service: request.service, pending: undefined, closed: shutDown, wake: noop };
    const onAbort = (): void => watcher.wake();
    watchers.add(watcher);
    context.signal.addEventListener("abort", onAbort);
    try {
      let last = shutDown
        ? ServingStatus.NOT_SERVING
        : (statuses.get(request.service) ?? ServingStatus.SERVICE_UNKNOWN);
      yield create(HealthCheckResponseSchema, { status: last });
      for (;;) {
        if (context.signal.aborted) return;
        const next = watcher.pending;
        watcher.pending = undefined;
        if (next !== undefined && next !== last) {
          last = next;
          yield create(HealthCheckResponseSchema, { status: last });
          continue;
        }
        if (watcher.closed) return;
        // No await between the checks above and installing `wake`: an abort or a push cannot
        // slip in between and be lost.
        await new Promise<void>((resolve) => {
          watcher.wake = resolve;
        });
        watcher.wake = noop;
      }
    } finally {
      watchers.delete(watcher);
      context.signal.removeEventListener("abort", onAbort);
    }
  }

  return {
    register(router) {
      router.service(Health, { check, watch });
    },
    setStatus(service, status) {
      if (shutDown) return;
      statuses.set(service, status);
      for (const watcher of watchers) {
        if (watcher.service === service) push(watcher, status);
      }
    },
    shutdown() {
      if (shutDown) return;
      shutDown = true;
      for (const service of statuses.keys()) statuses.set(service, ServingStatus.NOT_SERVING);
      for (const watcher of watchers) {
        watcher.closed = true;
        push(watcher, ServingStatus.NOT_SERVING);
      }
    },
  };
}
