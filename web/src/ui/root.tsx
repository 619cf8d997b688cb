import { useEffect, useMemo, useState } from "preact/hooks";
import { ChatController } from "../app/chat-controller.js";
import { restoreSignIn, signOut, type TokenSource } from "../app/sign-in.js";
import type { WebProtocol } from "../app/transport.js";
import { ChatApp } from "./chat-app.js";
import { SignInPage } from "./sign-in-page.js";

/** Where the page's gateway is and how to talk to it. */
export interface PageConfig {
  readonly baseUrl: string;
  readonly protocol: WebProtocol;
}

/** The sign-in page until a token source exists, then the chat. */
export function Root({ config }: { config: PageConfig }) {
  // null: still looking for an earlier sign-in (hook, fragment, this tab's storage).
  const [tokens, setTokens] = useState<TokenSource | undefined | null>(null);
  useEffect(() => {
    restoreSignIn(config.baseUrl).then(setTokens, () => setTokens(undefined));
    // A #token=... link opened on this page (same document) signs in with that token.
    const onHash = () => {
      if (new URLSearchParams(location.hash.slice(1)).has("token")) restoreSignIn(config.baseUrl).then(setTokens, () => setTokens(undefined));
    };
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, [config.baseUrl]);
  if (tokens === null) return <p class="loading">Loading…</p>;
  if (tokens === undefined) return <SignInPage baseUrl={config.baseUrl} onSignedIn={setTokens} />;
  return (
    <ChatPage
      key={tokens.userId}
      config={config}
      tokens={tokens}
      onSignOut={() => {
        signOut();
        setTokens(undefined);
      }}
    />
  );
}

function ChatPage({ config, tokens, onSignOut }: { config: PageConfig; tokens: TokenSource; onSignOut: () => void }) {
  const controller = useMemo(
    () => new ChatController({ baseUrl: config.baseUrl, protocol: config.protocol, tokens, visible: () => document.visibilityState === "visible" }),
    [config, tokens],
  );
  useEffect(() => {
    void controller.start();
    return () => void controller.close();
  }, [controller]);
  return <ChatApp controller={controller} onSignOut={onSignOut} />;
}
