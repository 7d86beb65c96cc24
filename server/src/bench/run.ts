// One quantize-and-benchmark run: compress the model the recipe describes (reusing a stored artifact
// when the same configuration was built before), then measure it in a worker process, and append the
// record to the store. Whatever happens — bad input, a crash, a hang, cancellation — the caller gets a
// RunRecord with a status, never an exception.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Recipe } from '../config/recipe';
import type { DecoderConfig } from '../model/decoder';
import { inspectModel } from '../model/graph';
import { graphShapes } from '../config/modelCheck';
import {
  BaselineFigures,
  canonicalJson,
  compresses,
  compressionSections,
  fp32Recipe,
  Metrics,
  newRunId,
  recipeHash,
  RunError,
  RunRecord,
  RunStage,
  RunStatus,
  runConfig,
  SessionOptionsUsed,
  sha256,
  speedupsOf,
  TrialInfo,
  usesCalibration,
} from './record';
import { hardwareFingerprint, onnxruntimeVersion } from './hardware';
import { hashSourceModel, RunStore } from './store';
import { writeFileAtomic } from '../util/atomicWrite';
import type { HardwareFingerprint } from './record';
import type { EvalSettings, MeasureJob } from './protocol';
import { REFERENCE_TOPK } from './accuracy';
import { chooseReference, ReferenceChoice } from './reference';
import { chainRatios, type RaceAgainst, type RaceResult, type RaceSeries, type RaceSettings } from './race';
import { runWorker, WorkerOutcome } from './spawn';
import { engineOf, runtimeFor } from './runtimes';
import {
  besideModel,
  fileRefusal,
  hashRegularFile,
  outsideRefusal,
  PathError,
  readRegularTextSync,
  READ_CAPS,
  recipeReadRefusal,
  recipeRoots,
} from '../util/paths';

export { fp32Recipe, recipeHash } from './record';

export interface RunProgress {
  stage: string;
  message: string;
  fraction?: number;
}

export interface RunOptions {
  /** Workspace holding `.haqa/` (default: the recipe's folder). */
  storeDir?: string;
  signal?: AbortSignal;
  /** Wall-clock limit of the whole run (compression and measurement), ms. */
  timeoutMs?: number;
  onProgress?: (p: RunProgress) => void;
  /** Also measure the fp32 model's latency in this invocation, and report speedups against it. */
  baseline?: boolean;
  /** Fewer repetitions and evaluation windows (the tuner's setting). */
  quick?: boolean;
  trial?: TrialInfo;
  /**
   * What to measure (default both). `{ accuracy: false }` is a speed-only run (no reference, no
   * evaluation); `{ latency: false }` scores accuracy only — e.g. a tuner's second step on a trial
   * whose speed it already has (the artifact is reused, so nothing is rebuilt).
   */
  measure?: { latency?: boolean; accuracy?: boolean };
  /** Don't append the record to the store (the caller will, or it is a dry measurement). */
  noStore?: boolean;
  /** Called with each worker's pid. */
  onWorker?: (pid: number, stage: RunStage) => void;
  /** Test hooks passed to the worker (honoured only with HAQA_BENCH_TEST_HOOKS=1). */
  debug?: MeasureJob['debug'];
  /** Folders the recipe may name files in (the editor's workspace folders); default the recipe's folder. */
  roots?: string[];
  /** The accuracy reference when the source model does not fit in memory (bench/reference.ts). */
  reference?: string;
  /**
   * The tuner's measurement: race the compressed model against the fp32 model in one worker (./race.ts);
   * the record gets `race`. Ignored for fp32 itself and for accuracy-only runs.
   */
  race?: RaceSettings;
  /**
   * A duel (./race.ts RaceAgainst): race against the incumbent's compressed model instead of fp32. It must
   * be an artifact of this run's store; otherwise the race is against fp32 and the record's note says why.
   * `race.threshold` stays on the fp32 scale; the record's figures are put on it (chainRatios).
   */
  raceAgainst?: RaceAgainst;
}

