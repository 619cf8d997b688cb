/**
 * The load generator: `npm run loadgen -- <scenario> --target host:port [options]`
 * (`--help` lists scenarios and options). Exit status 0 when every check passed, 1 when one
 * failed, 2 on bad usage.
 */
import { parseLoadgenArgs, usage, type LoadgenOptions } from "./options.js";
import { runLoadgen } from "./run-loadgen.js";
import { renderSummary, writeRunReport } from "./run-report.js";

async function main(argv: readonly string[]): Promise<number> {
  let options: LoadgenOptions | "help";
  try {
    options = parseLoadgenArgs(argv, process.env);
  } catch (error) {
    process.stderr.write(`loadgen: ${(error as Error).message}\n\n${usage()}\n`);
    return 2;
  }
  if (options === "help") {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  const tty = process.stderr.isTTY;
  let lastPrinted = 0;
  const report = await runLoadgen(
    options,
    {
      log: (line) => process.stderr.write(`${tty ? "\r\x1b[K" : ""}loadgen: ${line}\n`),
      progress: (line) => {
        if (options.quiet) return;
        if (tty) process.stderr.write(`\r\x1b[K${line}`);
        else if (performance.now() - lastPrinted >= 5000) {
          // Logs and CI: a line every 5 s rather than a carriage-return line.
          lastPrinted = performance.now();
          process.stderr.write(`${line}\n`);
        }
      },
    },
    argv,
  );
  if (tty) process.stderr.write("\n");
  process.stdout.write(renderSummary(report));
  if (options.out !== undefined) {
    const files = await writeRunReport(options.out, report);
    process.stderr.write(`loadgen: wrote ${files.join(", ")}\n`);
  }
  return report.passed ? 0 : 1;
}

process.exit(await main(process.argv.slice(2)));
