/**
 * Mutants: realistic one-line bugs of the production client, core, store and router code the
 * simulator runs, kept here so the simulator's catch rate can be measured again after every
 * change (`npm run sim:mutants [-- --seeds 4 --only <name>]`).
 *
 * Each mutant is a textual edit of one production file. The runner copies the source tree
 * into a temporary directory (node_modules linked, not copied), applies one edit, runs a sweep
 * of each of the mutant's scenarios there, and records which checkers fired first. A mutant
 * is caught when any seed fails. Unlike the `bug*` switches (SimConfig), which exist to show
 * that each checker bites, these edits are not known to the simulator: they test the
 * checkers the way a regression in the production code would.
 */
import { execFile } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { ScenarioName } from "./scenarios.js";

/** One mutant: replace `find` (which must occur exactly once) with `replace` in `file`. */
export interface Mutant {
  readonly name: string;
  /** What the bug is, as a reviewer would describe it. */
  readonly bug: string;
  readonly file: string;
  readonly find: string;
  readonly replace: string;
  /** The scenarios whose sweeps it is run against. */
  readonly scenarios: readonly ScenarioName[];
  /** SimConfig flags for those sweeps, where the default run never reaches the mutated path. */
  readonly flags?: readonly string[];
  /** Seeds per scenario at least (more than the runner's --seeds), where even then few seeds reach it. */
  readonly seedsMin?: number;
}

export const MUTANTS: readonly Mutant[] = [
  {
    name: "engine-contiguous-seqs",
    bug: "the sync engine chains a message by seq == last + 1 instead of by its prevSeq (a takeover skips seqs)",
    file: "client/sync-engine.ts",
    find: "if (m.prevSeq === state.lastSeq) {",
    replace: "if (m.seq === state.lastSeq + 1) {",
    scenarios: ["chaos"],
  },
  {
    name: "engine-overflow-no-refetch",
    bug: "the sync engine's reorder buffer overflows, forgets its messages and does not fetch them",
    file: "client/sync-engine.ts",
    find: "state.pending = NOTHING_PENDING;\n          state.wantUpTo = Infinity;",
    replace: "state.pending = NOTHING_PENDING;",
    scenarios: ["chaos", "group-fanout"],
    // The default buffer (1,024 messages) never fills in small runs; with room for one, the
    // second push that waits out of order overflows it.
    flags: ["--pending-max", "1"],
  },
  {
    name: "engine-forgets-paged-rest",
    bug: "a fetch answered with has_more is taken as the end of the range",
    file: "client/sync-engine.ts",
    find: "if (hasMore) state.wantUpTo = Math.max(state.wantUpTo, state.fetchUpTo);",
    replace: "if (hasMore) state.wantUpTo = state.wantUpTo;",
    scenarios: ["chaos"],
    // It differs only when a push of a message inside the range, beyond the page, arrives
    // while the page is in flight and within a reorder window of its answer: one seed in 200
    // of the default chaos run. Bursts of 8 consecutive messages, half the publications held
    // back up to 120 ms, 20 ms links and pages of 2 make it one seed in four.
    flags: ["--group-burst", "8", "--group-senders", "8", "--push-reorder", "0.5", "--reorder-delay-ms", "120", "--latency-ms", "20", "--fetch-default", "2"],
    seedsMin: 16,
  },
  {
    name: "engine-read-moves-back",
    bug: "the sync engine takes any read position, also an older one that arrives late",
    file: "client/sync-engine.ts",
    find: "if (readSeq <= state.readSeq) return;",
    replace: "if (readSeq === state.readSeq) return;",
    scenarios: ["chaos"],
  },
  {
    name: "outbox-link-death-forgets-inflight",
    bug: "when a link dies, sends in flight on it are not put back to wait for the next link",
    file: "client/outbox.ts",
    find: "for (const entry of this.#entries.values()) entry.status = WAITING;",
    replace: "for (const entry of this.#entries.values()) if (entry.status !== WAITING) continue;",
    scenarios: ["chaos"],
  },
  {
    name: "core-fetch-without-membership",
    bug: "fetchRange reads any existing conversation without checking that the caller is a member",
    file: "server/core/messaging.ts",
    find: "const conversation = await this.#memberConversation(userId, command.conversationId);",
    replace: "const found = await store.getConversation(command.conversationId);\n    const conversation = found !== undefined ? ok(found) : await this.#memberConversation(userId, command.conversationId);",
    scenarios: ["chaos"],
  },
  {
    name: "core-sync-includes-cursor",
    bug: "a sync reads from the cursor's own message instead of the one after it",
    file: "server/core/messaging.ts",
    find: "store.readRange(session.conversationId, after, undefined, perConversation + 1)",
    replace: "store.readRange(session.conversationId, Math.max(0, after - 1), undefined, perConversation + 1)",
    scenarios: ["chaos"],
  },
  {
    name: "core-sync-ignores-read-moves",
    bug: "a sync leaves out sessions whose read position moved while their last seq did not",
    file: "server/core/messaging.ts",
    find: "cursor.lastSeq !== session.lastSeq || cursor.readSeq !== session.readSeq",
    replace: "cursor.lastSeq !== session.lastSeq",
    scenarios: ["chaos"],
  },
  {
    name: "core-fetch-has-more-off-by-one",
    bug: "a fetch reads exactly its limit and so never says there is more",
    file: "server/core/messaging.ts",
    find: "const messages = await store.readRange(command.conversationId, Number(afterSeq), upTo, limit + 1);",
    replace: "const messages = await store.readRange(command.conversationId, Number(afterSeq), upTo, limit);",
    scenarios: ["chaos"],
  },
  {
    name: "store-range-drops-its-end",
    bug: "the memory store's readRange stops before the range's last seq",
    file: "server/store/memory-message-store.ts",
    find: "if (upToSeq !== undefined && m.seq > upToSeq) break;",
    replace: "if (upToSeq !== undefined && m.seq >= upToSeq) break;",
    scenarios: ["chaos"],
  },
  {
    name: "publisher-direct-one-side",
    bug: "a direct message is published on the recipient's channel only, not on the sender's (its other devices)",
    file: "server/route/channel-publisher.ts",
    find: "this.#publish(userChannel(parsed.userA), publication);\n",
    replace: "if (originConnectionId === undefined) this.#publish(userChannel(parsed.userA), publication);\n",
    scenarios: ["million", "chaos"],
  },
  {
    name: "hub-skips-whole-user",
    bug: "the hub leaves out every connection of the sender's user, not only the sending connection",
    file: "server/route/hub.ts",
    find: "if (subscriber.connectionId !== except) {",
    replace: "if (except === undefined) {",
    scenarios: ["group-fanout", "million"],
  },
];

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
/** What the simulator imports from the tree. */
const COPIED = ["client", "server", "sim", "gen", "package.json", "tsconfig.json"];