/**
 * A duel's incumbent, when it may be used: an artifact of this store (a path from a run record, yet checked
 * like every path a run reads), present, other than the contender itself, and run with the same threads.
 * Otherwise why not, for the note. Threads must match because the two sessions share one process: a
 * session with more threads keeps its pool spinning after each run (onnxruntime's default), which slows the
 * rival timed next — in a live search under the load generator a 2-thread plan won its duel (0.95×)
 * against a 1-thread incumbent that the ground truth has 9% faster. Such a pair races fp32, loaded with the
 * contender's options as before duels.
 */
function duelOf(
  against: RaceAgainst | undefined,
  store: RunStore,
  contender: string,
  session: SessionOptionsUsed,
  engine: string,
): { against?: RaceAgainst; refused?: string } | undefined {
  if (!against) return undefined;
  const why = (reason: string) => ({ refused: `raced against fp32, not ${against.label}: ${reason}` });
  if (engine !== 'onnxruntime') return why(`the contender runs in ${engine}, the incumbent in onnxruntime`);
  const model = path.resolve(against.model);
  const inside = path.relative(store.artifactsDir, model);
  if (inside.startsWith('..') || path.isAbsolute(inside)) return why('its model is not an artifact of the store');
  if (!model.endsWith('.onnx')) return why('only an onnxruntime model can be the reference');
  if (!fs.existsSync(model)) return why('its artifact is no longer in the store');
  if (model === path.resolve(contender)) return why('it is the same model');
  const differ = (['provider', 'intra_op_threads', 'inter_op_threads', 'execution_mode'] as const).filter(
    (k) => against.session[k] !== session[k],
  );
  if (differ.length)
    return why(
      `its session options differ (${differ.map((k) => `${k} ${against.session[k]} vs ${session[k]}`).join(', ')})`,
    );
  if (!(against.ratios.decode! > 0 || against.ratios.inference! > 0)) return why('it has no ratio to fp32');
  return { against: { ...against, model } };
}

/** The worker's race settings in a duel: threshold and the unpaired fallback's figures relative to the incumbent. */
function duelSettings(race: RaceSettings, against?: RaceAgainst): RaceSettings {
  if (!against) return race;
  const series = (race.series ?? (against.ratios.decode !== undefined ? 'decode' : 'inference')) as RaceSeries;
  const k = against.ratios[series] ?? 1;
  const referenceMs: RaceSettings['referenceMs'] = {};
  for (const [s, ms] of Object.entries(race.referenceMs ?? {}) as [RaceSeries, number | undefined][]) {
    const r = against.ratios[s];
    if (ms !== undefined && r !== undefined) referenceMs[s] = ms * r;
  }
  return { ...race, threshold: (race.threshold ?? 0) - Math.log(k), referenceMs };
}

function withNote(r: RaceResult, note: string): RaceResult {
  return { ...r, note: r.note ? `${r.note}; ${note}` : note };
}

/** The run's accuracy reference; a stated one must lie inside the roots like every file a run reads. */
async function pickReference(recipe: Recipe, opts: RunOptions): Promise<ReferenceChoice> {
  if (opts.reference) {
    const refused = outsideRefusal(opts.reference, opts.roots ?? recipeRoots(recipe.file), 'reference model');
    if (refused) throw new RunFailure('error', { message: refused.message, stage: 'reference', where: opts.reference });
  }
  return chooseReference(recipe.model, { stated: opts.reference }).catch((err: Error & { file?: string }) => {
    throw new RunFailure('error', { message: err.message, stage: 'reference', where: err.file ?? recipe.model });
  });
}

/** Bump when what a reference holds or how its windows are chosen changes: old ones are then ignored. */
const REFERENCE_FORMAT = 2;

class RunFailure extends Error {
  constructor(
    readonly status: RunStatus,
    readonly error: RunError,
  ) {
    super(error.message);
  }
}

export function sessionOptionsOf(recipe: Recipe): SessionOptionsUsed {
  return {
    provider: recipe.target.provider,
    intra_op_threads: recipe.runtime.intra_op_threads,
    inter_op_threads: recipe.runtime.inter_op_threads,
    graph_optimization: recipe.runtime.graph_optimization,
    execution_mode: recipe.runtime.execution_mode,
  };
}

