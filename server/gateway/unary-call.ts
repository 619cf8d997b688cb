import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { TokenVerifier } from "./auth.js";
import { toConnectError } from "./errors.js";
import type { RequestValidator } from "./request-validator.js";

/** Runs one unary call: authenticate, validate against the proto rules, operate. */
export type UnaryRunner = <D extends DescMessage, T>(
  schema: D,
  req: MessageShape<D>,
  ctx: HandlerContext,
  op: (userId: string) => Promise<T>,
) => Promise<T>;

/**
 * The one path every unary call takes, so that each failure leaves as a ConnectError with
 * its code and detail, and unexpected ones are logged with their cause.
 */
export function createUnaryRunner(verifier: TokenVerifier, validator: RequestValidator, logger: Logger): UnaryRunner {
  return async (schema, req, ctx, op) => {
    try {
      const { userId } = await verifier.verify(ctx.requestHeader.get("authorization"));
      const invalid = validator.check(schema, req);
      if (invalid !== undefined) throw invalid;
      return await op(userId);
    } catch (error) {
      const connectError = toConnectError(error);
      if (connectError.cause !== undefined && !(connectError.cause instanceof ConnectError)) {
        logger.warn({ err: connectError.cause }, "request failed");
      }
      throw connectError;
    }
  };
}
