// The recipe checks, in three stages that each need the previous one: YAML syntax (parse.ts), the JSON
// Schema (schema.ts), then semantics against the model graph and the target (here). The editor and
// `haqa check` both call `analyzeRecipe`; hover, completion and quick fixes reuse its result.
import * as path from 'node:path';
import type { ModelGraph } from '../model/graph';
import { nearestPatterns } from './nearest';
import { humanBytes } from '../util/format';
import { Diagnostic, closest, diag } from './diagnostics';
import { ModelCache } from './modelCache';
import { JsonPath, ParsedYaml, parseYaml, rangeOf } from './parse';
import { validateSchema, knobValueError } from './schema';
import { BlockSize, Recipe, resolveRecipe, parseBytes } from './recipe';
import { parseKnob } from './plan';
import { SECTIONS, type SectionDecl, globFields, usesCalibration } from './methods';
import { int8Saturates } from '../util/cpu';
import { fileRefusal, outsideRefusal, PathCode, READ_CAPS, recipeRoots } from '../util/paths';
import { LayerIndex, PlannedLayer, layerIndex, planWithSources, plannedBytes } from './layers';
import { checkModelInputs } from './modelCheck';
import { checkRuntime } from './runtimeCheck';

export interface CheckContext {
  models: ModelCache;
  /**
   * Folders the recipe may reference files in. Paths outside are reported and not read. Empty: the
   * recipe's own folder (what the CLI uses).
   */
  workspaceRoots?: string[];
}

export interface RecipeAnalysis {
  file: string;
  parsed: ParsedYaml;
  /** The document as written, minus values the schema refused (what the semantic stage saw). */
  doc?: Record<string, unknown>;
  recipe?: Recipe;
  graph?: ModelGraph;
  index?: LayerIndex;
  plan?: PlannedLayer[];
  diagnostics: Diagnostic[];
  /** Absolute paths of the files the result depends on (model, texts, tokenizer): re-check when they change. */
  dependencies: string[];
}

export const BLOCK_SIZES: BlockSize[] = [16, 32, 64, 128, 256];
/** Bit-widths onnxruntime's CPU MatMulNBits kernels run (the 4- and 8-bit paths bench/REPORT.md measures). */
export const CPU_BITS = [4, 8];

/** `previous`: the last analysis of the same document, whose parse tree an edit may patch (parse.ts). */
export async function analyzeRecipe(
  text: string,
  file: string,
  ctx: CheckContext,
  previous?: RecipeAnalysis,
): Promise<RecipeAnalysis> {
  const parsed = parseYaml(text, previous?.parsed);
  const a: RecipeAnalysis = {
    file: path.resolve(file),
    parsed,
    diagnostics: [...parsed.diagnostics],
    dependencies: [],
  };
  if (parsed.fatal) return a;
  const top = rangeOf(parsed, []);
  const value = parsed.value;
  if (value === null || value === undefined) {
    a.diagnostics.push(
      diag(top, 'error', 'empty-recipe', "the recipe is empty; it needs at least 'model: ./model.onnx'"),
    );
    return a;
  }
  const schema = validateSchema(parsed);
  a.diagnostics.push(...schema.diagnostics);
  if (typeof value !== 'object' || Array.isArray(value)) return a;
  const doc = prune(value as Record<string, unknown>, schema.paths);
  if (!doc || (schema.diagnostics.length && validateSchema(parsed, doc).diagnostics.length)) return a;
  a.doc = doc;
  try {
    a.recipe = resolveRecipe(doc, a.file);
  } catch (err) {
    a.diagnostics.push(diag(top, 'error', 'invalid-value', `cannot read the recipe: ${(err as Error).message}`));
    return a;
  }
  await semanticChecks(a, ctx);
  return a;
}

/** A copy without the keys the schema refused, or undefined when refusals leave nothing checkable. */
function prune(
  value: Record<string, unknown>,
  refused: { path: JsonPath; keyword: string }[],
): Record<string, unknown> | undefined {
  if (!refused.length) return value;
  const copy = structuredClone(value);
  for (const { path: p, keyword } of refused) {
    if (keyword === 'required' || p.length === 0) return undefined;
    const parent = p
      .slice(0, -1)
      .reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k as string], copy);
    const last = p[p.length - 1];
    if (typeof last === 'number' || Array.isArray(parent) || typeof parent !== 'object' || parent === null)
      return undefined;
    delete (parent as Record<string, unknown>)[last];
  }
  return copy;
}