/**
 * num_key_value_heads etc. for the decoder session: config.json beside the source model, corrected by the
 * graph's own static shapes where they disagree (the graph is what onnxruntime runs), with a note saying so.
 */
export async function decoderConfig(model: string, notes: string[] = []): Promise<DecoderConfig | undefined> {
  let c: Record<string, unknown>;
  try {
    c = JSON.parse(
      readRegularTextSync(besideModel(model, 'config.json', 'config.json'), 'config.json', READ_CAPS.config),
    );
  } catch {
    return undefined;
  }
  const heads = (c.num_attention_heads ?? c.n_head) as number | undefined;
  const hidden = (c.hidden_size ?? c.n_embd) as number | undefined;
  if (typeof c.num_key_value_heads !== 'number' && typeof heads !== 'number') return undefined;
  const cfg: DecoderConfig = {
    num_key_value_heads: (c.num_key_value_heads as number | undefined) ?? heads!,
    head_dim: c.head_dim as number | undefined,
    hidden_size: hidden,
    num_attention_heads: heads,
  };
  // The graph's declared input shapes, read without weights when the file is small enough to decode here;
  // DecoderSession applies the same rule to larger ones (their static dims win there too).
  try {
    if (fs.statSync(model).size <= 256 * 2 ** 20) {
      const arch = {
        num_key_value_heads: cfg.num_key_value_heads,
        head_dim: cfg.head_dim ?? (hidden && heads ? hidden / heads : NaN),
      };
      const shapes = graphShapes(await inspectModel(model));
      if (shapes.kvHeads !== undefined && shapes.kvHeads !== arch.num_key_value_heads) {
        notes.push(
          `config.json says ${arch.num_key_value_heads} kv heads but ` +
            `the graph's ${shapes.witness.kvHeads} is ${shapes.kvHeads}: ` +
            `measured with the graph's ${shapes.kvHeads}`,
        );
        cfg.num_key_value_heads = shapes.kvHeads;
      }
      if (shapes.headDim !== undefined && shapes.headDim !== arch.head_dim) {
        notes.push(
          `config.json implies head_dim ${arch.head_dim} but the ` +
            `graph's ${shapes.witness.headDim} is ${shapes.headDim}: ` +
            `measured with the graph's ${shapes.headDim}`,
        );
        cfg.head_dim = shapes.headDim;
      }
    }
  } catch {
    /* an unreadable graph fails in the load stage with its own message */
  }
  return cfg;
}

/** Evaluation settings with the tokenizer found, or a failure naming the missing file. */
export function evaluationOf(recipe: Recipe): EvalSettings | undefined {
  const ev = recipe.evaluation;
  if (!ev.text) return undefined;
  if (!fs.existsSync(ev.text)) {
    throw new RunFailure('error', {
      message: `evaluation text not found: ${ev.text} (evaluation.text in ${recipe.file})`,
      stage: 'setup',
      where: ev.text,
      recipe_path: ['evaluation', 'text'],
    });
  }
  const tokenizer = ev.tokenizer ?? path.join(path.dirname(recipe.model), 'tokenizer.json');
  const recipe_path = ev.tokenizer ? ['evaluation', 'tokenizer'] : ['model'];
  if (!fs.existsSync(tokenizer)) {
    const why = ev.tokenizer
      ? `evaluation.tokenizer in ${recipe.file}`
      : 'set evaluation.tokenizer, or put tokenizer.json beside the model';
    throw new RunFailure('error', {
      message: `tokenizer not found: ${tokenizer} (${why})`,
      stage: 'setup',
      where: tokenizer,
      recipe_path,
    });
  }
  // The one beside the model must really be there (not a symlink out of
  // its folder), and be a regular file under the cap.
  const refused =
    (ev.tokenizer ? undefined : guard(() => besideModel(recipe.model, 'tokenizer.json', 'tokenizer'))) ??
    fileRefusal(tokenizer, 'tokenizer', READ_CAPS.tokenizer);
  if (refused)
    throw new RunFailure('error', { message: refused.message, stage: 'setup', where: tokenizer, recipe_path });
  return { text: ev.text, tokenizer, window: ev.window, max_windows: ev.max_windows };
}

