import { fromBinary } from "@bufbuild/protobuf";
import { CallEventSchema } from "../../gen/im/v1/call_pb.js";
import type { ConnectRequest, ConnectResponse } from "../../gen/im/v1/gateway_pb.js";
import type { CallOperations } from "./call-operations.js";

/** A push frame carrying an encoded im.v1.CallEvent (the same case name on Connect and Subscribe). */
export function callEventFrame(event: Uint8Array): { case: "callEvent"; value: ReturnType<typeof fromBinary<typeof CallEventSchema>> } {
  return { case: "callEvent", value: fromBinary(CallEventSchema, event) };
}

const CALL_FRAMES = new Set<ConnectRequest["frame"]["case"]>([
  "startCall",
  "ringCall",
  "acceptCall",
  "declineCall",
  "hangupCall",
  "callSignal",
  "getCall",
  "callKeepalive",
  "getIceServers",
  "createLiveRoom",
  "joinRoom",
  "setRole",
]);

/** Whether a request frame is call control (answered by `answerCallFrame`, in order per connection). */
export function isCallFrame(frame: ConnectRequest["frame"]): boolean {
  return CALL_FRAMES.has(frame.case);
}

/**
 * Answers a call-control frame of the long connection with the frame of the same name; the
 * same operations as CallService, so both paths give the same results. Throws ConnectErrors.
 */
export async function answerCallFrame(ops: CallOperations, userId: string, frame: ConnectRequest["frame"]): Promise<ConnectResponse["frame"]> {
  switch (frame.case) {
    case "startCall":
      return { case: "startCall", value: await ops.startCall(userId, frame.value) };
    case "ringCall":
      return { case: "ringCall", value: await ops.ring(userId, frame.value) };
    case "acceptCall":
      return { case: "acceptCall", value: await ops.accept(userId, frame.value) };
    case "declineCall":
      return { case: "declineCall", value: await ops.decline(userId, frame.value) };
    case "hangupCall":
      return { case: "hangupCall", value: await ops.hangup(userId, frame.value) };
    case "callSignal":
      return { case: "callSignal", value: await ops.signal(userId, frame.value) };
    case "getCall":
      return { case: "getCall", value: await ops.getCall(userId, frame.value) };
    case "callKeepalive":
      return { case: "callKeepalive", value: await ops.keepalive(userId, frame.value) };
    case "getIceServers":
      return { case: "getIceServers", value: await ops.getIceServers(userId) };
    case "createLiveRoom":
      return { case: "createLiveRoom", value: await ops.createLiveRoom(userId, frame.value) };
    case "joinRoom":
      return { case: "joinRoom", value: await ops.joinRoom(userId, frame.value) };
    case "setRole":
      return { case: "setRole", value: await ops.setRole(userId, frame.value) };
    default:
      throw new Error(`not a call frame: ${frame.case}`);
  }
}
