// The GGUF writer and reader (model/gguf.ts), the block quantizers (compress/ggufQuant.ts) and the
// per-tensor type choice from the recipe (compress/gguf.ts) — without llama.cpp
// (test/unit/runtime-llamacpp.test.ts loads the files in llama.cpp).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import YAML from 'yaml';
import {
  GGML_TYPES,
  GgufError,
  gv,
  readGguf,
  readGgufTensor,
  tensorBytes,
  writeGguf,
} from '../../server/src/model/gguf';
import { dequantizeGguf, quantizeGguf } from '../../server/src/compress/ggufQuant';
import { exportGguf, ggufTensorType, llamaTensorName } from '../../server/src/compress/gguf';
import { resolveRecipe } from '../../server/src/config/recipe';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'haqa-gguf-'));

function seeded(n: number, seed = 7): Float32Array {
  let s = seed;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    const u = s / 2 ** 32;
    out[i] = (u - 0.5) * (i % 97 === 0 ? 8 : 1); // a few outliers per block, as real weights have
  }
  return out;
}

test('write then read: header, metadata of every kind, aligned tensors, bytes back', async () => {
  const dir = tmp();
  try {
    const out = path.join(dir, 'm.gguf');
    const a = quantizeGguf('F32', Float32Array.from([1, 2, 3, 4, 5, 6]), 3);
    const b = quantizeGguf('Q8_0', seeded(64), 32);
    await writeGguf(
      out,
      {
        'general.architecture': gv.str('llama'),
        'x.u32': gv.u32(7),
        'x.f32': gv.f32(0.5),
        'x.bool': gv.bool(true),
        'x.strs': gv.strs(['a', 'bé', '']),
        'x.ints': gv.i32s([-1, 2]),
      },
      [
        { name: 'a', dims: [3, 2], type: 'F32' },
        { name: 'b', dims: [32, 2], type: 'Q8_0' },
      ],
      (i) => [a, b][i],
    );
    const g = readGguf(out);
    assert.equal(g.version, 3);
    assert.equal(g.metadata.get('general.architecture'), 'llama');
    assert.equal(g.metadata.get('x.u32'), 7);
    assert.equal(g.metadata.get('x.f32'), 0.5);
    assert.equal(g.metadata.get('x.bool'), true);
    assert.deepEqual(g.metadata.get('x.strs'), ['a', 'bé', '']);
    assert.deepEqual(g.metadata.get('x.ints'), [-1, 2]);
    assert.deepEqual(
      g.tensors.map((t) => [t.name, t.dims, t.type]),
      [
        ['a', [3, 2], 'F32'],
        ['b', [32, 2], 'Q8_0'],
      ],
    );
    assert.equal(g.dataStart % 32, 0);
    for (const t of g.tensors) assert.equal(t.offset % 32, 0, `${t.name} aligned`);
    assert.deepEqual([...readGgufTensor(g, 'a')], [...a]);
    assert.deepEqual([...readGgufTensor(g, 'b')], [...b]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a tensor whose data has the wrong size fails the write and leaves no file, not even a temp', async () => {
  const dir = tmp();
  try {
    const out = path.join(dir, 'm.gguf');
    await assert.rejects(
      writeGguf(out, {}, [{ name: 'a', dims: [32], type: 'Q4_0' }], () => new Uint8Array(5)),
      /needs 18/,
    );
    assert.deepEqual(fs.readdirSync(dir), []);
    assert.throws(() => tensorBytes('Q4_K', [128, 2]), GgufError, 'rows must fill whole blocks');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('block quantizers: sizes, round-trip error ordered by bits, exact for F32', () => {
  const x = seeded(256 * 8);
  const rel: Record<string, number> = {};
  for (const t of ['F32', 'F16', 'Q8_0', 'Q6_K', 'Q4_K', 'Q4_0'] as const) {
    const q = quantizeGguf(t, x, 512);
    assert.equal(q.byteLength, (x.length / GGML_TYPES[t].block) * GGML_TYPES[t].bytes, `${t} size`);
    const y = dequantizeGguf(t, q, x.length);
    let e = 0,
      n = 0;
    for (let i = 0; i < x.length; i++) {
      e += (x[i] - y[i]) ** 2;
      n += x[i] ** 2;
    }
    rel[t] = Math.sqrt(e / n);
  }
  assert.equal(rel.F32, 0);
  assert.ok(rel.F16 < 1e-3, JSON.stringify(rel));
  assert.ok(rel.Q8_0 < 0.01 && rel.Q6_K < 0.03 && rel.Q4_K < 0.12 && rel.Q4_0 < 0.15, JSON.stringify(rel));
  assert.ok(rel.F16 < rel.Q8_0 && rel.Q8_0 < rel.Q6_K && rel.Q6_K < rel.Q4_K, JSON.stringify(rel));
  // an all-zero block is representable (no division by zero)
  for (const t of ['Q8_0', 'Q4_0', 'Q4_K', 'Q6_K'] as const) {
    assert.ok(
      dequantizeGguf(t, quantizeGguf(t, new Float32Array(256), 256), 256).every((v) => v === 0),
      t,
    );
  }
});

const dir = path.resolve(__dirname, '../../examples/tiny-llama');
function recipe(quantize: Record<string, unknown>) {
  const doc = YAML.parse(fs.readFileSync(path.join(dir, 'haqa.yaml'), 'utf8'));
  doc.quantize = quantize;
  doc.runtime = { engine: 'llama.cpp' };
  return resolveRecipe(doc, path.join(dir, 'haqa.yaml'));
}

test('per-tensor types: Q4_K_M preset, skip, overrides like --tensor-type, norms F32, fallback for short rows', () => {
  const r = recipe({
    gguf_type: 'Q4_K_M',
    skip: ['model.layers.3.mlp.up_proj'],
    overrides: [{ match: 'model.layers.*.self_attn.q_proj', gguf_type: 'Q8_0' }],
  });
  const type = (init: string, dims: number[]) => ggufTensorType(r, llamaTensorName(init)!, dims, 4);
  assert.equal(type('lm_head.weight', [256, 1024]), 'Q6_K');
  assert.equal(type('model.layers.0.mlp.down_proj.weight', [768, 256]), 'Q6_K'); // first eighth: more bits
  assert.equal(type('model.layers.1.mlp.down_proj.weight', [768, 256]), 'Q4_K');
  assert.equal(type('model.layers.1.mlp.gate_proj.weight', [256, 768]), 'Q4_K');
  assert.equal(type('model.layers.2.self_attn.q_proj.weight', [256, 256]), 'Q8_0');
  assert.equal(type('model.layers.3.mlp.up_proj.weight', [256, 768]), 'F32');
  assert.equal(type('model.norm.weight', [256]), 'F32');
  assert.equal(type('model.layers.1.mlp.gate_proj.weight', [96, 768]), 'Q8_0'); // 96 is no multiple of 256
  assert.equal(llamaTensorName('model.layers.2.self_attn.k_proj.weight')?.gguf, 'blk.2.attn_k.weight');
  assert.equal(llamaTensorName('model.rotary_emb.inv_freq'), undefined);
});

test('export of the bundled model: every Llama tensor, the tokenizer in the metadata, sizes by type', async () => {
  const d = tmp();
  try {
    const out = path.join(d, 'q.gguf');
    const res = await exportGguf(recipe({ gguf_type: 'Q4_0' }), out);
    const g = readGguf(out);
    assert.equal(g.tensors.length, 2 + 1 + 4 * 9);
    assert.equal(res.bytes, fs.statSync(out).size);
    assert.equal(g.metadata.get('llama.block_count'), 4);
    assert.equal(g.metadata.get('llama.attention.head_count_kv'), 2);
    assert.equal(g.metadata.get('tokenizer.ggml.model'), 'gpt2');
    const tokens = g.metadata.get('tokenizer.ggml.tokens') as string[];
    const tj = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
    assert.equal(tokens.length, 1024);
    assert.equal(tokens[1023], '<|endoftext|>');
    assert.equal((g.metadata.get('tokenizer.ggml.merges') as string[]).length, tj.model.merges.length);
    const emb = g.tensors.find((t) => t.name === 'token_embd.weight')!;
    assert.deepEqual([emb.dims, emb.type], [[256, 1024], 'Q4_0']);
    const down = g.tensors.find((t) => t.name === 'blk.0.ffn_down.weight')!;
    assert.deepEqual(down.dims, [768, 256]); // ggml order: the input dimension first
  } finally {
    fs.rmSync(d, { recursive: true, force: true });
  }
});
