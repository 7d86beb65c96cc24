// Compressing a decoder in the interface of docs/decoder-interface.md: calibration tokenizes text with
// the tokenizer.json beside the model (windows of seq_len, empty past), every transform keeps the
// interface, and the compressed decoder still runs step by step with its KV cache.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { synthesizeDecoder } from '../../server/src/model/synth';
import { architectureFromConfig } from '../../server/src/config/hfConfig';
import { DecoderSession } from '../../server/src/model/decoder';
import { inspectModel } from '../../server/src/model/graph';
import { compressModel } from '../../server/src/compress/pipeline';
import { calibrate } from '../../server/src/compress/calibrate';
import { readModel } from '../../server/src/model/onnx';
import { tempDir } from '../helpers/tinyModel';
import { recipeFor, relL2 } from './compress-helpers';

const FIXTURE = path.join(__dirname, '../../examples/tiny-llama');
const CFG = {
  model_type: 'llama',
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 1024,
  rope_theta: 10000,
  rms_norm_eps: 1e-6,
  initializer_range: 0.1,
};

async function decoderDir() {
  const dir = tempDir('haqa-cdec-');
  const arch = architectureFromConfig(CFG);
  await synthesizeDecoder(arch, { out: path.join(dir, 'model.onnx'), seed: 3 });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(CFG));
  fs.copyFileSync(path.join(FIXTURE, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
  fs.copyFileSync(path.join(FIXTURE, 'data/calib.txt'), path.join(dir, 'calib.txt'));
  return dir;
}

async function logits(file: string, ids: number[]): Promise<Float32Array> {
  const s = await DecoderSession.create(file, { sessionOptions: { intraOpNumThreads: 1 } });
  const a = await s.step([ids.slice(0, 6)]);
  const b = await s.step([ids.slice(6)], a.cache);
  return Float32Array.from([...a.logits.data, ...b.logits.data]);
}

test('decoder calibration tokenizes the text into windows and collects only what is asked', async () => {
  const dir = await decoderDir();
  const m = await readModel(path.join(dir, 'model.onnx'));
  const g = await inspectModel(m.path);
  const q = g.layers.find((l) => l.name === 'model.layers.1.self_attn.q_proj')!;
  const x = m.proto.graph!.node![q.nodeIndex].input![0];
  const down = g.layers.find((l) => l.name === 'model.layers.0.mlp.down_proj')!;
  const xd = m.proto.graph!.node![down.nodeIndex].input![0];
  const c = await calibrate(
    m,
    new Map([
      [x, { K: q.K, hessian: true, norms: false, range: true }],
      [xd, { K: down.K, hessian: false, norms: true, range: false }],
    ]),
    { text: path.join(dir, 'calib.txt'), samples: 3, seq_len: 16 },
  );
  assert.equal(c.source, 'text');
  assert.equal(c.samples, 3);
  const sx = c.inputs.get(x)!;
  assert.equal(sx.rows, 48);
  assert.ok(sx.xtx && !sx.sqSum && sx.min < 0 && sx.max > 0);
  // XᵀX is symmetric with a positive diagonal.
  for (let i = 0; i < q.K; i++) {
    assert.ok(sx.xtx![i * q.K + i] > 0);
    assert.equal(sx.xtx![i * q.K + ((i + 1) % q.K)], sx.xtx![((i + 1) % q.K) * q.K + i]);
  }
  const sd = c.inputs.get(xd)!;
  assert.ok(sd.sqSum && !sd.xtx);
});

test('a compressed decoder keeps the interface and decodes with its cache close to fp32', async () => {
  const dir = await decoderDir();
  const src = path.join(dir, 'model.onnx');
  const ids = [5, 77, 301, 12, 9, 400, 33, 2, 18, 650];
  const ref = await logits(src, ids);
  const before = await inspectModel(src);
  const cases: [string, Record<string, unknown>, number][] = [
    // a random decoder is fragile: RTN 4-bit gives ~0.3 here
    ['gptq4', { quantize: { bits: 4, block_size: 32, method: 'gptq', accuracy_level: 4, skip: ['lm_head'] } }, 0.4],
    ['w8a8-static', { quantize: { bits: 8, activations: 'static', skip: ['lm_head'] } }, 0.05],
    [
      'wanda-25%+lowrank',
      {
        sparsity: { method: 'wanda', rules: [{ match: 'model.layers.*.mlp.*', ratio: 0.25 }] },
        low_rank: { rules: [{ match: 'model.layers.*.self_attn.o_proj', rank: 56 }] },
      },
      0.5,
    ],
  ];
  for (const [label, doc, tol] of cases) {
    const out = path.join(dir, `${label}.onnx`);
    const res = await compressModel(
      recipeFor(src, { ...doc, calibration: { text: 'calib.txt', samples: 4, seq_len: 32 } }),
      { out },
    );
    assert.ok(res.layers.length > 0);
    const after = await inspectModel(out);
    assert.deepEqual(after.inputs, before.inputs, label);
    assert.deepEqual(after.outputs, before.outputs, label);
    const got = await logits(out, ids);
    const e = relL2(got, ref);
    assert.ok(e < tol, `${label}: logits relative error ${e}`);
  }
});
