/** Supplies tokens for one signed-in user (see sign-in.ts for where they come from). */
export interface TokenSource {
  readonly userId: string;
  /** "hook", "fragment" or "dev": how the user signed in. */
  readonly kind: "hook" | "fragment" | "dev";
  /** A token that is valid now (fetched anew when the last one is about to expire). */
  token(): Promise<string>;
}