function evaluationFiles(recipe: Recipe): string[] {
  return [recipe.evaluation.text, recipe.evaluation.tokenizer].filter((x): x is string => x !== undefined);
}

/**
 * Hash of a text or tokenizer, read in this (the parent) process before any worker: so only a regular
 * file within its cap (util/paths.ts), which cannot hang the read; FIFOs and devices were refused.
 */
async function fileHash(file: string, what: string, cap: number): Promise<string> {
  const refused = fileRefusal(file, what, cap);
  if (refused) throw refused;
  return hashRegularFile(file, what);
}

function guard(fn: () => unknown): PathError | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    if (err instanceof PathError) return err;
    throw err;
  }
}

/**
 * Bump when the compression engine changes what it writes for the same recipe, so that artifacts built
 * by an older engine are not reused (they stay until `haqa runs prune`).
 */
const ARTIFACT_FORMAT = 1;

/**
 * The store key of a compressed model: the source model's content, the compression sections, and the
 * calibration text's content when a method reads it. Runtime knobs, workload and evaluation don't
 * change the bytes, so trials that differ only there share one artifact.
 */
async function artifactKey(recipe: Recipe, sourceHash: string): Promise<string> {
  const sections = compressionSections(recipe);
  let calibrationText: string | undefined;
  if (sections.calibration && recipe.calibration.text) {
    if (!fs.existsSync(recipe.calibration.text)) {
      throw new RunFailure('error', {
        message: `calibration text not found: ${recipe.calibration.text} (calibration.text in ${recipe.file})`,
        stage: 'setup',
        where: recipe.calibration.text,
        recipe_path: ['calibration', 'text'],
      });
    }
    calibrationText = await fileHash(recipe.calibration.text, 'calibration text', READ_CAPS.text);
  }
  return sha256(
    canonicalJson({ format: ARTIFACT_FORMAT, source: sourceHash, ...sections, calibration_text: calibrationText }),
  ).slice(0, 32);
}

