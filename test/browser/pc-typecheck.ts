/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
import type { CallClient } from "../../client/call-client.js";

// Compiles only while a browser's RTCPeerConnection is what CallClient.attach takes as is.
export const attach = (calls: CallClient, callId: string, pc: RTCPeerConnection): void => calls.attach(callId, pc);