// ---------------------------------------------------------------- semantics

interface FileCodes {
  missing: string;
  dir: string;
  outside: PathCode;
}
const FILE_CODES: FileCodes = {
  missing: 'file-not-found',
  dir: 'path-is-directory',
  outside: 'path-outside-workspace',
};
const MODEL_CODES: FileCodes = {
  missing: 'model-not-found',
  dir: 'model-is-directory',
  outside: 'model-outside-workspace',
};

/**
 * Checks a referenced file with the path policy (util/paths.ts), the rule the engine enforces: inside
 * the workspace (symlinks resolved), exists, a regular file within its size cap. Returns whether it may
 * be read.
 */
function checkFileRef(
  a: RecipeAnalysis,
  roots: string[],
  p: JsonPath,
  abs: string,
  what: string,
  maxBytes?: number,
  codes = FILE_CODES,
): boolean {
  a.dependencies.push(abs);
  const range = rangeOf(a.parsed, p);
  const outside = outsideRefusal(abs, roots, what, codes.outside);
  if (outside) {
    a.diagnostics.push(diag(range, 'warning', outside.code, outside.message));
    return false;
  }
  const refused = fileRefusal(abs, what, maxBytes);
  if (refused) {
    const code =
      refused.code === 'file-not-found'
        ? codes.missing
        : refused.code === 'path-is-directory'
          ? codes.dir
          : refused.code;
    a.diagnostics.push(diag(range, 'error', code, refused.message));
    return false;
  }
  return true;
}

async function semanticChecks(a: RecipeAnalysis, ctx: CheckContext): Promise<void> {
  const r = a.recipe!;
  const doc = a.doc!;
  const roots = recipeRoots(a.file, ctx.workspaceRoots);
  const d = doc as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

  // Texts and tokenizer.
  if (r.evaluation.text)
    checkFileRef(a, roots, ['evaluation', 'text'], r.evaluation.text, 'evaluation text', READ_CAPS.text);
  if (r.calibration.text)
    checkFileRef(a, roots, ['calibration', 'text'], r.calibration.text, 'calibration text', READ_CAPS.text);
  if (r.evaluation.tokenizer)
    checkFileRef(a, roots, ['evaluation', 'tokenizer'], r.evaluation.tokenizer, 'tokenizer', READ_CAPS.tokenizer);
  if (usesCalibration(r) && !r.calibration.text) {
    a.diagnostics.push(
      diag(
        rangeOf(a.parsed, d.calibration ? ['calibration'] : ['quantize'], 'key'),
        'warning',
        'calibration-missing',
        'GPTQ, Wanda and static activations need calibration text ' +
          '(calibration.text); without it the evaluation text is used',
      ),
    );
  }

  // Checks that need no model.
  checkSearchSpace(a);
  checkSparsityPatterns(a);
  checkRuntime(a);

  // The model.
  const modelOk = checkFileRef(a, roots, ['model'], r.model, 'model', undefined, MODEL_CODES);
  if (!modelOk) return;
  const load = await ctx.models.get(r.model);
  if (!load.ok) {
    const codes = {
      invalid: 'model-invalid',
      corrupt: 'model-unreadable',
      directory: 'model-is-directory',
      missing: 'model-not-found',
    };
    const code = codes[load.kind];
    a.diagnostics.push(diag(rangeOf(a.parsed, ['model']), 'error', code, load.message));
    return;
  }
  const g = load.graph;
  a.graph = g;
  a.index = layerIndex(g.layers);
  checkModelInputs(a);
  if (g.layers.length === 0) {
    a.diagnostics.push(
      diag(
        rangeOf(a.parsed, ['model']),
        'warning',
        'model-no-layers',
        `${path.basename(r.model)} has no compressible layers (MatMul/Gemm with a constant 2-D weight)`,
      ),
    );
    return;
  }
  checkPatterns(a);
  a.plan = planWithSources(r, doc, g.layers);
  checkQuantPlan(a);
  checkLowRank(a);
  checkMemory(a);
}

