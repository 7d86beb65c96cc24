// The true graph of each family, synthesized: HF layer names as the family names them (fused Phi-3 and
// GPT-2 projections), exactly parameterCount parameters, a KV cache that gives the full pass's logits,
// Phi-3's fused split equal to separate q/k/v and gate/up, and sliding windows that hide what they should.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { architectureFromConfig, parameterCount, ModelArchitecture } from '../../server/src/config/hfConfig';
import { FAMILIES, familyById, projectionPaths } from '../../server/src/config/families';
import { synthesizeDecoder } from '../../server/src/model/synth';
import { inspectModel } from '../../server/src/model/graph';
import { readModel, readTensorFloat32, makeTensor, DataType, writeModel } from '../../server/src/model/onnx';
import { modelSummary } from '../../server/src/agent/describe';
import { resolveRecipe } from '../../server/src/config/recipe';
import { tempDir } from '../helpers/tinyModel';
import { FAMILY_CONFIGS } from '../helpers/familyConfigs';

const dir = tempDir('haqa-synth-fam-');
let n = 0;
const opts = { intraOpNumThreads: 1, interOpNumThreads: 1 };
async function synth(cfg: Record<string, unknown>, layers?: number) {
  const arch = architectureFromConfig({ initializer_range: 0.3, ...cfg });
  const res = await synthesizeDecoder(arch, { out: path.join(dir, `m${n++}.onnx`), seed: 5, layers });
  return { arch: res.arch, res, session: await ort.InferenceSession.create(res.out, opts) };
}
const i64 = (rows: number[][]) =>
  new ort.Tensor('int64', BigInt64Array.from(rows.flat().map(BigInt)), [rows.length, rows[0].length]);
function past(a: ModelArchitecture, out?: ort.InferenceSession.OnnxValueMapType): Record<string, ort.Tensor> {
  const p: Record<string, ort.Tensor> = {};
  for (let i = 0; i < a.num_hidden_layers; i++)
    for (const kv of ['key', 'value']) {
      p[`past_key_values.${i}.${kv}`] = out
        ? (out[`present.${i}.${kv}`] as ort.Tensor)
        : new ort.Tensor('float32', new Float32Array(0), [1, a.num_key_value_heads, 0, a.head_dim]);
    }
  return p;
}
type Outputs = ort.InferenceSession.OnnxValueMapType;
async function run(s: ort.InferenceSession, a: ModelArchitecture, ids: number[], from: number, prev?: Outputs) {
  return s.run({
    input_ids: i64([ids]),
    attention_mask: i64([Array(from + ids.length).fill(1)]),
    position_ids: i64([ids.map((_, i) => from + i)]),
    ...past(a, prev),
  });
}
const lastRow = (t: ort.Tensor, pos: number) =>
  (t.data as Float32Array).subarray(pos * t.dims[2], (pos + 1) * t.dims[2]);
const maxDiff = (x: ArrayLike<number>, y: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
};

const TOKENS = [3, 17, 42, 5, 63, 0, 9, 11, 70, 2, 33, 8];

for (const f of FAMILIES) {
  test(`${f.label}: HF layer names, parameterCount parameters, cached decoding equals the full pass`, async () => {
    const { arch, res, session } = await synth(FAMILY_CONFIGS[f.id]);
    const g = await inspectModel(res.out);
    assert.equal(g.totals.params, parameterCount(arch));
    const want = [];
    for (let i = 0; i < arch.num_hidden_layers; i++)
      for (const p of projectionPaths(f)) want.push(`${f.modules.blocks}.${i}.${p}`);
    want.push('lm_head');
    assert.deepEqual(g.layers.map((l) => l.name).sort(), want.sort());
    const full = await run(session, arch, TOKENS, 0);
    const logits = full.logits as ort.Tensor;
    for (const v of logits.data as Float32Array) assert.ok(Number.isFinite(v));
    let out = await run(session, arch, TOKENS.slice(0, 9), 0);
    for (let t = 9; t < TOKENS.length; t++) {
      out = await run(session, arch, [TOKENS[t]], t, out);
      const d = maxDiff(lastRow(out.logits as ort.Tensor, 0), lastRow(logits, t));
      assert.ok(d < 1e-3, `${f.id} position ${t}: cached decoding differs from the full pass by ${d}`);
    }
    if (arch.final_logit_softcapping) {
      const cap = arch.final_logit_softcapping;
      for (const v of logits.data as Float32Array) assert.ok(Math.abs(v) <= cap + 1e-4, 'final logits are soft-capped');
    }
  });
}

