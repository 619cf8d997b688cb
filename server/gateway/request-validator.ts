import type { DescMessage, DescService, MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { createValidator, violationsToProto } from "@bufbuild/protovalidate";
import { create } from "@bufbuild/protobuf";
import { ErrorDetailSchema, ErrorReason } from "../../gen/im/v1/message_pb.js";

/** Checks requests against the protovalidate rules declared in proto/. */
export interface RequestValidator {
  /** undefined when valid; otherwise INVALID_ARGUMENT listing each violated rule by field path. */
  check<D extends DescMessage>(schema: D, message: MessageShape<D>): ConnectError | undefined;
}

/**
 * A validator for the rules compiled into the generated descriptors. The rules of a message
 * type are planned on its first validation, which for the long connection's request frames
 * takes most of a second: `warm` plans every request of these services (and the messages
 * inside them) now, at start-up, instead of stalling the first devices that reach a fresh
 * worker.
 */
export function createRequestValidator(warm: readonly DescService[] = []): RequestValidator {
  const validator = createValidator();
  const planned = new Set<string>();
  const plan = (schema: DescMessage): void => {
    if (planned.has(schema.typeName)) return;
    planned.add(schema.typeName);
    validator.validate(schema, create(schema));
    for (const field of schema.fields) if (field.message !== undefined) plan(field.message);
  };
  for (const service of warm) for (const method of service.methods) plan(method.input);
  return {
    check(schema, message) {
      const result = validator.validate(schema, message);
      if (result.kind === "valid") return undefined;
      if (result.kind === "error") {
        return new ConnectError("request could not be validated", Code.Internal, undefined, undefined, result.error);
      }
      const [violations, violationsSchema] = violationsToProto(result.violations);
      const summary = result.violations.map((v) => v.toString()).join("; ");
      return new ConnectError(`invalid request: ${summary}`, Code.InvalidArgument, undefined, [
        { desc: ErrorDetailSchema, value: create(ErrorDetailSchema, { reason: ErrorReason.INVALID_ARGUMENT, retryable: false }) },
        { desc: violationsSchema, value: violations },
      ]);
    },
  };
}
