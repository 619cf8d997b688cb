import { useLayoutEffect, useRef, useState } from "preact/hooks";

interface ComposerProps {
  readonly recipient: string;
  readonly disabled: boolean;
  /** Sends; returns a refusal in words, if any. */
  readonly onSend: (text: string) => string | undefined;
}

/** The message field: Enter sends, Shift+Enter starts a new line. Focused when a conversation opens. */
export function Composer({ recipient, disabled, onSend }: ComposerProps) {
  const [text, setText] = useState("");
  const [error, setError] = useState("");
  const field = useRef<HTMLTextAreaElement>(null);
  useLayoutEffect(() => field.current?.focus(), []);

  const send = () => {
    // The field's own value: what the person sees, even before the next render.
    const refusal = onSend(field.current?.value ?? text);
    setError(refusal ?? "");
    if (refusal === undefined) {
      setText("");
      if (field.current !== null) field.current.value = "";
    }
    field.current?.focus();
  };

  return (
    <form
      class="composer"
      onSubmit={(e) => {
        e.preventDefault();
        send();
      }}
    >
      <label for="composer-text">Message to {recipient}</label>
      <textarea
        ref={field}
        id="composer-text"
        rows={2}
        value={text}
        disabled={disabled}
        aria-describedby="composer-hint"
        onInput={(e) => setText(e.currentTarget.value)}
        onKeyDown={(e) => {
          if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            send();
          }
        }}
      />
      <button type="submit" disabled={disabled}>
        Send
      </button>
      <p id="composer-hint" class="hint">
        Enter sends; Shift+Enter starts a new line.
      </p>
      {error !== "" && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
    </form>
  );
}