/** `source` with the mutant's edit applied; throws unless `find` occurs exactly once. */
export function applyMutant(mutant: Mutant, source: string): string {
  const at = source.indexOf(mutant.find);
  if (at < 0) throw new Error(`mutant ${mutant.name}: ${JSON.stringify(mutant.find)} is not in ${mutant.file}`);
  if (source.indexOf(mutant.find, at + 1) >= 0) throw new Error(`mutant ${mutant.name}: ${JSON.stringify(mutant.find)} occurs more than once in ${mutant.file}`);
  return source.slice(0, at) + mutant.replace + source.slice(at + mutant.find.length);
}

/** One mutant's outcome: failing seeds per scenario, and the first checker of each failing seed. */
export interface MutantOutcome {
  readonly mutant: Mutant;
  readonly caught: boolean;
  readonly seeds: number;
  readonly failed: number;
  /** checker -> failing seeds it was first in. */
  readonly checkers: Record<string, number>;
}

/** Runs one mutant in a copy of the tree: `seedsAsked` seeds (small size; at least its seedsMin) of each of its scenarios. */
export async function runMutant(mutant: Mutant, seedsAsked: number, root = ROOT): Promise<MutantOutcome> {
  const seeds = Math.max(seedsAsked, mutant.seedsMin ?? 1);
  const dir = mkdtempSync(path.join(tmpdir(), `sim-mutant-${mutant.name}-`));
  try {
    for (const entry of COPIED) cpSync(path.join(root, entry), path.join(dir, entry), { recursive: true });
    symlinkSync(path.join(root, "node_modules"), path.join(dir, "node_modules"), "dir");
    const file = path.join(dir, mutant.file);
    writeFileSync(file, applyMutant(mutant, readFileSync(file, "utf8")));
    let failed = 0;
    const checkers: Record<string, number> = {};
    for (const scenario of mutant.scenarios) {
      const report = await sweepIn(dir, scenario, seeds, mutant.flags ?? []);
      const summary = /(\d+) of \d+ seeds run \([^)]*\), (\d+) failed/.exec(report);
      if (summary === null) throw new Error(`mutant ${mutant.name}: no sweep summary in ${JSON.stringify(report.slice(0, 2000))}`);
      failed += Number(summary[2]);
      for (const m of report.matchAll(/^ {2}(\w+): (\d+) seeds$/gm)) checkers[m[1]!] = (checkers[m[1]!] ?? 0) + Number(m[2]);
    }
    return { mutant, caught: failed > 0, seeds: seeds * mutant.scenarios.length, failed, checkers };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs `npm run sim:sweep` in `dir`; resolves with its stdout (exit code 1 is a failing seed, not an error). */
function sweepIn(dir: string, scenario: ScenarioName, seeds: number, flags: readonly string[]): Promise<string> {
  const tsx = path.join(dir, "node_modules/tsx/dist/cli.mjs");
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [tsx, "sim/sweep.ts", "--seeds", String(seeds), "--scenario", scenario, ...flags], { cwd: dir, maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      if (error !== null && error.code !== 1) reject(new Error(`sweep of ${scenario} exited with ${String(error.code)}: ${stderr}`));
      else resolve(stdout);
    });
  });
}

