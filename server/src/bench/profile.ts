// Where the decode time goes, layer by layer: onnxruntime's own session profiling (per-node kernel
// durations) of single-token decode steps, attributed to Hugging Face layer names.
//
// Runs in the worker (a 'profile' job, ./protocol.ts): the session is created with profiling on and
// its file written into a temporary folder the caller names (below the run store), read back, and
// removed. Only the decode steps after a prefill and a warm-up are counted: model_run events of the
// profile delimit the steps, and every node event inside a counted run is attributed.
//
// Attribution (`attributeNode`): a node the graph maps to a layer (model/graph.ts: `Layer.node`) is
// that layer; else the longest dotted prefix of its scoped name (`/model/layers.0/mlp/down_proj/
// MatMul_Q4` → `model.layers.0.mlp.down_proj`) that is a layer name; else its module scope (the scoped
// parts before the first op-like, capitalised part: `model.layers.0.self_attn`); unscoped nodes are
// `(unscoped)`. Every counted microsecond lands in exactly one group, so the groups sum to the total.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { DecoderConfig, DecoderSession } from '../model/decoder';
import type { Layer } from '../model/graph';
import { inspectModel } from '../model/graph';
import { BenchError, Progress } from './protocol';
import type { SessionOptionsUsed } from './record';

export const UNSCOPED = '(unscoped)';

/** One profile event as onnxruntime writes it (Chrome trace format). */
export interface ProfileEvent {
  cat: string;
  name: string;
  ts: number;
  dur: number;
  args?: { op_name?: string; [k: string]: unknown };
}

export interface GroupTime {
  /** A layer name, or a module scope for the nodes around layers (norms, attention, rotary). */
  name: string;
  /** True when `name` is a compressible layer of the model. */
  layer: boolean;
  /** Mean microseconds per decode step. */
  us: number;
  /** Median over the counted steps of the group's time in a step (robust to preemption spikes). */
  median_us: number;
  /** Fraction of the step's node time. */
  share: number;
  /** Mean µs per step by op type (`MatMul`, `MatMulNBits`, …). */
  ops: Record<string, number>;
}

export interface ModelProfile {
  label: string;
  model: string;
  /** Decode steps counted. */
  steps: number;
  /** Mean node time per step, µs (the sum over groups). */
  node_us: number;
  /** Mean wall time of a counted model_run, µs (includes the executor's own overhead). */
  run_us: number;
  /** Median wall time of a counted model_run, µs (what the plan's predictions use, robust to preempted steps). */
  run_median_us: number;
  groups: GroupTime[];
}

export interface ProfileJob {
  kind: 'profile';
  models: { label: string; model: string }[];
  session: SessionOptionsUsed;
  /** prompt_length of the prefill before the decode steps; decode_tokens counted steps. */
  workload: { prompt_length: number; decode_tokens: number; batch: number };
  /** An existing folder to write the profile files into (removed by the caller). */
  dir: string;
  /** Decode steps run before counting (default 2). */
  warmup?: number;
  config?: DecoderConfig;
}

/** Which nodes are which layers: from the model graph (the one node → layer mapping). */
export interface NodeIndex {
  byNode: Map<string, string>;
  layers: Set<string>;
}

export function nodeIndexOf(layers: readonly Pick<Layer, 'name' | 'node'>[]): NodeIndex {
  const byNode = new Map<string, string>();
  const names = new Set<string>();
  for (const l of layers) {
    byNode.set(l.node, l.name);
    names.add(l.name);
  }
  return { byNode, layers: names };
}

const OP_LIKE = /^[A-Z]/;

/** The group a node's time belongs to (see the header). `node` is the node name, without `_kernel_time`. */
export function attributeNode(node: string, ix: NodeIndex): { name: string; layer: boolean } {
  const direct = ix.byNode.get(node);
  if (direct !== undefined) return { name: direct, layer: true };
  if (!node.startsWith('/')) return { name: UNSCOPED, layer: false };
  const parts = node
    .slice(1)
    .split('/')
    .filter((p) => p.length > 0);
  for (let n = parts.length - 1; n >= 1; n--) {
    const name = parts.slice(0, n).join('.');
    if (ix.layers.has(name)) return { name, layer: true };
  }
  const scope: string[] = [];
  for (const p of parts.slice(0, -1)) {
    if (OP_LIKE.test(p)) break;
    scope.push(p);
  }
  return scope.length ? { name: scope.join('.'), layer: false } : { name: UNSCOPED, layer: false };
}

