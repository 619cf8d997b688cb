/**
 * The run's counters. All are functions of the seed (no wall-clock figure here), so they are
 * part of the reproducible output. Plain numeric fields: the order of declaration is the
 * order of the report.
 */
export class Stats {
  /** Sends the simulated apps asked for. */
  appSends = 0;
  /** Sends refused at once because the outbox was full. */
  sendsRejected = 0;
  /** Sends acknowledged to the app. */
  acked = 0;
  /** Sends the server refused for good (not retryable). */
  sendsFailed = 0;
  /** Sends retransmitted (after a reconnect or a retryable failure). */
  resends = 0;
  /** Messages appended to the store's logs. */
  stored = 0;
  /** Messages delivered to apps (each message once per device). */
  deliveries = 0;
  /** Messages published by their owner process (once each, on one or two channels). */
  publications = 0;
  /** Publications lost, duplicated or held back on the hop from the bus to a subscribed process. */
  publicationsLost = 0;
  publicationsDuplicated = 0;
  publicationsReordered = 0;
  /** Publications that did not cross a partition (or reached a process that had died). */
  publicationsCut = 0;
  /** Pushes written to connections (device frames). */
  pushes = 0;
  /** Frames that arrived on a connection that no longer existed. */
  framesLost = 0;
  connects = 0;
  /** Connection attempts to a node that was down. */
  refused = 0;
  /** Connections the network dropped. */
  drops = 0;
  /** Connections the client abandoned for silence (heartbeat timeout). */
  clientTimeouts = 0;
  /** Connections the server closed for silence. */
  serverTimeouts = 0;
  slowConsumerDisconnects = 0;
  /** Connections the server ended because their token expired. */
  tokenExpiries = 0;
  /** Connections told SERVER_SHUTDOWN by a draining node. */
  shutdownDisconnects = 0;
  /** Connections the server ended with PROTOCOL_ERROR. */
  protocolErrors = 0;
  /** Streams refused before they were registered (token, connection bound, registration failure). */
  refusedStreams = 0;
  /** Connections closed by the client after a failed sync or fetch. */
  failedRequests = 0;
  pings = 0;
  syncs = 0;
  /** Syncs sent by idle connections (the idle-resync fix). */
  resyncs = 0;
  fetches = 0;
  markReads = 0;
  /** Gaps the engines found (a fetch started with no gap open) and repaired (cursor past the gap). */
  gapsFound = 0;
  gapsRepaired = 0;
  longestRepairMs = 0;
  /** The longest a push waited on a live link before its client showed it (the shown checker). */
  longestShownMs = 0;
  /** Fetch answers with has_more whose rest the client had to fetch at once (the pagedRest checker). */
  pagedRestOwed = 0;
  /** Gaps the engines gave up on until the next sync. */
  stuck = 0;
  storeTimeoutsAfterWrite = 0;
  storeFailuresBeforeWrite = 0;
  storeReadFailures = 0;
  /** Store calls that failed because their node was cut off from the store. */
  storeCutFailures = 0;
  storms = 0;
  partitions = 0;
  crashes = 0;
  /** Graceful drains (SIGTERM), and those whose connections did not all close within the drain timeout. */
  drains = 0;
  drainsTimedOut = 0;
  /** Probes of the adversarial clients, and those refused as documented. */
  adversaryProbes = 0;
  adversaryRefused = 0;
  /** Virtual ms from the heal to the moment every device matched the server (-1: never). */
  convergedAfterMs = -1;
}
