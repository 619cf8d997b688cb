/**
 * The counters of a calls run. All are functions of the seed (no wall-clock figure), so they
 * are part of the reproducible report; the order of declaration is the order of the report.
 */
export class CallsStats {
  /** StartCalls the apps made (first attempts), skipped (device offline or already in a call), retried (same client_call_id). */
  starts = 0;
  startsSkipped = 0;
  startRetries = 0;
  /** Answers that said the client_call_id had started (or answered) the call before. */
  startsDuplicate = 0;
  /** Starts refused because the caller was in another call. */
  startsRefusedInCall = 0;
  /** Starts that answered the other user's call (glare). */
  glareAnswers = 0;
  /** Accepts answered with this device holding the call, refused as answered elsewhere, refused otherwise. */
  acceptsOk = 0;
  answeredElsewhere = 0;
  acceptsRefused = 0;
  declines = 0;
  cancels = 0;
  hangups = 0;
  /** Hangups the engines sent again (the first was lost or refused for now). */
  hangupRetries = 0;
  signals = 0;
  /** Renegotiations the engines asked for after lost signals, ICE restarts after reconnects, GetCall repairs. */
  renegotiations = 0;
  iceRestarts = 0;
  getCalls = 0;
  keepalives = 0;
  /** Requests that failed (refused, or no answer: connection lost, worker killed, timeout). */
  requestsFailed = 0;
  pushes = 0;
  pushesLost = 0;
  pushesDuplicated = 0;
  pushesReordered = 0;
  connects = 0;
  refused = 0;
  drops = 0;
  appCloses = 0;
  kills = 0;
  killsOnStart = 0;
  /** Workers killed right after they claimed due deadlines. */
  killsOnClaim = 0;
  /** Deadline claims; claims of a call whose creating worker life was dead by then; claims taken over after a dead claimer's lease. */
  claims = 0;
  claimsOfDeadCreators = 0;
  claimsTakenOver = 0;
  /** Calls the deadline ticks changed or finished. */
  deadlineChanges = 0;
  backgroundStoreFailures = 0;
  tickStoreFailures = 0;
  /** Virtual ms from the heal until every call had ended and every device agreed (-1: never). */
  convergedAfterMs = -1;
}
