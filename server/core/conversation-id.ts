import type { ConversationKind } from "./model.js";

const USER_ID = /^[A-Za-z0-9_.@-]{1,64}$/;
const GROUP_ID = /^g:[A-Za-z0-9_-]{1,64}$/;
const DIRECT_ID = /^d:([A-Za-z0-9_.@-]{1,64}):([A-Za-z0-9_.@-]{1,64})$/;

/** Whether `userId` is a valid user id: 1-64 of letters, digits and `_.@-`. */
export function isUserId(userId: string): boolean {
  return USER_ID.test(userId);
}

/**
 * The id of the direct conversation between two distinct users: the same whichever of them
 * asks, so the first message from either side creates the one conversation.
 */
export function directConversationId(userA: string, userB: string): string {
  return userA < userB ? `d:${userA}:${userB}` : `d:${userB}:${userA}`;
}

/** A conversation id taken apart; undefined when it is not a well-formed id. */
export type ParsedConversationId =
  | { readonly kind: "direct"; readonly userA: string; readonly userB: string }
  | { readonly kind: "group" };

/** Parses a conversation id; a direct id must name two distinct users in ascending order. */
export function parseConversationId(id: string): ParsedConversationId | undefined {
  if (GROUP_ID.test(id)) return { kind: "group" };
  const m = DIRECT_ID.exec(id);
  if (m === null) return undefined;
  const userA = m[1]!;
  const userB = m[2]!;
  if (!(userA < userB)) return undefined;
  return { kind: "direct", userA, userB };
}

/** The kind of a well-formed conversation id. */
export function kindOf(id: string): ConversationKind | undefined {
  return parseConversationId(id)?.kind;
}