export async function runRecipe(recipe: Recipe, opts: RunOptions = {}): Promise<RunRecord> {
  const started = new Date();
  const quick = opts.quick ?? false;
  const store = new RunStore(opts.storeDir ?? path.dirname(recipe.file));
  const progress = (stage: string, message: string, fraction?: number) =>
    opts.onProgress?.({ stage, message, fraction });
  const session = sessionOptionsOf(recipe);
  const record: RunRecord = {
    id: newRunId(started),
    recipe_file: recipe.file,
    recipe_hash: recipeHash(recipe),
    source_model: recipe.model,
    config: runConfig(recipe),
    status: 'ok',
    metrics: {},
    session_options: session,
    hardware: withCachedBandwidth(hardwareFingerprint(), store),
    onnxruntime: onnxruntimeVersion(),
    runtime: { engine: engineOf(recipe), version: runtimeFor(engineOf(recipe)).version() },
    quick,
    started: started.toISOString(),
    finished: '',
    trial: opts.trial,
  };

  // One deadline for the whole run; each worker gets what is left of it.
  const deadline = opts.timeoutMs !== undefined ? Date.now() + opts.timeoutMs : undefined;
  let stage: RunStage = 'setup';

  const worker = async (
    job: Parameters<typeof runWorker>[0],
    s: RunStage,
  ): Promise<WorkerOutcome & { metrics: Metrics }> => {
    stage = s;
    if (opts.signal?.aborted) throw new RunFailure('cancelled', { message: `cancelled before ${s}`, stage: s });
    const left = deadline !== undefined ? deadline - Date.now() : undefined;
    if (left !== undefined && left <= 0)
      throw new RunFailure('timeout', { message: `no time left for ${s}`, stage: s });
    const out: WorkerOutcome = await runWorker(job, {
      signal: opts.signal,
      timeoutMs: left,
      onProgress: (p) => progress(p.stage, p.message, p.fraction),
      onSpawn: (pid) => opts.onWorker?.(pid, s),
    });
    if (out.status !== 'ok' || !out.metrics) {
      const err = out.error ?? { message: 'the worker gave no result', stage: out.stage };
      // A reference or baseline worker that fails is reported under that stage.
      if (s !== 'latency' && out.status === 'error' && err.stage !== 'load') err.stage = s;
      if (out.status === 'error' && err.where === recipe.model) err.recipe_path ??= ['model'];
      if (out.status === 'error' && evaluationFiles(recipe).includes(err.where ?? ''))
        err.recipe_path ??= ['evaluation', err.where === recipe.evaluation.text ? 'text' : 'tokenizer'];
      if (s === 'compress' && out.status === 'error') err.recipe_path ??= ['quantize'];
      throw new RunFailure(out.status, err);
    }
    return out as WorkerOutcome & { metrics: Metrics };
  };

  try {
    if (!fs.existsSync(recipe.model)) {
      throw new RunFailure('error', {
        message: `model file not found: ${recipe.model} (model in ${recipe.file})`,
        stage: 'setup',
        where: recipe.model,
        recipe_path: ['model'],
      });
    }
    if (recipe.target.provider !== 'cpu') {
      throw new RunFailure('error', {
        message:
          `execution provider '${recipe.target.provider}' is not available ` +
          `here: onnxruntime-node runs 'cpu' (target.provider in ${recipe.file})`,
        stage: 'setup',
        where: recipe.file,
        recipe_path: ['target', 'provider'],
      });
    }
    const wantLatency = opts.measure?.latency ?? true;
    const wantAccuracy = opts.measure?.accuracy ?? true;
    // The path policy (util/paths.ts), the rule `haqa check` reports with: what it calls "not read" is not read.
    const refused = recipeReadRefusal(recipe, opts.roots ?? recipeRoots(recipe.file), {
      model: true,
      calibration: compresses(recipe) && usesCalibration(recipe),
      evaluation: wantAccuracy,
    });
    if (refused) {
      const { message, file: where, recipePath: recipe_path, code } = refused;
      throw new RunFailure('error', { message, stage: 'setup', where, recipe_path, code });
    }
    const evaluation = wantAccuracy ? evaluationOf(recipe) : undefined;
    const notes: string[] = [];
    const config = await decoderConfig(recipe.model, notes);
    for (const n of notes) progress('setup', `note: ${n}`);
    if (notes.length) record.notes = notes;
    progress('setup', 'hashing the source model');
    const source = await hashSourceModel(recipe.model).catch((err: Error) => {
      // The model is read (for its external data) before any worker loads it.
      throw new RunFailure('error', {
        message: err.message,
        stage: 'load',
        where: recipe.model,
        recipe_path: ['model'],
      });
    });

    // ---- compress (or reuse)
    let measured = recipe.model;
    let modelBytes = source.bytes;
    if (compresses(recipe)) {
      stage = 'compress';
      const key = await artifactKey(recipe, source.hash);
      const artifactFile = runtimeFor(engineOf(recipe)).artifactFile;
      let art = store.findArtifact(key, artifactFile);
      if (art) {
        progress('compress', `reusing artifact ${key}`);
        record.artifact_reused = true;
        record.compress_seconds = 0;
      } else {
        progress('compress', 'compressing');
        const t0 = Date.now();
        // Compression runs in a worker as well: a crash or out-of-memory there costs this record only.
        const job = (out: string) => ({ kind: 'compress' as const, recipe, out, roots: opts.roots, debug: opts.debug });
        art = await store
          .buildArtifact(
            key,
            async (out) => (await worker(job(out), 'compress')).artifact,
            {
              source_model: recipe.model,
              source_hash: source.hash,
              recipe: compressionSections(recipe),
            },
            artifactFile,
          )
          .catch((err: Error) => {
            if (err instanceof RunFailure) throw err;
            throw new RunFailure('error', {
              message: `compression failed: ${err.message}`,
              stage: 'compress',
              where: recipe.model,
              recipe_path: ['quantize'],
            });
          });
        record.artifact_reused = false;
        record.compress_seconds = (Date.now() - t0) / 1000;
      }
      measured = art.model;
      modelBytes = art.meta.model_bytes;
      record.model_hash = art.meta.model_hash;
    } else {
      record.model_hash = source.hash;
    }
    record.artifact = measured;

    // ---- the fp32 reference, computed once per (fp32 model, evaluation settings)
    let reference: string | undefined;
    if (compresses(recipe) && wantAccuracy) {
      // The source, or a stated model where the source would not fit in memory (bench/reference.ts).
      const ref = await pickReference(recipe, opts);
      record.reference = ref;
      const refHash = ref.kind === 'source' ? source.hash : (await hashSourceModel(ref.model)).hash;
      const refKey = sha256(
        canonicalJson({
          format: REFERENCE_FORMAT,
          fp32: refHash,
          evaluation: evaluation && {
            text: await fileHash(evaluation.text, 'evaluation text', READ_CAPS.text),
            tokenizer: await fileHash(evaluation.tokenizer, 'tokenizer', READ_CAPS.tokenizer),
            window: evaluation.window,
            max_windows: evaluation.max_windows,
            quick,
            k: REFERENCE_TOPK,
          },
          // seeded inputs of non-decoders follow the workload
          workload: evaluation ? undefined : recipe.objective.workload,
        }),
      ).slice(0, 32);
      reference = store.referencePath(refKey);
      if (!validReference(reference, refKey)) {
        await store.ensureRoot();
        await fs.promises.mkdir(path.dirname(reference), { recursive: true });
        await worker(
          {
            kind: 'reference',
            model: ref.model,
            session,
            workload: recipe.objective.workload,
            quick,
            evaluation,
            out: reference,
            key: refKey,
            config,
            debug: opts.debug,
          },
          'reference',
        );
      }
    }

    // ---- the model itself, and the fp32 baseline (or a duel's incumbent) timed interleaved with it when asked
    const racing = opts.race !== undefined && compresses(recipe) && wantLatency;
    const withBaseline = (opts.baseline === true || racing) && compresses(recipe) && wantLatency;
    const duel = racing ? duelOf(opts.raceAgainst, store, measured, session, engineOf(recipe)) : undefined;
    const out = await worker(
      {
        kind: 'measure',
        model: measured,
        session,
        workload: recipe.objective.workload,
        quick,
        latency: wantLatency,
        evaluation,
        reference,
        config,
        debug: opts.debug,
        baseline: withBaseline ? (duel?.against?.model ?? recipe.model) : undefined,
        ...(duel?.against ? { baselineSession: duel.against.session, baselineLabel: duel.against.label } : {}),
        engine: recipe.runtime.engine,
        llama: recipe.runtime.llama,
        race: racing ? duelSettings(opts.race!, duel?.against) : undefined,
      },
      'latency',
    );
    if (racing && out.baseline?.race) {
      const r = out.baseline.race;
      record.race = duel?.against ? chainRatios(r, duel.against) : duel?.refused ? withNote(r, duel.refused) : r;
      delete out.baseline.race;
    }
    const m = out.metrics;
    record.metrics = { ...m, model_bytes: modelBytes };
    if (withBaseline && out.baseline && (opts.baseline || !racing)) {
      const b = out.baseline;
      record.baseline = {
        prefill_ms: b.prefill_ms,
        decode_ms_per_token: b.decode_ms_per_token,
        inference_ms: b.inference_ms,
        throughput_tok_s: b.throughput_tok_s,
        model_bytes: source.bytes,
        paired: b.paired,
      };
    }
    if (!compresses(recipe)) {
      // The fp32 model against itself: agreement is total by definition, no second pass needed.
      if (m.ppl !== undefined)
        Object.assign(record.metrics, { ppl_fp32: m.ppl, kl: 0, top1: 1, kl_method: 'identical' });
      if (opts.baseline && wantLatency) record.baseline = { ...pickBaseline(record.metrics) };
    }
    if (record.baseline) {
      record.speedups = speedupsOf(record.metrics, record.baseline);
      delete record.baseline.paired; // kept once, under speedups
    }
  } catch (err) {
    if (err instanceof RunFailure) {
      record.status = err.status;
      record.error = err.error;
    } else {
      record.status = 'error';
      record.error = {
        message: (err as Error)?.message ?? String(err),
        stage,
        where: (err as { file?: string })?.file,
      };
    }
  }

  record.finished = new Date().toISOString();
  if (!opts.noStore) {
    try {
      await store.append(record);
    } catch (err) {
      // The measurement stands; say that it could not be kept.
      if (record.status === 'ok') {
        record.status = 'error';
        record.error = {
          message: `measured, but the record could not be stored: ${(err as Error).message}`,
          stage: 'store',
          where: store.runsFile,
        };
      } else if (record.error) {
        record.error.message += ` (and the record could not be stored: ${(err as Error).message})`;
      }
    }
  }
  return record;
}

