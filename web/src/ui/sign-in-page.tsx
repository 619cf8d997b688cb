import { useEffect, useState } from "preact/hooks";
import { devSignIn, signInMode, tokenSignIn, type SignInMode, type TokenSource } from "../app/sign-in.js";

/** Development sign-in (pick a name) or, when the server needs real tokens, a token field. */
export function SignInPage({ baseUrl, onSignedIn }: { baseUrl: string; onSignedIn: (tokens: TokenSource) => void }) {
  const [mode, setMode] = useState<SignInMode | undefined>(undefined);
  const [value, setValue] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const probe = () => {
    setMode(undefined);
    void signInMode(baseUrl).then(setMode);
  };
  useEffect(probe, [baseUrl]);

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError("");
    const result = mode?.mode === "dev" ? await devSignIn(baseUrl, value.trim()) : tokenSignIn(value);
    setBusy(false);
    if (typeof result === "string") setError(result);
    else onSignedIn(result);
  };

  return (
    <main class="sign-in">
      <h1>microchat</h1>
      {mode === undefined && <p role="status">Asking the server how to sign in…</p>}
      {mode?.mode === "unreachable" && (
        <div>
          <p role="alert">{mode.error}</p>
          <button type="button" onClick={probe}>
            Try again
          </button>
        </div>
      )}
      {mode?.mode === "dev" && (
        <form onSubmit={submit}>
          <label for="sign-in-user">User name</label>
          <input
            id="sign-in-user"
            name="user"
            autoComplete="username"
            required
            maxLength={64}
            pattern="[A-Za-z0-9_.@\-]{1,64}"
            title="1-64 of A-Z a-z 0-9 _ . @ -"
            autoFocus
            value={value}
            onInput={(e) => setValue(e.currentTarget.value)}
            aria-describedby="sign-in-hint"
          />
          <button type="submit" disabled={busy}>
            Sign in
          </button>
          <p id="sign-in-hint" class="hint">
            Development sign-in: this server has no IM_JWT_SECRET, so anyone may pick any name.
          </p>
        </form>
      )}
      {mode?.mode === "token" && (
        <form onSubmit={submit}>
          <label for="sign-in-token">Token</label>
          <textarea id="sign-in-token" required rows={3} autoFocus value={value} onInput={(e) => setValue(e.currentTarget.value)} aria-describedby="sign-in-hint" />
          <button type="submit" disabled={busy}>
            Sign in
          </button>
          <p id="sign-in-hint" class="hint">
            This server needs a token from your sign-in service: paste it here, or open the page as <code>/#token=&lt;JWT&gt;</code>.
          </p>
        </form>
      )}
      {error !== "" && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
    </main>
  );
}
