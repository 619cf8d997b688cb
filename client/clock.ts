/**
 * Time as the client's logic sees it. The SDK passes a monotonic system clock; the simulator
 * passes its virtual time. The pure client code never reads the system time itself.
 */
export interface Clock {
  /** Milliseconds from an arbitrary origin; never decreases. */
  nowMs(): number;
}

/** A clock that stands still at 0: without a clock, every wait is measured from time 0. */
export const STOPPED_CLOCK: Clock = { nowMs: () => 0 };
