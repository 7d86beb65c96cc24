// Per-layer advice from measurement, end to end: where the decode time goes (fp32, the recipe's own
// plan, and each candidate applied to every layer: bench/profile.ts), what each layer tolerates
// (agent/sensitivity.ts), the plan under the accuracy budget (agent/layerPlan.ts), and, on request,
// one real benchmark of that plan (bench/run.ts) for predicted vs measured.
//
// Every model runs in a worker. The measurements are kept in `.haqa/layers/<model key>.json` so that
// the editor's hovers and diagnostics (lsp/layerHover.ts, config/layerAdvice diagnostics) and Claude's
// advise prompt can quote them without running anything.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Recipe } from '../config/recipe';
import { applyKnobs } from '../config/plan';
import { inspectModel, Layer } from '../model/graph';
import { compresses, fp32Recipe, sha256, type HardwareFingerprint, type RunRecord } from '../bench/record';
import { decoderConfig, evaluationOf, runRecipe, sessionOptionsOf } from '../bench/run';
import { hardwareFingerprint } from '../bench/hardware';
import { runWorker } from '../bench/spawn';
import { RunStore } from '../bench/store';
import type { ModelProfile } from '../bench/profile';
import { readKernelProbe, writeKernelProbe } from '../bench/kernelProbe';
import { writeFileAtomic } from '../util/atomicWrite';
import { READ_CAPS } from '../util/paths';
import { Candidate, DEFAULT_CANDIDATES, SensitivityResult } from './sensitivity';
import {
  allowedOn,
  bestUniform,
  FP32,
  LayerMeasurements,
  LayerPlanResult,
  planKnobs,
  planUnderBudget,
} from './layerPlan';

export const LAYER_FORMAT = 1;

export interface StoredLayerMeasurements extends LayerMeasurements {
  format: number;
  measured_at: string;
  source_model: string;
  hardware: HardwareFingerprint;
  /** Profile of the recipe's own plan, when it compresses. */
  recipe_plan?: ModelProfile;
  /** Candidates whose uniform model could not be built or profiled, and why. */
  skipped: { candidate: string; reason: string }[];
  seconds: { total: number; build: number; profile: number; sensitivity: number };
}

export interface MeasureLayersOptions {
  storeDir?: string;
  signal?: AbortSignal;
  candidates?: Candidate[];
  /** Per worker, ms. */
  timeoutMs?: number;
  onProgress?: (message: string) => void;
  /** Evaluation windows for the sensitivity (default 4). */
  maxWindows?: number;
  roots?: string[];
}

export function layerCachePath(store: RunStore, model: string): string {
  return store.inside(path.join(store.root, 'layers', `${sha256(path.resolve(model)).slice(0, 16)}.json`));
}

/** The cached measurements for a recipe's model, if any (undefined when absent, unreadable or stale in format). */
export function readLayerMeasurements(storeDir: string, model: string): StoredLayerMeasurements | undefined {
  try {
    const store = new RunStore(storeDir);
    const file = layerCachePath(store, model);
    if (!fs.existsSync(file)) return undefined;
    const m = JSON.parse(store.readText(file, 'layer measurements', READ_CAPS.text)) as StoredLayerMeasurements;
    return m.format === LAYER_FORMAT && m.source_model === path.resolve(model) ? m : undefined;
  } catch {
    return undefined;
  }
}

const now = () => Date.now() / 1000;

/** The analysed layers: fp32 MatMul/Gemm (what sensitivity.ts can feed), one group each. */
function analysedLayers(layers: readonly Layer[]): Layer[] {
  return layers.filter((l) => (l.op === 'MatMul' || l.op === 'Gemm') && l.dtype === 'FLOAT');
}

