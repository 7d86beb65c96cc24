// The benchmark worker: a separate Node process (child_process.fork) that loads one model and measures
// it, so that a native crash, an out-of-memory kill or a kernel that never returns costs a record, not
// the language server. Bundled to dist/worker.js; started by ./spawn.ts.
//
// Protocol (IPC messages): the worker says `ready`; the parent sends one WorkerJob; the worker sends
// `progress` messages, then exactly one `result` or `error`, and exits. It exits too when the parent
// goes away.
import { runJob } from './measure';
import { BenchError, WorkerJob, WorkerMessage } from './protocol';
import type { RunStage } from './record';

function send(m: WorkerMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) return resolve();
    process.send(m, undefined, {}, () => resolve());
  });
}

let stage: RunStage = 'setup';

process.on('disconnect', () => process.exit(1)); // the parent died: nobody wants the result

process.once('message', (job: WorkerJob) => {
  runJob(job, (s, message, fraction) => {
    stage = s;
    void send({ type: 'progress', stage: s, message, fraction });
  }).then(
    async ({ metrics, baseline, bandwidth, artifact, findings }) => {
      await send({ type: 'result', metrics, baseline, bandwidth, artifact, findings });
      process.exit(0);
    },
    async (err: unknown) => {
      const e = err as Error;
      const m: WorkerMessage =
        e instanceof BenchError
          ? { type: 'error', message: e.message, stage: e.stage, where: e.where }
          : { type: 'error', message: e?.message ?? String(err), stage };
      await send(m);
      process.exit(1);
    },
  );
});

if (!process.send) {
  process.stderr.write('haqa worker: run by the benchmark (child_process.fork), not directly\n');
  process.exit(2);
}
// Ask for the job only now that the listener exists: a message sent before it would be lost.
void send({ type: 'ready' });
