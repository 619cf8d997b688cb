import { fromJson, getOption, hasOption, toBinary, toJson, type DescMessage, type JsonValue, type MessageShape } from "@bufbuild/protobuf";
import { field, FieldRulesSchema, message, MessageRulesSchema, oneof, OneofRulesSchema } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { ConnectRequestSchema, PingRequestSchema, SyncCursorSchema, SyncRequestSchema, type ConnectRequest } from "../../gen/im/v1/gateway_pb.js";

/**
 * The protovalidate rules of the frames that plainlyValid() evaluates by hand, as the
 * descriptors declared them when it was written (gateway.proto). Anything else in the
 * descriptors (a rule added, changed or removed on these messages) turns the shortcut off.
 */
const RULES_WRITTEN_FOR: Readonly<Record<string, JsonValue>> = {
  "im.v1.ConnectRequest": { "(oneof frame)": { required: true }, request_id: { uint64: { gt: "0" } } },
  "im.v1.PingRequest": {},
  "im.v1.SyncRequest": { cursors: { repeated: { maxItems: "10000" } }, max_messages_per_conversation: { uint32: { lte: 1000 } }, max_sessions: { uint32: { lte: 1000 } } },
  "im.v1.SyncCursor": { conversation_id: { string: { minLen: "1", maxLen: "140" } } },
};

/** The rules a message declares (its own, its oneofs', its fields'), as JSON; undefined when JSON would not show all of them (unknown fields, extensions). */
export function declaredRules(schema: DescMessage): JsonValue | undefined {
  const out: Record<string, JsonValue> = {};
  const add = <S extends DescMessage>(key: string, rulesSchema: S, rules: MessageShape<S>): boolean => {
    const json = toJson(rulesSchema, rules);
    // JSON is a faithful fingerprint only if it loses nothing: the binary form keeps unknown
    // fields and extensions (a predefined rule, say), JSON without a registry does not.
    if (!sameBytes(toBinary(rulesSchema, rules), toBinary(rulesSchema, fromJson(rulesSchema, json)))) return false;
    out[key] = json;
    return true;
  };
  if (hasOption(schema, message) && !add("(message)", MessageRulesSchema, getOption(schema, message))) return undefined;
  for (const o of schema.oneofs) if (hasOption(o, oneof) && !add(`(oneof ${o.name})`, OneofRulesSchema, getOption(o, oneof))) return undefined;
  for (const f of schema.fields) if (hasOption(f, field) && !add(f.name, FieldRulesSchema, getOption(f, field))) return undefined;
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The fields of the frames plainlyValid() evaluates, as they were when it was written: a field
 * added to one of them (a message field whose type has rules of its own, say) turns it off too.
 */
const FIELDS_WRITTEN_FOR: Readonly<Record<string, string>> = {
  "im.v1.PingRequest": "client_time_ms:scalar",
  "im.v1.SyncRequest": "cursors:list:im.v1.SyncCursor max_messages_per_conversation:scalar max_sessions:scalar",
  "im.v1.SyncCursor": "conversation_id:scalar last_seq:scalar read_seq:scalar",
};

/** A message's fields as "name:kind[:message type]", in declaration order. */
export function fieldShape(schema: DescMessage): string {
  return schema.fields
    .map((f) => {
      const type = f.fieldKind === "message" ? f.message.typeName : f.fieldKind === "list" && f.listKind === "message" ? f.message.typeName : undefined;
      return type === undefined ? `${f.name}:${f.fieldKind}` : `${f.name}:${f.fieldKind}:${type}`;
    })
    .join(" ");
}

/** Whether the descriptors carry exactly the rules (and, below the frame, the fields) plainlyValid() was written for. */
export function precheckApplies(): boolean {
  return (
    [ConnectRequestSchema, PingRequestSchema, SyncRequestSchema, SyncCursorSchema].every(
      (schema) => JSON.stringify(declaredRules(schema)) === JSON.stringify(RULES_WRITTEN_FOR[schema.typeName]),
    ) && [PingRequestSchema, SyncRequestSchema, SyncCursorSchema].every((schema) => fieldShape(schema) === FIELDS_WRITTEN_FOR[schema.typeName])
  );
}

const APPLIES = precheckApplies();

/**
 * True only for a frame that protovalidate would accept: a ping, or a sync whose every value
 * is plainly within its bounds; false means "ask protovalidate", never "invalid", so every
 * refusal (code, message, violations) is still protovalidate's own. Pings and syncs are most
 * of what a long connection carries (a ping every heartbeat interval, a sync per connect),
 * and a protovalidate pass costs about as much as answering a ping.
 *
 * Evaluated by hand, exactly as the rules say (RULES_WRITTEN_FOR): request_id > 0; the frame
 * oneof is set (it is, with either case); PingRequest has no rules; SyncRequest: at most
 * 10,000 cursors, both limits at most 1,000; each cursor's conversation_id 1-140 characters
 * (protovalidate counts code points; a string of 1-140 UTF-16 units has 1-140 of them, and
 * any other length is left to protovalidate).
 */
export function plainlyValid(frame: ConnectRequest): boolean {
  if (!APPLIES || frame.requestId <= 0n) return false;
  const f = frame.frame;
  if (f.case === "ping") return true;
  if (f.case !== "sync") return false;
  const sync = f.value;
  if (sync.cursors.length > 10_000 || sync.maxMessagesPerConversation > 1000 || sync.maxSessions > 1000) return false;
  for (const cursor of sync.cursors) {
    const n = cursor.conversationId.length;
    if (n < 1 || n > 140) return false;
  }
  return true;
}