export async function measureLayers(recipe: Recipe, opts: MeasureLayersOptions = {}): Promise<StoredLayerMeasurements> {
  const t0 = now();
  const storeDir = opts.storeDir ?? path.dirname(recipe.file);
  const store = new RunStore(storeDir);
  const say = (m: string) => opts.onProgress?.(m);
  const session = sessionOptionsOf(recipe);
  const config = await decoderConfig(recipe.model);
  const evaluation = evaluationOf(recipe);
  if (!evaluation) throw new Error(`per-layer sensitivity needs evaluation.text in ${recipe.file}`);
  const graph = await inspectModel(recipe.model);
  const layers = analysedLayers(graph.layers);
  if (layers.length === 0) throw new Error(`${recipe.model} has no fp32 MatMul/Gemm layers to analyse`);
  const candidates = opts.candidates ?? DEFAULT_CANDIDATES;
  const skipped: StoredLayerMeasurements['skipped'] = [];
  const common = {
    storeDir,
    signal: opts.signal,
    noStore: true,
    roots: opts.roots,
    timeoutMs: opts.timeoutMs,
    measure: { latency: false, accuracy: false },
  };

  // Models to profile: fp32, the recipe's plan, each candidate on every analysed layer (artifacts are cached).
  const models: { label: string; model: string }[] = [{ label: FP32, model: recipe.model }];
  const build = async (label: string, r: Recipe): Promise<string | undefined> => {
    say(`building ${label}`);
    const rec: RunRecord = await runRecipe(r, common);
    if (rec.status !== 'ok' || !rec.artifact) {
      skipped.push({ candidate: label, reason: rec.error?.message ?? rec.status });
      return undefined;
    }
    return rec.artifact;
  };
  const planModel = compresses(recipe) ? await build('recipe', recipe) : undefined;
  if (planModel) models.push({ label: 'recipe', model: planModel });
  const level = recipe.quantize?.accuracy_level;
  for (const c of candidates) {
    const r = applyKnobs(
      fp32Recipe(recipe),
      planKnobs(
        layers.map((l) => ({ layers: [l.name], choice: c.id })),
        candidates,
        layers,
        level,
      ),
    );
    const m = await build(c.id, r);
    if (m) models.push({ label: c.id, model: m });
  }
  const tBuild = now();

  // Kernel facts for the advisor, once per hardware fingerprint (bench/kernelProbe.ts).
  const hw = hardwareFingerprint();
  if (!readKernelProbe(store, hw)) {
    say('probing the MatMulNBits kernels');
    const k = await runWorker(
      { kind: 'kernel-probe', threads: session.intra_op_threads || 1 },
      {
        signal: opts.signal,
        timeoutMs: opts.timeoutMs,
      },
    );
    if (k.status === 'ok' && k.findings?.kernels) await writeKernelProbe(store, hw, k.findings.kernels);
    else skipped.push({ candidate: 'kernel-probe', reason: k.error?.message ?? k.status });
  }

  const profiles = new Map<string, ModelProfile>();
  await store.ensureRoot();
  const dir = await fs.promises.mkdtemp(path.join(store.root, 'profile-'));
  try {
    for (const m of models) {
      say(`profiling ${m.label}`);
      // One worker per model: a kernel that fails on one candidate costs that candidate only.
      const out = await runWorker(
        { kind: 'profile', models: [m], session, workload: recipe.objective.workload, dir, config },
        {
          signal: opts.signal,
          timeoutMs: opts.timeoutMs,
        },
      );
      const p = out.findings?.profile?.[0];
      if (out.status !== 'ok' || !p) {
        if (m.label === FP32) throw new Error(`profiling the fp32 model failed: ${out.error?.message ?? out.status}`);
        skipped.push({ candidate: m.label, reason: `profile: ${out.error?.message ?? out.status}` });
      } else {
        profiles.set(m.label, p);
      }
    }
  } finally {
    await fs.promises.rm(dir, { recursive: true, force: true });
  }
  const tProfile = now();

  say('sensitivity of each layer');
  const s = await runWorker(
    {
      kind: 'sensitivity',
      model: recipe.model,
      session,
      evaluation,
      candidates,
      config,
      maxWindows: opts.maxWindows,
      groups: layers.map((l) => ({ name: l.name, layers: [l.name] })),
    },
    { signal: opts.signal, timeoutMs: opts.timeoutMs },
  );
  const sensitivity: SensitivityResult | undefined = s.findings?.sensitivity;
  if (s.status !== 'ok' || !sensitivity)
    throw new Error(`sensitivity analysis failed: ${s.error?.message ?? s.status}`);
  const tEnd = now();

  const uniform: Record<string, ModelProfile> = {};
  for (const c of candidates) {
    const p = profiles.get(c.id);
    if (p) uniform[c.id] = p;
  }
  const stored: StoredLayerMeasurements = {
    format: LAYER_FORMAT,
    measured_at: new Date().toISOString(),
    source_model: path.resolve(recipe.model),
    hardware: hardwareFingerprint(),
    fp32: profiles.get(FP32)!,
    recipe_plan: profiles.get('recipe'),
    uniform,
    sensitivity,
    skipped,
    seconds: { total: tEnd - t0, build: tBuild - t0, profile: tProfile - tBuild, sensitivity: tEnd - tProfile },
  };
  const file = layerCachePath(store, recipe.model);
  await store.ensureRoot();
  await fs.promises.mkdir(path.dirname(file), { recursive: true });
  await writeFileAtomic(file, JSON.stringify(stored));
  return stored;
}