const KERNEL_SUFFIX = '_kernel_time';

/**
 * Per-group mean time per counted run. Runs are the `model_run` session events in time order; the
 * first `skipRuns` are not counted (probe, prefill, warm-up).
 */
export function summarizeProfile(
  events: readonly ProfileEvent[],
  ix: NodeIndex,
  skipRuns: number,
  label = '',
  model = '',
): ModelProfile {
  const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').sort((a, b) => a.ts - b.ts);
  const counted = runs.slice(skipRuns);
  const steps = counted.length;
  const groups = new Map<string, { layer: boolean; us: number; perRun: number[]; ops: Record<string, number> }>();
  let total = 0;
  if (steps > 0) {
    const runOf = (ts: number) => counted.findIndex((r) => ts >= r.ts && ts <= r.ts + r.dur);
    for (const e of events) {
      if (e.cat !== 'Node' || !e.name.endsWith(KERNEL_SUFFIX)) continue;
      const run = runOf(e.ts);
      if (run < 0) continue;
      const node = e.name.slice(0, -KERNEL_SUFFIX.length);
      const { name, layer } = attributeNode(node, ix);
      const g = groups.get(name) ?? { layer, us: 0, perRun: new Array<number>(steps).fill(0), ops: {} };
      g.us += e.dur;
      g.perRun[run] += e.dur;
      const op = typeof e.args?.op_name === 'string' ? e.args.op_name : '?';
      g.ops[op] = (g.ops[op] ?? 0) + e.dur;
      groups.set(name, g);
      total += e.dur;
    }
  }
  const per = (x: number) => (steps > 0 ? x / steps : 0);
  const list: GroupTime[] = [...groups.entries()].map(([name, g]) => ({
    name,
    layer: g.layer,
    us: per(g.us),
    median_us: median(g.perRun),
    share: total > 0 ? g.us / total : 0,
    ops: Object.fromEntries(Object.entries(g.ops).map(([k, v]) => [k, per(v)])),
  }));
  list.sort((a, b) => b.us - a.us || (a.name < b.name ? -1 : 1));
  return {
    label,
    model,
    steps,
    node_us: per(total),
    run_us: per(counted.reduce((s, r) => s + r.dur, 0)),
    run_median_us: median(counted.map((r) => r.dur)),
    groups: list,
  };
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? 0 : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/** Profiles one decoder: prefill, `warmup` decode steps, then `decode_tokens` counted ones. */
async function profileOne(job: ProfileJob, label: string, model: string, progress: Progress): Promise<ModelProfile> {
  const graph = await inspectModel(model);
  const prefix = path.join(job.dir, `${label.replace(/[^\w-]/g, '_')}-${process.pid}`);
  const so: ort.InferenceSession.SessionOptions = {
    executionProviders: ['cpu'],
    intraOpNumThreads: job.session.intra_op_threads,
    interOpNumThreads: job.session.inter_op_threads,
    graphOptimizationLevel: job.session
      .graph_optimization as ort.InferenceSession.SessionOptions['graphOptimizationLevel'],
    executionMode: job.session.execution_mode as 'sequential' | 'parallel',
    logSeverityLevel: 3,
    enableProfiling: true,
    profileFilePrefix: prefix,
  };
  const before = new Set(fs.readdirSync(job.dir));
  let d: DecoderSession;
  try {
    d = await DecoderSession.create(model, { sessionOptions: so, config: job.config });
  } catch (err) {
    throw new BenchError(`cannot profile ${model}: ${(err as Error).message}`, 'load', model);
  }
  const warmup = job.warmup ?? 2;
  const { prompt_length: P, decode_tokens: D, batch: B } = job.workload;
  try {
    const prompt = Array.from({ length: B }, (_, b) => Array.from({ length: P }, (_, t) => (t * 7 + b * 13 + 1) % 97));
    let r = await d.step(prompt);
    for (let i = 0; i < warmup + D; i++) {
      progress('latency', `profiling ${label}: step ${i + 1}/${warmup + D}`, (i + 1) / (warmup + D));
      const next = Array.from({ length: B }, (_, b) => [(i * 31 + b * 17 + 5) % 97]);
      r = await d.step(next, r.cache);
    }
  } finally {
    await d.release(); // writes the profile file
  }
  const written = fs
    .readdirSync(job.dir)
    .filter((f) => !before.has(f) && f.startsWith(path.basename(prefix)) && f.endsWith('.json'));
  if (written.length !== 1)
    throw new BenchError(
      `onnxruntime wrote ${written.length} profile files for ${model} in ${job.dir}`,
      'latency',
      model,
    );
  const file = path.join(job.dir, written[0]);
  let events: ProfileEvent[];
  try {
    events = JSON.parse(fs.readFileSync(file, 'utf8')) as ProfileEvent[];
  } finally {
    fs.rmSync(file, { force: true });
  }
  if (!Array.isArray(events))
    throw new BenchError(`the onnxruntime profile of ${model} is not a list of events`, 'latency', model);
  return summarizeProfile(events, nodeIndexOf(graph.layers), 1 + warmup, label, model);
}

export async function runProfileJob(job: ProfileJob, progress: Progress): Promise<ModelProfile[]> {
  const out: ModelProfile[] = [];
  for (const m of job.models) out.push(await profileOne(job, m.label, m.model, progress));
  return out;
}

// ---------------------------------------------------------------- comparing and printing

export interface ProfileRow {
  name: string;
  layer: boolean;
  /** µs per step in each profile (undefined where the group does not occur). */
  us: (number | undefined)[];
  share: (number | undefined)[];
}

/** One row per group over all profiles, ordered by the first profile's time. */
export function compareProfiles(profiles: readonly ModelProfile[]): ProfileRow[] {
  const rows = new Map<string, ProfileRow>();
  profiles.forEach((p, i) => {
    for (const g of p.groups) {
      const empty = () => profiles.map(() => undefined);
      const row = rows.get(g.name) ?? { name: g.name, layer: g.layer, us: empty(), share: empty() };
      row.us[i] = g.us;
      row.share[i] = g.share;
      row.layer ||= g.layer;
      rows.set(g.name, row);
    }
  });
  return [...rows.values()].sort((a, b) => (b.us[0] ?? -1) - (a.us[0] ?? -1) || (a.name < b.name ? -1 : 1));
}

/** Plain-text table (names are untrusted: the caller prints through util/sanitize). */
export function profileTable(profiles: readonly ModelProfile[], limit = 40): string[] {
  const rows = compareProfiles(profiles);
  const fmt = (us?: number) =>
    us === undefined ? '—' : us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : `${us.toFixed(0)} µs`;
  const pct = (s?: number) => (s === undefined ? '' : ` ${(s * 100).toFixed(1).padStart(5)}%`);
  const width = Math.min(60, Math.max(10, ...rows.slice(0, limit).map((r) => r.name.length)));
  const head = ['group'.padEnd(width), ...profiles.map((p) => p.label.padStart(18))];
  if (profiles.length === 2) head.push('   change');
  const lines = [head.join('  ')];
  for (const r of rows.slice(0, limit)) {
    const cells = [r.name.padEnd(width), ...r.us.map((u, i) => `${fmt(u)}${pct(r.share[i])}`.padStart(18))];
    if (profiles.length === 2) {
      const [a, b] = r.us;
      cells.push(a && b !== undefined ? `${(b / a).toFixed(2)}×`.padStart(9) : ''.padStart(9));
    }
    lines.push(cells.join('  '));
  }
  if (rows.length > limit) lines.push(`… ${rows.length - limit} more groups`);
  lines.push(['node time / step'.padEnd(width), ...profiles.map((p) => fmt(p.node_us).padStart(18))].join('  '));
  lines.push(
    ['run time / step'.padEnd(width), ...profiles.map((p) => `${fmt(p.run_us)} (${p.steps} steps)`.padStart(18))].join(
      '  ',
    ),
  );
  return lines;
}
