// `npm run bench` part "fleet" (issue 20): what running trials elsewhere costs and buys, on this machine.
//  1. SSH overhead: the bundled tiny-llama recipe, speed-only quick trials, local runner and SSH runner
//     (a real sshd on loopback, the "remote" this machine in another folder) interleaved; the first SSH
//     trial (worker install, model transfer, remote compression) is reported apart from the warm ones.
//  2. Fleet: 12 speed-only trials of different configurations through redis-server + BullMQ, with one and
//     with two `haqa worker`s (one onnxruntime thread each); wall time of the 12 and the ratio.
//  3. A worker killed mid-search: the 12 again on two workers, one killed in its first trial; whether every
//     trial still comes back ok and is recorded exactly once, and who reran the killed one.
// Writes JSON (--json FILE). Skips a part, saying why, when sshd or redis-server is missing.
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { loadRecipeFile } from '../server/src/cli/bench';
import { applyKnobs } from '../server/src/config/plan';
import { runnerFor } from '../server/src/runner';
import { RunStore } from '../server/src/bench/store';
import type { Recipe } from '../server/src/config/recipe';
import { redisMissing, sshdMissing, startRedis, startSshd } from '../test/helpers/services';

const ROOT = path.resolve(__dirname, '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');
let tmp = '';

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
};

async function workspace(): Promise<Recipe> {
  const ws = path.join(tmp, 'ws');
  fs.cpSync(path.join(ROOT, 'examples', 'tiny-llama'), ws, { recursive: true });
  const r = await loadRecipeFile(path.join(ws, 'haqa.yaml'));
  return {
    ...r,
    target: { ...r.target, threads: 1 },
    runtime: { ...r.runtime, intra_op_threads: 1, inter_op_threads: 1 },
  };
}

async function sshPart(recipe: Recipe, n: number) {
  const why = sshdMissing();
  if (why) return { skipped: why };
  const remote = path.join(tmp, 'remote');
  fs.mkdirSync(remote, { recursive: true });
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(remote, 'node_modules'));
  const sshd = await startSshd(path.join(tmp, 'sshd'));
  const local = runnerFor('local');
  const ssh = runnerFor(sshd.url, { knownHosts: sshd.knownHosts, identityFile: sshd.identity, remoteDir: remote });
  const job = { recipe, quick: true, baseline: false, measure: { accuracy: false } };
  const rows: { runner: string; seconds: number; decode_ms?: number; status: string }[] = [];
  try {
    for (let i = 0; i < n; i++) {
      for (const [name, r] of [
        ['local', local],
        ['ssh', ssh],
      ] as const) {
        const t = Date.now();
        const rec = await r.run(job, { noStore: true, storeDir: path.dirname(recipe.file) });
        rows.push({
          runner: name,
          seconds: (Date.now() - t) / 1000,
          decode_ms: rec.metrics.decode_ms_per_token?.median,
          status: rec.status,
        });
        process.stderr.write(`  ${name} trial ${i + 1}: ${rec.status} ${((Date.now() - t) / 1000).toFixed(1)} s\n`);
      }
    }
  } finally {
    await ssh.close();
    await sshd.stop();
  }
  const warm = (name: string) =>
    rows
      .filter((r) => r.runner === name)
      .slice(1)
      .map((r) => r.seconds);
  return {
    rows,
    first: { local: rows[0]?.seconds, ssh: rows[1]?.seconds },
    warm_median: { local: median(warm('local')), ssh: median(warm('ssh')) },
    overhead_s: median(warm('ssh')) - median(warm('local')),
  };
}

/**
 * A `haqa worker` in its own process group (so a kill takes its benchmark worker too, as a device's death
 * would); `onStarted` hears each job it starts. Resolves once it has announced itself.
 */
function startWorker(
  url: string,
  name: string,
  cache: string,
  opts: { lockSeconds?: number; onStarted?: (job: string, c: ChildProcess) => void } = {},
): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const args = [CLI, 'worker', '--queue', url, '--class', 'bench-1t', '--cache', cache, '--name', name];
    if (opts.lockSeconds) args.push('--lock-seconds', String(opts.lockSeconds));
    const c = spawn(process.execPath, args, {
      stdio: ['ignore', 'pipe', 'inherit'],
      detached: true,
      env: { ...process.env, OMP_NUM_THREADS: '1' },
    });
    let buf = '';
    c.stdout!.on('data', (b: Buffer) => {
      buf += b.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.startsWith('worker ')) resolve(c);
        const m = /^started (\S+)/.exec(line);
        if (m) opts.onStarted?.(m[1], c);
      }
    });
    c.once('exit', (code) => reject(new Error(`worker ${name} exited ${code}`)));
  });
}

