// The table of runners: a recipe's `target.host` (or `--host`) names one by its URL scheme. A new kind of
// device is a row here and a file beside this one, not a branch in the callers.
import { LocalRunner } from './local';
import { SshRunner } from './ssh';
import { QueueRunner } from './queue';
import { Runner, RunnerConfig, RunnerError } from './types';

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
  { scheme: 'ssh:', summary: 'ssh://user@host[:port]: compress and measure on a host over SSH', create: (u, c) => new SshRunner(u!, c) },
  { scheme: 'redis:', summary: 'redis://host[:port]?class=NAME: a fleet queue of `haqa worker`s of one hardware class', create: (u, c) => new QueueRunner(u!, c) },
];

/** The runner for `host` (absent or 'local': this machine). Bad input is a RunnerError naming it. */
export function runnerFor(host: string | undefined, config: RunnerConfig = {}): Runner {
  if (host === undefined || host === 'local') return RUNNERS[0].create(undefined, config);
  let url: URL;
  try {
    url = new URL(host);
  } catch {
    throw new RunnerError(`not a runner URL: '${host}' (expected local, ssh://user@host:port or redis://host:port?class=NAME)`, host);
  }
  if (url.password) throw new RunnerError(`${url.protocol}//…: a password does not belong in a host URL (use an SSH key or agent; Redis ACLs via the environment)`, host);
  const row = RUNNERS.find((r) => r.scheme === url.protocol);
  if (!row) throw new RunnerError(`no runner for '${url.protocol}' in '${host}': known ${RUNNERS.map((r) => r.scheme).join(', ')}`, host);
  return row.create(url, config);
}