/** The catch table (markdown) and the catch rate. */
export function formatMutants(outcomes: readonly MutantOutcome[]): string {
  const lines = ["| mutant | file | scenarios | failing seeds | first checker (seeds) |", "| --- | --- | --- | --- | --- |"];
  for (const o of outcomes) {
    const by = Object.entries(o.checkers).map(([c, n]) => `${c} (${n})`).join(", ") || "not caught";
    const flags = o.mutant.flags === undefined ? "" : ` (\`${o.mutant.flags.join(" ")}\`)`;
    lines.push(`| ${o.mutant.name}: ${o.mutant.bug} | \`${o.mutant.file}\` | ${o.mutant.scenarios.join(", ")}${flags} | ${o.failed} of ${o.seeds} | ${by} |`);
  }
  const caught = outcomes.filter((o) => o.caught).length;
  lines.push("", `caught ${caught} of ${outcomes.length} mutants`);
  return lines.join("\n") + "\n";
}

if (process.argv[1] !== undefined && import.meta.filename === path.resolve(process.argv[1])) {
  const argv = process.argv.slice(2);
  if (argv.includes("--help")) {
    process.stdout.write("usage: npm run sim:mutants -- [--seeds N] [--only <mutant name>]\n  runs N seeds (default 4, small size; more where a mutant names its seedsMin) of each mutant's scenarios in a mutated copy of the tree and prints which checker caught it\n");
    process.exit(0);
  }
  const flag = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i < 0 ? undefined : argv[i + 1];
  };
  const seeds = Number(flag("--seeds") ?? 4);
  const only = flag("--only");
  const chosen = MUTANTS.filter((m) => only === undefined || m.name === only);
  if (!Number.isInteger(seeds) || seeds < 1 || chosen.length === 0) {
    process.stderr.write(`--seeds must be a positive integer and --only one of: ${MUTANTS.map((m) => m.name).join(", ")}\n`);
    process.exit(2);
  }
  const outcomes: MutantOutcome[] = [];
  for (const mutant of chosen) {
    const started = Date.now();
    const o = await runMutant(mutant, seeds);
    outcomes.push(o);
    process.stderr.write(`${mutant.name}: ${o.caught ? "caught" : "NOT caught"} (${o.failed} of ${o.seeds} seeds failed) in ${Math.round((Date.now() - started) / 1000)} s\n`);
  }
  process.stdout.write(formatMutants(outcomes));
}