/** Trial `i` of the fleet phases: the configuration `c`, quick and speed only. */
const speedTrial = (recipe: Recipe, c: Record<string, number>, i: number) => ({
  recipe: applyKnobs(recipe, c),
  quick: true,
  baseline: false,
  measure: { accuracy: false },
  trial: { number: i + 1 },
});

const killGroup = (c: ChildProcess) => {
  try {
    process.kill(-c.pid!, 'SIGKILL');
  } catch {
    /* gone */
  }
};

async function fleetPart(recipe: Recipe, trials: number) {
  const why = redisMissing();
  if (why) return { skipped: why };
  const redis = await startRedis(path.join(tmp, 'redis'));
  const configs = [];
  for (const bits of [4, 8])
    for (const bs of [16, 32, 64])
      for (const lvl of [0, 4])
        configs.push({ 'quantize.bits': bits, 'quantize.block_size': bs, 'quantize.accuracy_level': lvl });
  const phases: { workers: number; seconds: number; ok: number; by_worker: Record<string, number> }[] = [];
  let killed: Awaited<ReturnType<typeof killedPart>> | undefined;
  try {
    for (const workers of [1, 2]) {
      const procs = await Promise.all(
        Array.from({ length: workers }, (_, i) =>
          startWorker(redis.url, `w${i + 1}`, path.join(tmp, `cache-${workers}-${i}`)),
        ),
      );
      const runner = runnerFor(`${redis.url}?class=bench-1t`);
      const t = Date.now();
      const recs = await Promise.all(
        configs.slice(0, trials).map((c, i) => runner.run(speedTrial(recipe, c, i), { noStore: true })),
      );
      const seconds = (Date.now() - t) / 1000;
      await runner.close();
      for (const p of procs) killGroup(p);
      const by: Record<string, number> = {};
      for (const r of recs) by[r.device?.worker ?? '?'] = (by[r.device?.worker ?? '?'] ?? 0) + 1;
      phases.push({ workers, seconds, ok: recs.filter((r) => r.status === 'ok').length, by_worker: by });
      process.stderr.write(
        `  fleet ${workers} worker(s): ${trials} trials in ${seconds.toFixed(1)} s (${JSON.stringify(by)})\n`,
      );
    }
    killed = await killedPart(redis.url, recipe, configs.slice(0, trials));
  } finally {
    await redis.stop();
  }
  return { trials, phases, ratio: phases[0].seconds / phases[1].seconds, killed };
}

/**
 * A worker killed mid-search: two workers, w1 killed (with its benchmark worker) 300 ms into its first
 * trial; the search must still complete with every trial recorded once, the killed one by w2 after
 * BullMQ finds it stalled (lock 5 s here, so the wait is short).
 */
async function killedPart(url: string, recipe: Recipe, configs: Record<string, number>[]) {
  const store = path.join(tmp, 'killed-store');
  fs.mkdirSync(store, { recursive: true });
  let killedJob: string | undefined;
  const procs = await Promise.all([
    startWorker(url, 'w1', path.join(tmp, 'cache-k-1'), {
      lockSeconds: 5,
      onStarted: (job, c) => {
        if (killedJob) return;
        killedJob = job;
        setTimeout(() => killGroup(c), 300);
      },
    }),
    startWorker(url, 'w2', path.join(tmp, 'cache-k-2'), { lockSeconds: 5 }),
  ]);
  const runner = runnerFor(`${url}?class=bench-1t`);
  const t = Date.now();
  try {
    const recs = await Promise.all(configs.map((c, i) => runner.run(speedTrial(recipe, c, i), { storeDir: store })));
    const seconds = (Date.now() - t) / 1000;
    const stored = new RunStore(store).read().records;
    const perTrial = new Map<number, number>();
    for (const r of stored) perTrial.set(r.trial?.number ?? -1, (perTrial.get(r.trial?.number ?? -1) ?? 0) + 1);
    const retried = recs.find((r) => r.device?.job === killedJob);
    const out = {
      trials: configs.length,
      seconds,
      ok: recs.filter((r) => r.status === 'ok').length,
      stored: stored.length,
      trials_recorded_once: [...perTrial.values()].filter((n) => n === 1).length,
      killed_job_rerun_by: retried?.device?.worker,
    };
    process.stderr.write(`  fleet, w1 killed mid-trial: ${JSON.stringify(out)}\n`);
    return out;
  } finally {
    await runner.close();
    for (const p of procs) killGroup(p);
  }
}

async function main() {
  const { values } = parseArgs({ options: { json: { type: 'string' }, quick: { type: 'boolean', default: false } } });
  if (!fs.existsSync(CLI)) throw new Error('dist/cli.js missing: npm run build');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'haqa-bench-fleet-'));
  process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
  const recipe = await workspace();
  const started = new Date().toISOString();
  const load0 = os.loadavg();
  const ssh = await sshPart(recipe, values.quick ? 2 : 3);
  const fleet = await fleetPart(recipe, values.quick ? 6 : 12);
  const out = {
    started,
    finished: new Date().toISOString(),
    loadavg_start: load0,
    loadavg_end: os.loadavg(),
    cores: os.availableParallelism(),
    ssh,
    fleet,
  };
  const text = JSON.stringify(out, null, 2);
  if (values.json) fs.writeFileSync(values.json, text + '\n');
  else process.stdout.write(text + '\n');
}

