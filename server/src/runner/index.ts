// The table of runners: a recipe's `target.host` (or `--host`) names one by its URL scheme. A new kind of
// device is a row here and a file beside this one, not a branch in the callers.
import { LocalRunner } from './local';
import { SshRunner } from './ssh';
import { QueueRunner } from './queue';
import { Runner, RunnerConfig, RunnerError } from './types';
import type { Recipe } from '../config/recipe';
import type { RunRecord } from '../bench/record';
import { runRecipe, RunOptions } from '../bench/run';
import { hardwareFingerprint } from '../bench/hardware';
import { emptyRecord } from './device';
import { runnerConfigFromEnv } from './config';

export type { Runner, RunnerConfig, TrialJob, RunnerOptions } from './types';
export { RunnerError } from './types';

interface RunnerRow {
  /** The URL scheme (`ssh:`), or 'local'. */
  scheme: string;
  summary: string;
  create(url: URL | undefined, config: RunnerConfig): Runner;
}

export const RUNNERS: readonly RunnerRow[] = [
  { scheme: 'local', summary: 'this machine: a worker process (bench/spawn.ts)', create: () => new LocalRunner() },
  {
    scheme: 'ssh:',
    summary: 'ssh://user@host[:port]: compress and measure on a host over SSH',
    create: (u, c) => new SshRunner(u!, c),
  },
  {
    scheme: 'redis:',
    summary: 'redis://host[:port]?class=NAME: a fleet queue of `haqa worker`s of one hardware class',
    create: (u, c) => new QueueRunner(u!, c),
  },
];

/** The runner for `host` (absent or 'local': this machine). Bad input is a RunnerError naming it. */
export function runnerFor(host: string | undefined, config: RunnerConfig = {}): Runner {
  if (host === undefined || host === 'local') return RUNNERS[0].create(undefined, config);
  let url: URL;
  try {
    url = new URL(host);
  } catch {
    throw new RunnerError(
      `not a runner URL: '${host}' (expected local, ssh://user@host:port or redis://host:port?class=NAME)`,
      host,
    );
  }
  if (url.password)
    throw new RunnerError(
      `${url.protocol}//…: a password does not belong in a host ` +
        'URL (use an SSH key or agent; Redis ACLs via the environment)',
      host,
    );
  const row = RUNNERS.find((r) => r.scheme === url.protocol);
  if (!row)
    throw new RunnerError(
      `no runner for '${url.protocol}' in '${host}': known ${RUNNERS.map((r) => r.scheme).join(', ')}`,
      host,
    );
  return row.create(url, config);
}

/**
 * A run where the recipe's `target.host` says: this machine exactly as bench/run.ts runs it (absent or
 * 'local'), else through that host's runner, opened for this run and closed after it. The tuner's
 * evaluator and the editor's benchmark call this; `haqa bench --host` picks its runner itself.
 */
export async function runOnTarget(
  recipe: Recipe,
  opts: RunOptions = {},
  config: RunnerConfig = runnerConfigFromEnv(),
): Promise<RunRecord> {
  const host = recipe.target.host;
  if (host === undefined || host === 'local') return runRecipe(recipe, opts);
  let runner: Runner;
  try {
    runner = runnerFor(host, config);
  } catch (err) {
    const record = emptyRecord({ recipe }, hardwareFingerprint(), new Date());
    record.error = {
      message: (err as Error).message,
      stage: 'setup',
      where: recipe.file,
      recipe_path: ['target', 'host'],
    };
    return record;
  }
  try {
    return await runner.run(
      {
        recipe,
        quick: opts.quick,
        baseline: opts.baseline,
        measure: opts.measure,
        trial: opts.trial,
        timeoutMs: opts.timeoutMs,
        debug: opts.debug,
        reference: opts.reference,
        race: opts.race,
        raceAgainst: opts.raceAgainst,
      },
      { signal: opts.signal, onProgress: opts.onProgress, storeDir: opts.storeDir, noStore: opts.noStore },
    );
  } finally {
    await runner.close();
  }
}
