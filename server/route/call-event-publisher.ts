import type { CallEventOut } from "../core/call-model.js";

/**
 * How call events reach users: every live connection (Connect and Subscribe) of every user
 * in `userIds`, wherever it is. Best effort like every push: a device that missed an event
 * repairs with GetCall (the call's version, its signal numbers). Events published in order
 * for one user reach each of its connections in that order when nothing is lost.
 * The one adapter today sits on the DeliveryRouter (router-call-event-publisher.ts).
 */
export interface CallEventPublisher {
  publish(userIds: readonly string[], event: CallEventOut): void;
}
