import type { ConnectError } from "@connectrpc/connect";
import type { ConnectResponse, Disconnect } from "../gen/im/v1/gateway_pb.js";
import type { FrameSink } from "../server/gateway/connection.js";
import type { Publication } from "../server/route/publication.js";
import type { Link } from "./network.js";

/** What a sink needs from the node process that owns its link. */
export interface SinkOwner {
  /** The process still runs: a dead one writes nothing. */
  readonly alive: boolean;
  /** Writes a push (the publication's device frame) to the link. */
  writePush(link: Link, publication: Publication): void;
  writeReply(link: Link, frame: ConnectResponse): void;
  /** Ends the stream from the server's side: nothing more is pushed to it (the hub lets go of it). */
  writeEnd(link: Link, disconnect: Disconnect | undefined, error: ConnectError | undefined): void;
  /** Sends an HTTP/2 PING on the link. */
  probe(link: Link): void;
}

/**
 * The FrameSink of a simulated long connection: what the production Connection writes goes
 * onto the simulated network as the lean path would write it (a push as its publication's
 * device frame bytes, an answer as a ConnectResponse). What waits is what is on its way to
 * the client; what the node has read is every frame and PING ack that arrived from it.
 */
export class SimFrameSink implements FrameSink {
  readonly #link: Link;
  readonly #owner: SinkOwner;
  #ended = false;
  /** The error status the stream ends with (a failed registration). */
  error: ConnectError | undefined;

  constructor(link: Link, owner: SinkOwner) {
    this.#link = link;
    this.#owner = owner;
  }

  push(publication: Publication): void {
    if (!this.#ended && this.#owner.alive) this.#owner.writePush(this.#link, publication);
  }

  reply(frame: ConnectResponse): void {
    if (!this.#ended && this.#owner.alive) this.#owner.writeReply(this.#link, frame);
  }

  heartbeat(): void {
    throw new Error("simulated long connections are bidirectional streams: they have no server heartbeat");
  }

  end(disconnect: Disconnect | undefined): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#owner.writeEnd(this.#link, disconnect, this.error);
  }

  queuedPushes(): number {
    return this.#link.queued;
  }

  queuedBytes(): number {
    return this.#link.queuedBytes;
  }

  bytesRead(): number {
    return this.#link.nodeBytes;
  }

  probe(): boolean {
    if (this.#ended || !this.#owner.alive) return false;
    this.#owner.probe(this.#link);
    return true;
  }
}
