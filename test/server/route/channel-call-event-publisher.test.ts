import { fromBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { CallEventSchema, SdpType } from "../../../gen/im/v1/call_pb.js";
import { ConnectResponseSchema, SubscribeResponseSchema } from "../../../gen/im/v1/gateway_pb.js";
import { createCall as newCall } from "../../../server/core/call-machine.js";
import { TEST_TIMEOUTS } from "../../support/call-harness.js";

const createCall = () =>
  newCall({ callId: "c", conversationId: "d:ann:ben", callerId: "ann", callerDeviceId: "a1", clientCallId: "k", topology: "p2p", video: true, calleeIds: ["ben"], busyUserIds: [] }, 5, TEST_TIMEOUTS);
import { ChannelCallEventPublisher } from "../../../server/route/channel-call-event-publisher.js";
import { ENVELOPE_HEADER_BYTES, Publication } from "../../../server/route/publication.js";

describe("ChannelCallEventPublisher", () => {
  it("publishes one encoded CallEvent on each recipient's user channel, to the hub and the broker", () => {
    const handled: [string, Publication][] = [];
    const published: [string, Publication][] = [];
    const publisher = new ChannelCallEventPublisher("w1", { handle: (c, p) => void handled.push([c, p]) }, { publish: (c, p) => void published.push([c, p]) });
    publisher.publish(["ann", "ben", "ann"], { type: "call", call: createCall() });
    expect(handled.map(([c]) => c)).toEqual(["u:ann", "u:ben"]);
    expect(published.map(([c]) => c)).toEqual(["u:ann", "u:ben"]);
    // One publication object for every channel: encoded once.
    expect(new Set(handled.map(([, p]) => p)).size).toBe(1);
  });

  it("writes call events as field 20 of Connect and Subscribe frames, and survives the broker's encoding", () => {
    let pub: Publication | undefined;
    const capture = new ChannelCallEventPublisher("w1", { handle: (_c, p) => void (pub = p) }, { publish: () => {} });
    capture.publish(["ben"], { type: "signal", callId: "c", signalSeq: 2, prevSignalSeq: 1, fromUserId: "ann", fromDeviceId: "a1", toDeviceId: "b1", payload: { kind: "description", type: "answer", sdp: "v=0", iceRestart: true } });
    const back = Publication.decode(pub!.encode());
    expect(back.forDevices).toBe(true);
    for (const [kind, schema] of [["connect", ConnectResponseSchema], ["subscribe", SubscribeResponseSchema]] as const) {
      const frame = fromBinary(schema, back.frame(kind).subarray(ENVELOPE_HEADER_BYTES));
      expect(frame.frame.case).toBe("callEvent");
      const event = frame.frame.value as ReturnType<typeof fromBinary<typeof CallEventSchema>>;
      expect(event.event.case === "signal" && event.event.value).toMatchObject({ signalSeq: 2n, prevSignalSeq: 1n, toDeviceId: "b1" });
      expect(event.event.case === "signal" && event.event.value.signal.value).toMatchObject({ type: SdpType.ANSWER, sdp: "v=0", iceRestart: true });
    }
    expect(back.connectResponse().frame.case).toBe("callEvent");
    expect(back.bytes).toBeGreaterThan(0);
  });
});