/* eslint-disable @typescript-eslint/no-explicit-any */
type Json = any;
const f = (x: number | undefined, d = 2) => (x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(d));

/** The report's section (bench/run.ts renders it into bench/REPORT.md). */
export function fleetSection(j: Json): string[] {
  // Busy: other work held over half the cores when the bench started (the load at the end is mostly the
  // bench's own workers, so it says nothing about neighbours).
  const busy = (x: { cores: number; loadavg_start: number[] }) =>
    x.loadavg_start[0] > x.cores / 2 ? 'other work shared the machine, so absolute seconds are inflated; ' : '';
  const lines = ['## 9. Fleet: trials on other devices (SSH runner, Redis + BullMQ)', ''];
  lines.push(
    `Measured ${j.started.slice(0, 16).replace('T', ' ')}–${j.finished.slice(11, 16)} UTC on ${j.cores} ` +
      `cores, load average ${j.loadavg_start.map((x: number) => x.toFixed(1)).join(' ')} at the start ` +
      `and ${j.loadavg_end.map((x: number) => x.toFixed(1)).join(' ')} at the end (${busy(j)}the SSH ` +
      `"remote" is this machine, so transfers are loopback).`,
    '',
  );
  const s = j.ssh;
  if (s.skipped) lines.push(`SSH: skipped — ${s.skipped}.`, '');
  else {
    lines.push(
      'SSH runner vs local runner, bundled tiny-llama recipe, quick speed-only trials (1 thread), interleaved local/ssh:',
      '',
    );
    lines.push('| | local s | ssh s |', '| --- | --- | --- |');
    lines.push(
      `| first trial (both compress; ssh also installs the worker and sends the model) | ${f(s.first.local, 1)} | ${f(s.first.ssh, 1)} |`,
    );
    lines.push(
      `| warm trials, median of ${s.rows.length / 2 - 1} | ${f(s.warm_median.local, 1)} | ${f(s.warm_median.ssh, 1)} |`,
    );
    lines.push('', `Overhead per warm trial (ssh − local median): **${f(s.overhead_s, 2)} s**.`, '');
  }
  const q = j.fleet;
  if (q.skipped) lines.push(`Fleet: skipped — ${q.skipped}.`, '');
  else {
    lines.push(
      `Fleet: ${q.trials} speed-only trials of different configurations through one BullMQ queue, \`haqa ` +
        `worker\` processes with one onnxruntime thread each, 1 worker then 2 (not interleaved):`,
      '',
    );
    lines.push('| workers | wall s | ok | trials per worker |', '| --- | --- | --- | --- |');
    for (const p of q.phases)
      lines.push(
        `| ${p.workers} | ${f(p.seconds, 1)} | ${p.ok}/${q.trials} | ${Object.entries(p.by_worker)
          .map(([k, v]) => `${k}: ${v}`)
          .join(', ')} |`,
      );
    lines.push(
      '',
      `Wall-time ratio 1 worker / 2 workers: **${f(q.ratio, 2)}×**; goal ≥ 1.7× on an otherwise idle ` +
        `2-core machine: **${q.ratio >= 1.7 ? 'met' : 'not met'}**${busy(j) ? ' (but the machine was not idle)' : ''}.`,
      '',
    );
  }
  const k = q.killed;
  if (k) {
    const whole = k.ok === k.trials && k.stored === k.trials && k.trials_recorded_once === k.trials;
    lines.push(
      `A worker killed mid-search (2 workers, w1 and its benchmark worker SIGKILLed 300 ms into its first ` +
        `trial, lock 5 s): ${k.ok}/${k.trials} trials ok in ${f(k.seconds, 1)} s, ${k.stored} records stored, ` +
        `${k.trials_recorded_once} of ${k.trials} trials recorded exactly once, the killed trial rerun by ` +
        `${k.killed_job_rerun_by ?? 'nobody'}: **${whole ? 'every trial accounted for once' : 'NOT every trial accounted for once'}**.`,
      '',
    );
  }
  lines.push(
    `Not measured here: ${k ? '' : 'a worker killed mid-search (test/unit/runner-fleet.test.ts covers it); '}` +
      'SSH to a genuinely remote host; memory bandwidth of a remote.',
    '',
  );
  return lines;
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (err) => {
      process.stderr.write(`fleet bench: ${(err as Error).stack ?? err}\n`);
      process.exit(1);
    },
  );
}
