import cassandra from "cassandra-driver";
import { StoreUnavailableError } from "../core/result.js";

const { types, errors, policies } = cassandra;

/** Consistency levels a deployment may choose for reads and writes. */
export const CASSANDRA_CONSISTENCIES = ["LOCAL_QUORUM", "QUORUM", "EACH_QUORUM", "ALL", "LOCAL_ONE", "ONE"] as const;

/** A consistency level by name. */
export type CassandraConsistency = (typeof CASSANDRA_CONSISTENCIES)[number];

/** How to reach the cluster. */
export interface CassandraConnectionOptions {
  /** "host" or "host:port"; the first port given is used for every node the driver discovers (default 9042). */
  readonly contactPoints: readonly string[];
  /** The data centre the gateway runs in: the driver routes to it (token-aware) and LOCAL_* levels count in it. */
  readonly localDataCenter: string;
  /**
   * Reads and writes. LOCAL_QUORUM (default) is what the seq-ownership argument needs with a
   * replication factor above 1: a takeover's read must see every acknowledged write. ONE or
   * LOCAL_ONE are only safe with one replica. Lightweight transactions use LOCAL_SERIAL (SERIAL
   * for the non-local levels).
   */
  readonly consistency?: CassandraConsistency;
  /** Per-request timeout on the client side. Default 12 s (above the server's own write/read timeouts). */
  readonly requestTimeoutMs?: number;
  /** TCP connect timeout. Default 5 s. */
  readonly connectTimeoutMs?: number;
}

/** One row as the driver returns it. */
export type Row = cassandra.types.Row;

/** A statement with its parameters, for batches. */
export interface Statement {
  readonly query: string;
  readonly params: readonly unknown[];
}

/** What a lightweight transaction did: applied, or not with the current values of the compared columns. */
export interface CasResult {
  readonly applied: boolean;
  readonly row: Row | undefined;
}

/** Largest page the driver fetches at once, whatever the caller's limit. */
export const PAGE_ROWS_MAX = 500;

/**
 * The driver client with this store's defaults: prepared statements everywhere, one
 * consistency level, token-aware routing in the local data centre (the driver's default
 * policy), explicit idempotence, and every transient failure turned into
 * StoreUnavailableError. bigint columns are JS bigints (encoding.useBigIntAsLong).
 */
export class CassandraSession {
  readonly client: cassandra.Client;
  readonly #consistency: number;
  readonly #serialConsistency: number;
  #closed = false;

  constructor(options: CassandraConnectionOptions, keyspace?: string) {
    const first = options.contactPoints[0];
    if (first === undefined) throw new Error("no Cassandra contact point given");
    const port = Number(/:(\d+)$/.exec(first)?.[1] ?? 9042);
    const level = options.consistency ?? "LOCAL_QUORUM";
    this.#consistency = types.consistencies[toDriverName(level)];
    this.#serialConsistency = level.startsWith("LOCAL_") || level === "ONE" ? types.consistencies.localSerial : types.consistencies.serial;
    this.client = new cassandra.Client({
      contactPoints: [...options.contactPoints],
      localDataCenter: options.localDataCenter,
      ...(keyspace === undefined ? {} : { keyspace }),
      protocolOptions: { port },
      encoding: { useBigIntAsLong: true, useUndefinedAsUnset: true },
      socketOptions: { connectTimeout: options.connectTimeoutMs ?? 5_000, readTimeout: options.requestTimeoutMs ?? 12_000 },
      // A node that comes back is used again within a second or two, not after minutes.
      policies: { reconnection: new policies.reconnection.ExponentialReconnectionPolicy(250, 2_000, false) },
      queryOptions: { prepare: true, consistency: this.#consistency, serialConsistency: this.#serialConsistency },
    });
  }

  /** Connects; rejects with StoreUnavailableError naming the contact points when no node answers. */
  async connect(): Promise<void> {
    try {
      await this.client.connect();
    } catch (error) {
      throw new StoreUnavailableError(`cannot reach Cassandra: ${describe(error)}`, { cause: error });
    }
  }

  /** A read; `fetchSize` bounds the page, `pageState` continues one. Reads are idempotent. */
  async read(query: string, params: readonly unknown[], page: { fetchSize?: number; pageState?: string } = {}): Promise<cassandra.types.ResultSet> {
    return this.#run(() =>
      this.client.execute(query, [...params], {
        isIdempotent: true,
        fetchSize: Math.min(page.fetchSize ?? PAGE_ROWS_MAX, PAGE_ROWS_MAX),
        ...(page.pageState === undefined ? {} : { pageState: page.pageState }),
      }),
    );
  }

