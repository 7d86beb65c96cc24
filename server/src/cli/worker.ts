// haqa worker --queue redis://host:port [--class NAME]: this machine joins the fleet — it announces its
// hardware class and runs that class's trials from the queue until Ctrl-C (server/src/runner/fleetWorker.ts).
import { Command, parse, UsageError } from './command';
import { hardwareClass, startFleetWorker } from '../runner/fleetWorker';
import { RunnerError } from '../runner/types';

const usage = 'haqa worker --queue redis://host:port [--class NAME] [--cache DIR] [--name NAME] [--lock-seconds S]';

export const workerCommand: Command = {
  name: 'worker',
  summary: "join a fleet: run trials of this machine's hardware class from a Redis queue (BullMQ)",
  usage,
  async run(argv, io) {
    const { values, positionals } = parse(
      argv,
      {
        queue: { type: 'string' },
        class: { type: 'string' },
        cache: { type: 'string' },
        name: { type: 'string' },
        'lock-seconds': { type: 'string' },
      },
      usage,
    );
    if (positionals.length || !values.queue)
      throw new UsageError(`expected --queue redis://host:port\nusage: ${usage}`);
    if (!/^redis:\/\//.test(values.queue))
      throw new UsageError(`--queue must be a redis:// URL, got '${values.queue}'`);
    if (values.class !== undefined && !/^[A-Za-z0-9._-]{1,64}$/.test(values.class))
      throw new UsageError(`--class: letters, digits, . _ - (at most 64), got '${values.class}'`);
    const lock = values['lock-seconds'] === undefined ? undefined : Number(values['lock-seconds']);
    if (lock !== undefined && !(lock >= 1 && lock <= 3600))
      throw new UsageError(`--lock-seconds must be in 1..3600, got '${values['lock-seconds']}'`);
    let w;
    try {
      w = await startFleetWorker({
        url: values.queue,
        cls: values.class ?? hardwareClass(),
        cacheDir: values.cache,
        name: values.name,
        lockMs: lock !== undefined ? lock * 1000 : undefined,
        log: (l) => io.out(l),
      });
    } catch (err) {
      if (err instanceof RunnerError) throw new UsageError(err.message);
      io.err(`haqa worker: cannot join ${values.queue}: ${(err as Error).message}`);
      return 1;
    }
    await new Promise<void>((resolve) => io.signal.addEventListener('abort', () => resolve(), { once: true }));
    io.err(
      'haqa worker: stopping after the running trial, if any ' +
        '(Ctrl-C again to stop now: the trial then goes back to the queue)',
    );
    await w.close();
    return 0;
  },
};