function pickBaseline(m: Metrics): BaselineFigures {
  return {
    prefill_ms: m.prefill_ms,
    decode_ms_per_token: m.decode_ms_per_token,
    inference_ms: m.inference_ms,
    throughput_tok_s: m.throughput_tok_s,
    peak_rss_bytes: m.peak_rss_bytes,
    model_bytes: m.model_bytes,
  };
}

function validReference(file: string, key: string): boolean {
  try {
    // Only the head is needed to check the key; the file is written atomically, so it is whole or absent.
    const fd = fs.openSync(file, 'r');
    try {
      const head = Buffer.alloc(200);
      const n = fs.readSync(fd, head, 0, 200, 0);
      return head.subarray(0, n).toString().startsWith(`{"key":"${key}"`);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- the hardware profile

/** What identifies a machine for a cached bandwidth figure. */
function machineKey(h: HardwareFingerprint): string {
  return sha256(
    canonicalJson({ cpu: h.cpu, arch: h.arch, isa: h.isa, cores: h.cores, memory: h.memory_bytes, os: h.os }),
  ).slice(0, 16);
}

function hardwareFile(store: RunStore): string {
  return path.join(store.root, 'hardware.json');
}

function withCachedBandwidth(h: HardwareFingerprint, store: RunStore): HardwareFingerprint {
  try {
    const c = JSON.parse(store.readText(hardwareFile(store), 'hardware.json', READ_CAPS.config)) as {
      key: string;
      bandwidth_gbps: number;
    };
    if (c.key === machineKey(h) && typeof c.bandwidth_gbps === 'number')
      return { ...h, bandwidth_gbps: c.bandwidth_gbps };
  } catch {
    /* not measured yet */
  }
  return h;
}

/**
 * The hardware fingerprint with the memory read bandwidth, measured once per machine (in a worker,
 * so the caller never holds the 512 MiB buffer) and cached in `.haqa/hardware.json`. The agent's static
 * prompt and the decode-latency floor (weight bytes / bandwidth) read it.
 */
export async function hardwareProfile(opts: {
  storeDir: string;
  refresh?: boolean;
  signal?: AbortSignal;
  bytes?: number;
}): Promise<HardwareFingerprint> {
  const store = new RunStore(opts.storeDir);
  const h = hardwareFingerprint();
  if (!opts.refresh) {
    const cached = withCachedBandwidth(h, store);
    if (cached.bandwidth_gbps !== undefined) return cached;
  }
  const out = await runWorker(
    { kind: 'bandwidth', bytes: opts.bytes, threads: h.cores },
    { signal: opts.signal, timeoutMs: 120_000 },
  );
  if (out.status !== 'ok' || !out.bandwidth) return h; // the fingerprint stands without it
  await store.ensureRoot();
  const { gbps, threads, bytes } = out.bandwidth;
  const cached = { key: machineKey(h), bandwidth_gbps: gbps, threads, bytes, measured: new Date().toISOString() };
  await writeFileAtomic(store.inside(hardwareFile(store)), JSON.stringify(cached, null, 2) + '\n');
  return { ...h, bandwidth_gbps: out.bandwidth.gbps };
}