function checkSearchSpace(a: RecipeAnalysis): void {
  const space = a.recipe!.search.space;
  for (const [knob, values] of Object.entries(space)) {
    const { path: name, scope } = parseKnob(knob);
    if (name === 'quantize.skip' && scope === undefined) {
      a.diagnostics.push(
        diag(
          rangeOf(a.parsed, ['search', 'space', knob], 'key'),
          'error',
          'knob-needs-scope',
          'quantize.skip needs a layer scope: quantize.skip@<glob>',
        ),
      );
    }
    if (!Array.isArray(values)) continue;
    values.forEach((v, i) => {
      const err = knobValueError(name, v);
      if (err)
        a.diagnostics.push(diag(rangeOf(a.parsed, ['search', 'space', knob, i]), 'error', 'knob-value-invalid', err));
    });
  }
}

function checkSparsityPatterns(a: RecipeAnalysis): void {
  const sp = a.recipe!.sparsity;
  if (!sp) return;
  sp.rules.forEach((rule, j) => {
    if (rule.pattern !== undefined) {
      const m = /^(\d+):(\d+)$/.exec(rule.pattern);
      const n = Number(m?.[1]),
        mm = Number(m?.[2]);
      if (!m || n < 1 || mm < 2 || n >= mm) {
        a.diagnostics.push(
          diag(
            rangeOf(a.parsed, ['sparsity', 'rules', j, 'pattern']),
            'error',
            'invalid-nm-pattern',
            `N:M pattern '${rule.pattern}' keeps N of every M weights: it needs 1 ≤ N < M (e.g. 2:4)`,
          ),
        );
      } else if (a.recipe!.target.provider === 'cpu') {
        a.diagnostics.push(
          diag(
            rangeOf(a.parsed, ['sparsity', 'rules', j, 'pattern']),
            'hint',
            'sparsity-no-speedup-cpu',
            `the CPU provider has no N:M sparse kernels: ${rule.pattern} sparsity costs ` +
              'accuracy and saves no time there (it can on GPUs with sparse tensor cores)',
          ),
        );
      }
      if (rule.ratio !== undefined) {
        a.diagnostics.push(
          diag(
            rangeOf(a.parsed, ['sparsity', 'rules', j, 'ratio'], 'key'),
            'warning',
            'sparsity-pattern-and-ratio',
            'a rule has both pattern and ratio; the pattern wins',
          ),
        );
      }
    } else if (rule.ratio === undefined) {
      a.diagnostics.push(
        diag(
          rangeOf(a.parsed, ['sparsity', 'rules', j], 'key'),
          'warning',
          'sparsity-rule-empty',
          'this rule sets neither pattern (N:M) nor ratio, so it prunes nothing',
        ),
      );
    }
  });
}

function noMatch(
  a: RecipeAnalysis,
  p: JsonPath,
  glob: string,
  kind: 'key' | 'value' = 'value',
  remove: JsonPath = p,
): void {
  const layers = a.graph!.layers;
  // Nearest patterns that match (wildcards kept): the fixes replace only the pattern's text.
  const guesses = nearestPatterns(
    glob,
    layers.map((l) => l.name),
  );
  const example = layers
    .slice(0, 2)
    .map((l) => l.name)
    .join(', ');
  a.diagnostics.push(
    diag(
      rangeOf(a.parsed, p, kind),
      'warning',
      'pattern-no-match',
      `'${glob}' matches no layer of ${path.basename(a.graph!.path)} (${layers.length} ` +
        `layers, e.g. ${example})${guesses.length ? `; did you mean '${guesses[0]}'?` : ''}`,
      guesses.length && kind === 'value'
        ? { fix: 'replace', path: p, values: guesses, ...(remove !== p ? { remove } : {}) }
        : { fix: 'remove', path: remove },
    ),
  );
}

