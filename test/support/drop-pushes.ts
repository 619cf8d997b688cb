import type { Interceptor } from "@connectrpc/connect";
import type { Message } from "../../gen/im/v1/message_pb.js";

/**
 * A Connect interceptor that drops the pushed messages `drop` picks from every response stream
 * (the long connection and the browser push stream), as a lossy path between server and device
 * would: the client's gap repair must then close the hole.
 */
export function dropPushes(drop: (message: Message) => boolean): Interceptor {
  return (next) => async (req) => {
    const res = await next(req);
    if (!res.stream) return res;
    const source = res.message as AsyncIterable<{ frame?: { case?: string; value?: unknown } }>;
    async function* filtered() {
      for await (const response of source) {
        const frame = response.frame;
        if (frame?.case === "message" && drop(frame.value as Message)) continue;
        yield response;
      }
    }
    return { ...res, message: filtered() } as typeof res;
  };
}
