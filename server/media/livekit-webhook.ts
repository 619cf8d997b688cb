import type { ServerResponse } from "node:http";
import type { ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import { WebhookReceiver } from "livekit-server-sdk";
import type { Logger } from "pino";

/** The path LiveKit posts its webhooks to (configure `webhook.urls` with it). */
export const LIVEKIT_WEBHOOK_PATH = "/livekit/webhook";

const BODY_BYTES_MAX = 64 * 1024;

/** What the webhook tells. */
export interface MediaPresenceSink {
  mediaPresence(roomName: string, identity: string, joined: boolean): Promise<void>;
  mediaRoomFinished(roomName: string): Promise<void>;
}

type Fallback = NonNullable<ConnectNodeAdapterOptions["fallback"]>;
type Request = Parameters<Fallback>[0];
type Response = Parameters<Fallback>[1];

/** Serves one HTTP route beside the RPCs (connect-node's fallback); false when the request is not its. */
export type HttpRoute = (req: Request, res: Response) => boolean;

/**
 * Handles LiveKit's webhooks on the gateway's port: the body's signature is checked
 * (the Authorization header is a JWT signed with the API secret carrying the body's SHA-256),
 * then participant_joined / participant_left / room_finished become room membership.
 * Unsigned, badly signed or oversized posts are refused and change nothing. Returns false
 * for requests that are not for it.
 */
export function createLivekitWebhookHandler(options: {
  apiKey: string;
  apiSecret: string;
  sink: MediaPresenceSink;
  logger: Logger;
  /** Told the name of every webhook whose signature checked out (for stats). */
  onVerified?: (event: string) => void;
}): HttpRoute {
  const receiver = new WebhookReceiver(options.apiKey, options.apiSecret);
  return (req, res) => {
    if (req.url !== LIVEKIT_WEBHOOK_PATH) return false;
    if (req.method !== "POST") {
      reply(res, 405, "POST only");
      return true;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    req.on("data", (chunk: Buffer) => {
      size += chunk.byteLength;
      if (size > BODY_BYTES_MAX) {
        if (!refused) reply(res, 413, "body too large");
        refused = true;
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      if (refused) return;
      const body = Buffer.concat(chunks).toString("utf8");
      const auth = req.headers.authorization;
      receiver.receive(body, typeof auth === "string" ? auth : undefined).then(
        async (event) => {
          options.onVerified?.(event.event);
          const room = event.room?.name ?? "";
          const identity = event.participant?.identity ?? "";
          if ((event.event === "participant_joined" || event.event === "participant_left") && room !== "" && identity !== "") {
            await options.sink.mediaPresence(room, identity, event.event === "participant_joined");
          } else if (event.event === "room_finished" && room !== "") {
            await options.sink.mediaRoomFinished(room);
          }
          reply(res, 200, "ok");
        },
        (error: unknown) => {
          options.logger.warn({ err: error }, "refused a media server webhook");
          reply(res, 401, "bad webhook signature");
        },
      ).catch((error: unknown) => {
        options.logger.warn({ err: error }, "media server webhook failed");
        reply(res, 500, "failed");
      });
    });
    return true;
  };
}

function reply(res: Response, status: number, text: string): void {
  if (res.headersSent) return;
  const r = res as unknown as ServerResponse;
  r.writeHead(status, { "content-type": "text/plain" });
  r.end(text);
}
