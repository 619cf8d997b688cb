/**
 * A short trace of what happened to one conversation: the last `linesMax` events that touched
 * it (sends, store writes and faults, pushes and their fates, deliveries, syncs, fetches, and
 * the connection events of devices seen in it). Off unless a conversation is named, so a
 * normal run pays one comparison per trace point; after a violation the simulator replays the
 * same seed with the trace on (a run is a function of its seed) and prints it.
 */
export class Trace {
  /** The traced conversation, or undefined when tracing is off. */
  readonly conversationId: string | undefined;
  readonly #linesMax: number;
  readonly #lines: string[] = [];
  /** Devices that touched the conversation: their connection events are traced too. */
  readonly #devices = new Set<number>();

  constructor(conversationId: string | undefined, linesMax = 40) {
    this.conversationId = conversationId;
    this.#linesMax = linesMax;
  }

  /** Whether events of `conversationId` are traced. */
  wants(conversationId: string): boolean {
    return conversationId === this.conversationId;
  }

  /** Whether connection events of the device are traced. */
  wantsDevice(device: number): boolean {
    return this.conversationId !== undefined && this.#devices.has(device);
  }

  /** Records an event of the traced conversation; `device` (if any) joins the traced devices. */
  add(nowMs: number, text: string, device?: number): void {
    if (device !== undefined) this.#devices.add(device);
    this.#lines.push(`${String(nowMs).padStart(8)} ms  ${text}`);
    if (this.#lines.length > this.#linesMax) this.#lines.shift();
  }

  /** The recorded lines, oldest first. */
  lines(): string[] {
    return [...this.#lines];
  }
}