  /** Up to `limit` rows of a query, fetched in driver pages of at most PAGE_ROWS_MAX. */
  async readUpTo(query: string, params: readonly unknown[], limit: number): Promise<Row[]> {
    const rows: Row[] = [];
    let pageState: string | undefined;
    while (rows.length < limit) {
      const result = await this.read(query, params, { fetchSize: limit - rows.length, ...(pageState === undefined ? {} : { pageState }) });
      for (const row of result.rows) if (rows.length < limit) rows.push(row);
      pageState = result.pageState ?? undefined;
      if (pageState === undefined || result.rows.length === 0) break;
    }
    return rows;
  }

  /** A plain write. `idempotent`: applying it twice has the effect of once (upserts, explicit timestamps). */
  async write(query: string, params: readonly unknown[], idempotent: boolean): Promise<void> {
    await this.#run(() => this.client.execute(query, [...params], { isIdempotent: idempotent }));
  }

  /** A lightweight transaction (one statement with IF). Never retried by the driver: its outcome would be unknown. */
  async cas(query: string, params: readonly unknown[]): Promise<CasResult> {
    const result = await this.#run(() => this.client.execute(query, [...params], { isIdempotent: false }));
    return { applied: result.wasApplied(), row: result.first() ?? undefined };
  }

  /** A conditional batch: statements on one partition, applied together or not at all. */
  async casBatch(statements: readonly Statement[]): Promise<CasResult> {
    const result = await this.#run(() =>
      this.client.batch(statements.map((s) => ({ query: s.query, params: [...s.params] })), { isIdempotent: false, logged: true }),
    );
    return { applied: result.wasApplied(), row: result.first() ?? undefined };
  }

  /** Executes a schema or administrative statement unprepared (DDL cannot be prepared with bind markers). */
  async ddl(query: string): Promise<void> {
    await this.#run(() => this.client.execute(query, [], { prepare: false, isIdempotent: true }));
  }

  /** Shuts the driver down; later calls reject with a plain Error. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.client.shutdown();
  }

  get closed(): boolean {
    return this.#closed;
  }

  async #run<T>(call: () => Promise<T>): Promise<T> {
    if (this.#closed) throw new Error("cassandra store is closed");
    try {
      return await call();
    } catch (error) {
      throw mapCassandraError(error);
    }
  }
}

/** Server-side error codes that mean "try again later": the cluster, not the request, is at fault. */
const TRANSIENT_CODES: ReadonlySet<number> = new Set([
  types.responseErrorCodes.unavailableException,
  types.responseErrorCodes.overloaded,
  types.responseErrorCodes.isBootstrapping,
  types.responseErrorCodes.truncateError,
  types.responseErrorCodes.writeTimeout,
  types.responseErrorCodes.readTimeout,
  types.responseErrorCodes.readFailure,
  types.responseErrorCodes.writeFailure,
]);

/**
 * No node reachable, a client or server timeout, an unavailable or overloaded cluster:
 * StoreUnavailableError with the driver's error as `cause` (for a write, the outcome is
 * unknown). Anything else (a bad query, a schema mismatch) is a bug and passes through.
 */
export function mapCassandraError(error: unknown): unknown {
  if (error instanceof StoreUnavailableError) return error;
  const transient =
    error instanceof errors.NoHostAvailableError ||
    error instanceof errors.OperationTimedOutError ||
    error instanceof errors.BusyConnectionError ||
    (error instanceof errors.ResponseError && TRANSIENT_CODES.has(error.code)) ||
    (error instanceof Error && (error as { isSocketError?: boolean }).isSocketError === true);
  return transient ? new StoreUnavailableError(`cassandra store unavailable: ${describe(error)}`, { cause: error }) : error;
}

/** The error's message, with the per-host causes of a NoHostAvailableError. */
function describe(error: unknown): string {
  if (error instanceof errors.NoHostAvailableError) {
    const hosts = Object.entries((error as { innerErrors?: Record<string, unknown> }).innerErrors ?? {});
    if (hosts.length === 0) return error.message;
    return `no host available: ${hosts.map(([host, e]) => `${host}: ${e instanceof Error ? e.message : String(e)}`).join("; ")}`;
  }
  return error instanceof Error ? error.message : String(error);
}

function toDriverName(level: CassandraConsistency): keyof typeof types.consistencies {
  const names: Record<CassandraConsistency, keyof typeof types.consistencies> = {
    LOCAL_QUORUM: "localQuorum",
    QUORUM: "quorum",
    EACH_QUORUM: "eachQuorum",
    ALL: "all",
    LOCAL_ONE: "localOne",
    ONE: "one",
  };
  return names[level];
}
