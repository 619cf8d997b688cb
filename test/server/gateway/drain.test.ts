import { describe, expect, it } from "vitest";
import { DisconnectReason } from "../../../gen/im/v1/gateway_pb.js";
import { drainConnections, type DrainDeps } from "../../../server/gateway/drain.js";

/** A connection that records its disconnect; it leaves the registry when `close` is called. */
function fakeConnection(registry: Set<unknown>) {
  const conn = {
    told: undefined as { reason: DisconnectReason; reconnectAfterMs: number } | undefined,
    disconnect(reason: DisconnectReason, _message: string, reconnectAfterMs: number) {
      conn.told = { reason, reconnectAfterMs };
    },
    close() {
      registry.delete(conn);
    },
  };
  registry.add(conn);
  return conn;
}

/** A clock that only moves when the drain waits: each wait advances it by its duration. */
function steppedDeps(spread: number[], onWait: (nowMs: number) => void = () => {}): DrainDeps & { readonly waits: number[] } {
  let now = 1_000;
  const waits: number[] = [];
  let draw = 0;
  return {
    waits,
    clock: { nowMs: () => now },
    randomInt: (max) => {
      const value = spread[draw++ % spread.length]!;
      expect(value).toBeLessThan(max);
      return value;
    },
    wait: async (ms) => {
      waits.push(ms);
      now += ms;
      onWait(now);
    },
  };
}

describe("drainConnections()", () => {
  it("tells every connection SERVER_SHUTDOWN with a delay drawn in [0, spread], and resolves once every one has closed", async () => {
    const registry = new Set<unknown>();
    const a = fakeConnection(registry);
    const b = fakeConnection(registry);
    // a closes after the first poll, b after the third.
    const deps = steppedDeps([7, 4_999], (now) => {
      if (now >= 1_020) a.close();
      if (now >= 1_060) b.close();
    });
    const drained = await drainConnections(registry as Set<typeof a>, { drainTimeoutMs: 10_000, reconnectSpreadMs: 5_000 }, deps);
    expect(drained).toBe(true);
    expect(a.told).toEqual({ reason: DisconnectReason.SERVER_SHUTDOWN, reconnectAfterMs: 7 });
    expect(b.told).toEqual({ reason: DisconnectReason.SERVER_SHUTDOWN, reconnectAfterMs: 4_999 });
    expect(deps.waits).toEqual([20, 20, 20]);
  });

  it("gives up at the deadline on the injected clock when a connection never closes", async () => {
    const registry = new Set<unknown>();
    fakeConnection(registry);
    const deps = steppedDeps([0]);
    const drained = await drainConnections(registry as Set<ReturnType<typeof fakeConnection>>, { drainTimeoutMs: 100, reconnectSpreadMs: 0, pollMs: 30 }, deps);
    expect(drained).toBe(false);
    expect(deps.waits).toEqual([30, 30, 30, 30]);
    expect(registry.size).toBe(1);
  });

  it("returns at once with nothing to drain", async () => {
    const deps = steppedDeps([0]);
    expect(await drainConnections(new Set(), { drainTimeoutMs: 100, reconnectSpreadMs: 10 }, deps)).toBe(true);
    expect(deps.waits).toEqual([]);
  });
});