function checkPatterns(a: RecipeAnalysis): void {
  const r = a.recipe!;
  const ix = a.index!;
  // Every layer glob the method table says a section holds: its glob lists, and each override's or rule's match.
  for (const d of SECTIONS as readonly SectionDecl[]) {
    const section = (r as unknown as Record<string, Record<string, unknown> | undefined>)[d.name];
    if (!section) continue;
    const { lists, matchIn } = globFields(d);
    for (const list of lists) {
      (section[list] as string[] | undefined)?.forEach((g, j) => {
        if (!ix.match(g).length) noMatch(a, [d.name, list, j], g);
      });
    }
    if (!matchIn) continue;
    (section[matchIn] as { match: string }[] | undefined)?.forEach((o, j) => {
      if (!ix.match(o.match).length) noMatch(a, [d.name, matchIn, j, 'match'], o.match, 'value', [d.name, matchIn, j]);
    });
  }
  for (const knob of Object.keys(r.search.space)) {
    const { scope } = parseKnob(knob);
    if (scope !== undefined && !ix.match(scope).length) noMatch(a, ['search', 'space', knob], scope, 'key');
  }
}

/** Group planned layers by the recipe value that decided a field, so each value gets one diagnostic. */
function bySource(
  plan: PlannedLayer[],
  field: 'bits' | 'block_size' | 'accuracy_level',
  pred: (p: PlannedLayer) => boolean,
): Map<string, PlannedLayer[]> {
  const groups = new Map<string, PlannedLayer[]>();
  for (const p of plan) {
    if (!p.quant || !pred(p)) continue;
    const key = JSON.stringify(p.source[field] ?? ['quantize']);
    let g = groups.get(key);
    if (!g) groups.set(key, (g = []));
    g.push(p);
  }
  return groups;
}

export function listLayers(ls: { name: string }[], max = 4, extra: (l: never) => string = () => ''): string {
  const shown = ls
    .slice(0, max)
    .map((l) => `${l.name}${extra(l as never)}`)
    .join(', ');
  return ls.length > max ? `${shown} and ${ls.length - max} more` : shown;
}

/** The allowed block size closest to `want` (in log scale) that divides every K, if any does. */
export function nearestBlockSize(want: number, Ks: number[]): BlockSize | undefined {
  const ok = BLOCK_SIZES.filter((b) => Ks.every((k) => k % b === 0));
  ok.sort((x, y) => Math.abs(Math.log2(x / want)) - Math.abs(Math.log2(y / want)) || y - x);
  return ok[0];
}

function checkQuantPlan(a: RecipeAnalysis): void {
  const plan = a.plan!;
  const cpu = a.recipe!.target.provider === 'cpu';
  for (const [key, group] of bySource(plan, 'block_size', (p) => p.layer.K % p.quant!.block_size !== 0)) {
    const src: JsonPath = JSON.parse(key);
    const bs = group[0].quant!.block_size;
    const Ks = [...new Set(group.map((p) => p.layer.K))];
    const best = nearestBlockSize(bs, Ks);
    const fixPath = src[src.length - 1] === 'block_size' ? src : [...src.filter((s) => s !== 'match'), 'block_size'];
    a.diagnostics.push(
      diag(
        rangeOf(a.parsed, src),
        'error',
        'block-size-not-divisor',
        `block_size ${bs} does not divide K of ${group.length} layer${group.length > 1 ? 's' : ''}: ` +
          `${listLayers(
            group.map((p) => p.layer),
            4,
            (l: { K: number }) => ` (K=${l.K})`,
          )}; ` +
          (best
            ? `nearest valid block size: ${best}`
            : `no block size in ${BLOCK_SIZES.join('/')} divides K=${Ks.join(', ')}`),
        best ? { fix: 'set', path: fixPath, value: best, title: `Set block_size to ${best}` } : undefined,
      ),
    );
  }
  if (cpu) {
    for (const [key, group] of bySource(plan, 'bits', (p) => !CPU_BITS.includes(p.quant!.bits))) {
      const src: JsonPath = JSON.parse(key);
      const bits = group[0].quant!.bits;
      a.diagnostics.push(
        diag(
          rangeOf(a.parsed, src),
          'error',
          'bits-unsupported',
          `${bits}-bit weights: the CPU provider's MatMulNBits kernels run 4 and 8 ` +
            `bits only (${group.length} layer${group.length > 1 ? 's' : ''}: ` +
            `${listLayers(
              group.map((p) => p.layer),
              3,
            )})`,
          src[src.length - 1] === 'bits'
            ? { fix: 'replace', path: src, values: bits < 4 || bits <= 6 ? [4, 8] : [8, 4] }
            : undefined,
        ),
      );
    }
    for (const [key, group] of bySource(plan, 'bits', (p) => p.quant!.bits === 8 && p.quant!.accuracy_level === 0)) {
      const src: JsonPath = JSON.parse(key);
      const accPath = [...src.slice(0, -1), 'accuracy_level'];
      const target = src[src.length - 1] === 'bits' ? accPath : ['quantize', 'accuracy_level'];
      a.diagnostics.push(
        diag(
          rangeOf(a.parsed, src),
          'warning',
          'slow-8bit-kernel',
          '8-bit MatMulNBits with accuracy_level 0 (fp32 compute) takes a slow kernel path ' +
            'on CPUs: bench/REPORT.md §2 measured it several times slower than fp32 on the bundled ' +
            `model, while accuracy_level 4 (int8 compute) ran faster than fp32; 'haqa bench' ` +
            `measures it on this machine. ${group.length} layer${group.length > 1 ? 's' : ''}: ` +
            `${listLayers(
              group.map((p) => p.layer),
              3,
            )}`,
          { fix: 'set', path: target, value: 4, title: 'Set accuracy_level: 4 (int8 compute)' },
        ),
      );
    }
    const q = a.recipe!.quantize;
    if (q && q.activations !== 'none' && q.weight_type === 'int8' && int8Saturates()) {
      a.diagnostics.push(
        diag(
          rangeOf(a.parsed, ['quantize', 'weight_type']),
          'warning',
          'int8-saturates',
          `int8 weights with 8-bit activations: this CPU has no VNNI, and onnxruntime's u8×int8 kernels ` +
            'add pairs of products in 16 bits, which saturates (static W8A8 logits measured 11% off ' +
            'fp32 against under 5% with uint8 weights); uint8 weights take a kernel that cannot overflow',
          { fix: 'set', path: ['quantize', 'weight_type'], value: 'uint8', title: 'Set weight_type: uint8' },
        ),
      );
    }
  }
}

