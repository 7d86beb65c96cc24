// The shape of a `haqa` subcommand. Each lives in its own file under cli/ and is listed in ../cli.ts.
import { parseArgs, ParseArgsConfig } from 'node:util';

export interface CliIO {
  out(line: string): void;
  err(line: string): void;
  /** Aborted on SIGINT: long-running commands stop promptly. */
  signal: AbortSignal;
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  run(argv: string[], io: CliIO): Promise<number>;
}

/** A user error: printed as `haqa: <message>` with exit code 2, no stack trace. */
export class UsageError extends Error {}

export function parse<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T, usage: string) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\nusage: ${usage}`);
  }
}

export { humanBytes, humanCount } from '../util/format';

/** Left-aligned text table with a header row. */
export function table(rows: (string | number)[][], rightAlign: number[] = []): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => String(r[c]).length)));
  return rows.map((r) =>
    r
      .map((cell, c) => (rightAlign.includes(c) ? String(cell).padStart(widths[c]) : String(cell).padEnd(widths[c])))
      .join('  ')
      .trimEnd(),
  );
}