export interface PlanVerification {
  plan: LayerPlanResult;
  uniform: LayerPlanResult & { candidate: string };
  knobs: Record<string, import('../config/recipe').SearchValue>;
  /** The verification benchmark of the plan (fp32 timed interleaved). */
  measured?: { speedup?: number; ppl_change?: number; status: string; error?: string };
  measuredUniform?: { speedup?: number; ppl_change?: number; status: string; error?: string };
  seconds: number;
}

function figures(rec: RunRecord): NonNullable<PlanVerification['measured']> {
  const m = rec.metrics;
  const speedup = rec.speedups?.paired?.decode?.median ?? rec.speedups?.decode;
  const ppl_change = m.ppl !== undefined && m.ppl_fp32 ? m.ppl / m.ppl_fp32 - 1 : undefined;
  return { speedup, ppl_change, status: rec.status, error: rec.error?.message };
}

/** The plan under the recipe's budget, the best uniform setting, and (verify) one benchmark of each. */
export async function planAndVerify(
  recipe: Recipe,
  m: LayerMeasurements,
  opts: { verify?: boolean; verifyUniform?: boolean; storeDir?: string; signal?: AbortSignal; quick?: boolean } = {},
): Promise<PlanVerification> {
  const t0 = now();
  const budget = recipe.objective.accuracy.max_ppl_increase;
  const ok = allowedOn(recipe.target.provider, m.sensitivity.candidates);
  const plan = planUnderBudget(m, budget, ok);
  const uniform = bestUniform(m, budget, ok);
  const graph = await inspectModel(recipe.model);
  const level = recipe.quantize?.accuracy_level;
  const knobs = planKnobs(plan.groups, m.sensitivity.candidates, graph.layers, level);
  const out: PlanVerification = { plan, uniform, knobs, seconds: 0 };
  const bench = async (k: Record<string, import('../config/recipe').SearchValue>) =>
    figures(
      await runRecipe(applyKnobs(fp32Recipe(recipe), k), {
        storeDir: opts.storeDir,
        signal: opts.signal,
        baseline: true,
        quick: opts.quick,
        noStore: true,
      }),
    );
  if (opts.verify) out.measured = await bench(knobs);
  if (opts.verifyUniform && uniform.candidate !== FP32) {
    out.measuredUniform = await bench(planKnobs(uniform.groups, m.sensitivity.candidates, graph.layers, level));
  }
  out.seconds = now() - t0;
  return out;
}

/** Text lines for the plan (layer names untrusted: print via util/sanitize). */
export function planLines(v: PlanVerification): string[] {
  const pct = (x?: number) => (x === undefined ? '—' : `${x >= 0 ? '+' : ''}${(x * 100).toFixed(2)}%`);
  const x = (s?: number) => (s === undefined ? '—' : `${s.toFixed(2)}×`);
  const lines = [`plan under the budget (ppl +${(v.plan.budget.max_ppl_increase * 100).toFixed(1)}%):`];
  const counts = new Map<string, number>();
  for (const g of v.plan.groups) counts.set(g.choice, (counts.get(g.choice) ?? 0) + 1);
  lines.push(`  settings: ${[...counts.entries()].map(([k, n]) => `${k} × ${n}`).join(', ')}`);
  for (const g of v.plan.groups.filter((g) => g.choice !== FP32).slice(0, 60)) {
    lines.push(
      `  ${g.group}: ${g.choice} (${g.fp32_us.toFixed(0)} → ${g.time_us.toFixed(0)} ` +
        `µs/step, +${Math.max(0, g.nll_delta).toFixed(4)} nats)`,
    );
  }
  lines.push(`  predicted: decode ${x(v.plan.predicted.speedup)} vs fp32, ppl ${pct(v.plan.predicted.ppl_change)}`);
  if (v.measured)
    lines.push(
      `  measured:  decode ${x(v.measured.speedup)} vs fp32, ppl ${pct(v.measured.ppl_change)} ` +
        `(${v.measured.status}${v.measured.error ? `: ${v.measured.error}` : ''})`,
    );
  lines.push(
    `best uniform setting within the budget: ${v.uniform.candidate}, predicted decode ` +
      `${x(v.uniform.predicted.speedup)}, ppl ${pct(v.uniform.predicted.ppl_change)}`,
  );
  if (v.measuredUniform)
    lines.push(
      `  measured:  decode ${x(v.measuredUniform.speedup)}, ppl ` +
        `${pct(v.measuredUniform.ppl_change)} (${v.measuredUniform.status})`,
    );
  return lines;
}
