import { useEffect, useRef, useState } from "preact/hooks";
import type { CallController, CallView } from "../app/call-controller.js";
import type { ChatController } from "../app/chat-controller.js";

/** The page's call controller once the SDK is open, re-rendering on every change of its call. */
export function useCalls(controller: ChatController): { calls: CallController | undefined; view: CallView | undefined } {
  const [calls, setCalls] = useState<CallController | undefined>(undefined);
  const [, setTick] = useState(0);
  useEffect(() => {
    let off: (() => void) | undefined;
    let gone = false;
    void controller.calls.then((c) => {
      if (gone) return;
      setCalls(c);
      off = c.subscribe(() => setTick((n) => n + 1));
    });
    return () => {
      gone = true;
      off?.();
    };
  }, [controller]);
  return { calls, view: calls?.view };
}

const PHASE_WORDS = {
  calling: "Calling…",
  ringing: "Ringing…",
  incoming: "is calling you",
  connecting: "Connecting…",
  connected: "Connected",
  ended: "",
} as const;

function Video({ stream, muted, label }: { stream: MediaStream | undefined; muted: boolean; label: string }) {
  const ref = useRef<HTMLVideoElement>(null);
  useEffect(() => {
    if (ref.current !== null && ref.current.srcObject !== (stream ?? null)) ref.current.srcObject = stream ?? null;
  });
  return <video ref={ref} class="call-video" aria-label={label} data-testid={label === "You" ? "local-video" : "remote-video"} autoplay playsInline muted={muted} />;
}

/** The call being held: an incoming banner (Accept, Decline), or the call's state with Hang up and its video. */
export function CallPanel({ controller }: { controller: ChatController }) {
  const { calls, view } = useCalls(controller);
  if (calls === undefined || view === undefined) return null;
  const words = view.phase === "ended" ? view.ended : view.phase === "incoming" ? `${view.peerUserId} ${PHASE_WORDS.incoming}` : `${PHASE_WORDS[view.phase]} ${view.peerUserId}`;
  return (
    <section class="call" data-testid="call" data-phase={view.phase} data-call-id={view.callId} aria-label={`Call with ${view.peerUserId}`}>
      <p class="call-state" role="status" aria-live="polite">
        {words}
      </p>
      {view.phase === "incoming" && (
        <>
          <button type="button" class="accept" onClick={() => void calls.accept()}>
            Accept
          </button>
          <button type="button" onClick={() => void calls.decline()}>
            Decline
          </button>
        </>
      )}
      {(view.phase === "calling" || view.phase === "ringing" || view.phase === "connecting" || view.phase === "connected") && (
        <button type="button" class="hangup" onClick={() => void calls.hangup()}>
          Hang up
        </button>
      )}
      {view.phase === "ended" && (
        <button type="button" onClick={() => calls.dismiss()}>
          Close
        </button>
      )}
      {(view.phase === "connecting" || view.phase === "connected") && (
        <div class="call-videos">
          <Video stream={calls.remote} muted={false} label={view.peerUserId} />
          <Video stream={calls.local} muted={true} label="You" />
        </div>
      )}
    </section>
  );
}

/** The Call button of a direct conversation; disabled while a call is held or the page is not live. */
export function CallButton({ controller, peerUserId, live }: { controller: ChatController; peerUserId: string; live: boolean }) {
  const { calls, view } = useCalls(controller);
  const busy = view !== undefined && view.phase !== "ended";
  return (
    <button
      type="button"
      class="call-start"
      disabled={calls === undefined || busy || !live}
      onClick={() => {
        void calls?.start(peerUserId).then((refusal) => {
          if (refusal !== undefined) controller.notify(refusal);
        });
      }}
    >
      Call
    </button>
  );
}