function checkLowRank(a: RecipeAnalysis): void {
  const rules = a.recipe!.low_rank?.rules;
  if (!rules) return;
  const byRule = new Map<number, PlannedLayer[]>();
  for (const p of a.plan!) {
    if (p.lowRankRule === undefined || !p.lowRank) continue;
    const { K, N } = p.layer;
    if (p.lowRank.rank * (K + N) >= K * N) {
      let g = byRule.get(p.lowRankRule);
      if (!g) byRule.set(p.lowRankRule, (g = []));
      g.push(p);
    }
  }
  for (const [j, group] of byRule) {
    const rank = rules[j].rank;
    const shapes = new Map<string, number>();
    for (const p of group)
      shapes.set(`${p.layer.K}×${p.layer.N}`, Math.ceil((p.layer.K * p.layer.N) / (p.layer.K + p.layer.N)) - 1);
    const be = [...shapes].map(([s, r]) => `${s}: rank < ${r + 1}`).join('; ');
    a.diagnostics.push(
      diag(
        rangeOf(a.parsed, ['low_rank', 'rules', j, 'rank']),
        'warning',
        'rank-saves-nothing',
        `rank ${rank} saves nothing: r·(K+N) ≥ K·N for ${group.length} layer${group.length > 1 ? 's' : ''} ` +
          `(${listLayers(
            group.map((p) => p.layer),
            3,
          )}). Break-even: ${be}`,
      ),
    );
  }
}

function checkMemory(a: RecipeAnalysis): void {
  const limit = a.recipe!.target.memory_limit;
  if (limit === undefined) return;
  const g = a.graph!;
  const layersNow = g.layers.reduce((s, l) => s + l.bytes, 0);
  const layersPlanned = a.plan!.reduce((s, p) => s + plannedBytes(p), 0);
  const other = Math.max(0, g.weightBytes - layersNow);
  const total = other + layersPlanned;
  if (total > limit) {
    a.diagnostics.push(
      diag(
        rangeOf(a.parsed, ['target', 'memory_limit']),
        'error',
        'memory-over-limit',
        `estimated weights after compression: ${humanBytes(total)} (layers ` +
          `${humanBytes(layersPlanned)} + other tensors ${humanBytes(other)}) exceed ` +
          `memory_limit ${humanBytes(limit)}; activations and the KV cache come on top`,
      ),
    );
  }
}

export { parseBytes };
