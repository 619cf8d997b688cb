import { pino, type Logger } from "pino";

/** Where log lines go: process.stdout, or any writable with the same two members. */
export interface LogDestination {
  write(line: string): unknown;
  /** True when a person reads it (a terminal): lines are then made readable. */
  readonly isTTY?: boolean;
}

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** pino level (trace, debug, info, warn, error, fatal, silent). */
  readonly level: string;
  /** Default: process.stdout. */
  readonly destination?: LogDestination;
}

/**
 * The server's logger: one JSON object per line (pino) for log collectors, unless the
 * destination is a terminal, where each line is rendered readable by pino-pretty (time,
 * level, message, then the fields), in colour. pino-pretty is loaded only in that case, and
 * runs synchronously in this thread, not as a pino transport worker, so the last lines before
 * `process.exit` are never lost.
 */
export async function createLogger(options: LoggerOptions): Promise<Logger> {
  const destination = options.destination ?? process.stdout;
  if (destination.isTTY !== true) {
    return destination === process.stdout ? pino({ level: options.level }) : pino({ level: options.level }, destination);
  }
  const { prettyFactory } = await import("pino-pretty");
  const prettify = prettyFactory({ colorize: true, translateTime: "SYS:HH:MM:ss.l", ignore: "hostname" });
  return pino({ level: options.level }, { write: (line: string) => destination.write(prettify(line)) });
}
