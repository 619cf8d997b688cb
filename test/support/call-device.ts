import { createClient, type Client, type Transport } from "@connectrpc/connect";
import { CallService, CallState, type Call, type CallEvent, type CallSignal } from "../../gen/im/v1/call_pb.js";
import type { ConnectRequest, ConnectResponse } from "../../gen/im/v1/gateway_pb.js";
import { CALL_REQUEST_TYPES, CALL_UNARY_METHODS } from "../../client/call-client.js";
import { ImClient } from "../../client/im-client.js";
import { waitFor } from "./test-server.js";

type Frame = ConnectRequest["frame"];
type Case = NonNullable<Frame["case"]>;
type Value<C extends Case> = Omit<Extract<Frame, { case: C }>["value"], "$typeName">;
type Answer<C extends Case> = Extract<ConnectResponse["frame"], { case: C }>["value"];

/**
 * One device of a user in call tests: an SDK connection that records the call events it is
 * pushed, and sends call operations as frames on the long connection (stream mode) or as
 * CallService unary calls (browser mode, events on Subscribe).
 */
export class CallDevice {
  readonly events: CallEvent[] = [];
  readonly client: ImClient;
  readonly #unary: Client<typeof CallService>;
  readonly #token: string;

  constructor(
    readonly userId: string,
    readonly deviceId: string,
    transport: Transport,
    token: string,
    readonly mode: "stream" | "browser" = "stream",
  ) {
    this.#token = token;
    this.client = new ImClient({ transport, token, mode, heartbeatIntervalMs: 1000, backoff: { baseMs: 20, maxMs: 200 } });
    this.client.on("callEvent", (e) => this.events.push(e));
    this.#unary = createClient(CallService, transport);
    this.client.start();
  }

  async live(): Promise<void> {
    await waitFor(() => this.client.state === "live", `${this.deviceId} live`);
  }

  /** A call operation with its device_id filled in where the request has one. */
  async op<C extends Case>(kind: C, value: Value<C>): Promise<Answer<C>> {
    const typeName = `im.v1.${TYPE_NAMES[kind]}`;
    const body = { $typeName: typeName, ...value } as never;
    if (this.mode === "stream") {
      const frame = await this.client.request({ case: kind, value: body } as Frame);
      return frame.value as Answer<C>;
    }
    const method = UNARY[kind] as keyof Client<typeof CallService>;
    const fn = this.#unary[method] as unknown as (req: unknown, options: unknown) => Promise<Answer<C>>;
    return fn.call(this.#unary, body, { headers: { authorization: `Bearer ${this.#token}` } });
  }

  /** Snapshots of one call pushed to this device, in arrival order. */
  snapshots(callId: string): Call[] {
    return this.events.flatMap((e) => (e.event.case === "call" && e.event.value.callId === callId ? [e.event.value] : []));
  }

  /** The newest snapshot (highest version) of a call. */
  latest(callId: string): Call | undefined {
    return this.snapshots(callId).reduce<Call | undefined>((best, c) => (best === undefined || c.version > best.version ? c : best), undefined);
  }

  signals(callId: string): CallSignal[] {
    return this.events.flatMap((e) => (e.event.case === "signal" && e.event.value.callId === callId ? [e.event.value] : []));
  }

  /** Waits for a call pushed to this device whose newest snapshot satisfies `test`. */
  async waitForCall(test: (c: Call) => boolean, what: string, timeoutMs = 10_000): Promise<Call> {
    let found: Call | undefined;
    await waitFor(
      () => {
        const ids = new Set(this.events.flatMap((e) => (e.event.case === "call" ? [e.event.value.callId] : [])));
        for (const id of ids) {
          const c = this.latest(id);
          if (c !== undefined && test(c)) found = c;
        }
        return found !== undefined;
      },
      `${this.deviceId}: ${what}`,
      timeoutMs,
    );
    return found!;
  }

  async waitForState(callId: string, state: CallState, timeoutMs = 10_000): Promise<Call> {
    return this.waitForCall((c) => c.callId === callId && c.state === state, `call ${callId} in state ${CallState[state]}`, timeoutMs);
  }

  close(): Promise<void> {
    return this.client.close();
  }
}

const TYPE_NAMES: Record<Case, string> = {
  send: "SendRequest",
  sync: "SyncRequest",
  fetchRange: "FetchRangeRequest",
  markRead: "MarkReadRequest",
  ping: "PingRequest",
  ...CALL_REQUEST_TYPES,
};

const UNARY: Partial<Record<Case, string>> = CALL_UNARY_METHODS;
