import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { DisconnectReason, DisconnectSchema } from "../../gen/im/v1/gateway_pb.js";
import { ErrorDetailSchema, ErrorReason } from "../../gen/im/v1/message_pb.js";
import { disconnectWords, errorWords } from "../../web/src/app/error-words.js";

function serverError(message: string, code: Code, reason: ErrorReason): ConnectError {
  return new ConnectError(message, code, undefined, [{ desc: ErrorDetailSchema, value: create(ErrorDetailSchema, { reason }) }]);
}

describe("errorWords()", () => {
  it.each([
    [serverError("message body is 70000 bytes; the limit is 65536", Code.InvalidArgument, ErrorReason.BODY_TOO_LARGE), "Message too large (message body is 70000 bytes; the limit is 65536)"],
    [serverError('not a member of "g:x"', Code.PermissionDenied, ErrorReason.NOT_MEMBER), 'You are not a member of this conversation (not a member of "g:x")'],
    [serverError("only the group's owner may remove other members", Code.PermissionDenied, ErrorReason.PERMISSION_DENIED), "Not allowed: only the group's owner may do that (only the group's owner may remove other members)"],
    [serverError("token expired", Code.Unauthenticated, ErrorReason.UNAUTHENTICATED), "Not signed in, or the sign-in expired: sign in again (token expired)"],
    [serverError("a group holds at most 3 members", Code.ResourceExhausted, ErrorReason.LIMIT_EXCEEDED), "Limit reached (a group holds at most 3 members)"],
    [serverError('conversation "g:x" does not exist', Code.NotFound, ErrorReason.CONVERSATION_NOT_FOUND), 'This conversation does not exist (conversation "g:x" does not exist)'],
    [new ConnectError("Failed to fetch", Code.Unavailable), "Cannot reach the server (Failed to fetch)"],
    [new ConnectError("cannot reach the server", Code.Unknown), "Cannot reach the server"],
    [new Error("boom"), "Cannot reach the server (boom)"],
  ])("says %s in words", (error, words) => {
    expect(errorWords(error)).toBe(words);
  });

  it("has words for every reason the server sends", () => {
    for (const reason of Object.values(ErrorReason).filter((v): v is ErrorReason => typeof v === "number" && v !== ErrorReason.UNSPECIFIED)) {
      expect(errorWords(serverError("", Code.Unknown, reason)), ErrorReason[reason]).not.toBe("Cannot reach the server");
    }
  });
});

describe("disconnectWords()", () => {
  it("has words for every disconnect reason", () => {
    const all = Object.values(DisconnectReason).filter((v): v is DisconnectReason => typeof v === "number");
    const words = all.map((reason) => disconnectWords(create(DisconnectSchema, { reason })));
    expect(new Set(words).size).toBe(all.length);
    expect(disconnectWords(create(DisconnectSchema, { reason: DisconnectReason.SERVER_SHUTDOWN }))).toMatch(/restarting/);
  });
});