test("Phi-3's fused qkv_proj and gate_up_proj split as HF's do: equal to Llama's separate projections", async () => {
  const cfg = { ...FAMILY_CONFIGS.phi3, sliding_window: undefined, num_key_value_heads: 2 };
  const llama = await synth({ ...cfg, model_type: 'llama' });
  const phi = await synth({ ...cfg, model_type: 'phi3' });
  const lm = await readModel(llama.res.out);
  const w = new Map<string, { data: Float32Array; dims: number[] }>();
  for (const t of lm.proto.graph!.initializer!)
    w.set(t.name!, { data: await readTensorFloat32(t, lm.baseDir), dims: t.dims!.map(Number) });
  /** Columns of [K, Ni] matrices side by side: [K, ΣNi], as HF's fused Linear stores its parts' outputs. */
  const cat = (names: string[]) => {
    const parts = names.map((x) => w.get(x)!);
    const K = parts[0].dims[0],
      N = parts.reduce((s, p) => s + p.dims[1], 0);
    const out = new Float32Array(K * N);
    for (let k = 0; k < K; k++) {
      let at = k * N;
      for (const p of parts) {
        out.set(p.data.subarray(k * p.dims[1], (k + 1) * p.dims[1]), at);
        at += p.dims[1];
      }
    }
    return { data: out, dims: [K, N] };
  };
  const pm = await readModel(phi.res.out);
  pm.proto.graph!.initializer = pm.proto.graph!.initializer!.map((t) => {
    const name = t.name!;
    const m = /^(model\.layers\.\d+)\.(self_attn\.qkv_proj|mlp\.gate_up_proj)\.weight$/.exec(name);
    const v = !m
      ? w.get(name)!
      : m[2] === 'self_attn.qkv_proj'
        ? cat(['q', 'k', 'v'].map((x) => `${m[1]}.self_attn.${x}_proj.weight`))
        : cat([`${m[1]}.mlp.gate_proj.weight`, `${m[1]}.mlp.up_proj.weight`]);
    assert.ok(v, name);
    return makeTensor(name, DataType.FLOAT, v.dims, v.data);
  });
  const file = path.join(dir, 'phi-from-llama.onnx');
  await writeModel(pm.proto, file);
  const s = await ort.InferenceSession.create(file, opts);
  const a = (await run(llama.session, llama.arch, TOKENS, 0)).logits as ort.Tensor;
  const b = (await run(s, phi.arch, TOKENS, 0)).logits as ort.Tensor;
  const d = maxDiff(a.data as Float32Array, b.data as Float32Array);
  assert.ok(d < 1e-4, `fused Phi-3 differs from separate projections by ${d}`);
});

test('a sliding window hides tokens beyond it (one layer); Gemma 2 alternates sliding and global layers', async () => {
  const win = { ...FAMILY_CONFIGS.mistral, sliding_window: 3 };
  const changed = [50, ...TOKENS.slice(1, 8)];
  for (const [cfg, hidden] of [
    [win, true],
    [{ ...win, sliding_window: null }, false],
  ] as const) {
    const { arch, session } = await synth(cfg, 1);
    const x = (await run(session, arch, TOKENS.slice(0, 8), 0)).logits as ort.Tensor;
    const y = (await run(session, arch, changed, 0)).logits as ort.Tensor;
    const d = maxDiff(lastRow(x, 7), lastRow(y, 7));
    if (hidden) assert.ok(d < 1e-5, `token 0 is outside the window of position 7, yet changed its logits by ${d}`);
    else assert.ok(d > 1e-3, 'without a window token 0 matters (the check is not vacuous)');
  }
  // Gemma 2: layer 0 slides, layer 1 is global, so with two layers token 0 still reaches position 7.
  const { arch, session } = await synth({ ...FAMILY_CONFIGS.gemma2, sliding_window: 3 });
  assert.equal(familyById('gemma2').attention.slidingLayers, 'even');
  const x = (await run(session, arch, TOKENS.slice(0, 8), 0)).logits as ort.Tensor;
  const y = (await run(session, arch, changed, 0)).logits as ort.Tensor;
  assert.ok(maxDiff(lastRow(x, 7), lastRow(y, 7)) > 1e-4, 'the global layer sees the whole context');
});

test("the advisor and tuner see a family's own facts and its HF layer groups (GPT-2's fused c_attn)", async () => {
  const { res, arch } = await synth(FAMILY_CONFIGS.gpt2);
  const g = await inspectModel(res.out);
  const recipe = resolveRecipe({ model: path.basename(res.out) }, path.join(dir, 'haqa.yaml'));
  const hardware = { cpu: 'test', arch: 'x64', cores: 2, isa: [], memory_bytes: 2 ** 30, providers: ['cpu'] } as never;
  const s = modelSummary({ recipe, layers: g.layers, hardware }, arch);
  assert.equal(s.architecture?.family, 'GPT-2');
  assert.deepEqual(s.architecture?.fused_projections, ['attn.c_attn = q + k + v']);
  assert.deepEqual(s.groups.map((x) => x.glob).sort(), [
    'lm_head',
    'transformer.h.*.attn.c_attn',
    'transformer.h.*.attn.c_proj',
    'transformer.h.*.mlp.c_fc',
    'transformer.h.*.mlp.c_proj',
  ]);
});
