import { toBinary } from "@bufbuild/protobuf";
import { CallEventSchema } from "../../gen/im/v1/call_pb.js";
import type { CallEventOut } from "../core/call-model.js";
import { toWireCallEvent } from "../gateway/call-codec.js";
import type { Broker } from "./broker.js";
import type { CallEventPublisher } from "./call-event-publisher.js";
import type { Hub } from "./hub.js";
import { Publication, userChannel } from "./publication.js";

/**
 * Call events on user channels: each event is encoded once (im.v1.CallEvent), handed to this
 * process's hub and published once on `u:<user>` of every recipient for the other processes,
 * whose hubs write the same bytes to the user's devices (Connect and Subscribe).
 */
export class ChannelCallEventPublisher implements CallEventPublisher {
  readonly #origin: string;
  readonly #hub: Pick<Hub, "handle">;
  readonly #broker: Pick<Broker, "publish">;

  /** `origin` is this process's id among everything sharing the broker. */
  constructor(origin: string, hub: Pick<Hub, "handle">, broker: Pick<Broker, "publish">) {
    this.#origin = origin;
    this.#hub = hub;
    this.#broker = broker;
  }

  publish(userIds: readonly string[], event: CallEventOut): void {
    if (userIds.length === 0) return;
    const publication = Publication.callEvent(this.#origin, toBinary(CallEventSchema, toWireCallEvent(event)));
    for (const userId of new Set(userIds)) {
      const channel = userChannel(userId);
      this.#hub.handle(channel, publication);
      this.#broker.publish(channel, publication);
    }
  }
}
