// llama.cpp as HAQA's second runtime: the GGUF HAQA exports from examples/tiny-llama loads in llama.cpp
// (node-llama-cpp), and its next-token distributions on the evaluation text agree with onnxruntime's
// fp32 ones: F32 to float rounding, Q8_0 closely, Q4_K_M (Q4_K + Q6_K) less so but still within a budget.
// Also: its timing sample runs (prefill, then decode steps with the KV cache) and gives positive times.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import YAML from 'yaml';
import { resolveRecipe } from '../../server/src/config/recipe';
import { exportGguf } from '../../server/src/compress/gguf';
import { DecoderSession } from '../../server/src/model/decoder';
import { decoderAccuracy, decoderReference } from '../../server/src/bench/accuracy';
import { runtimeFor } from '../../server/src/bench/runtimes';
import type { MeasureJob, ReferenceJob } from '../../server/src/bench/protocol';

const dir = path.resolve(__dirname, '../../examples/tiny-llama');
const recipeFile = path.join(dir, 'haqa.yaml');
const evaluation = {
  text: path.join(dir, 'data/eval.txt'),
  tokenizer: path.join(dir, 'tokenizer.json'),
  window: 128,
  max_windows: 2,
};
const session = {
  provider: 'cpu',
  intra_op_threads: 1,
  inter_op_threads: 1,
  graph_optimization: 'all',
  execution_mode: 'sequential',
};
const workload = { prompt_length: 16, decode_tokens: 4, batch: 1 };

function recipe(ggufType: string) {
  const doc = YAML.parse(fs.readFileSync(recipeFile, 'utf8'));
  doc.quantize = { gguf_type: ggufType };
  doc.runtime = { engine: 'llama.cpp' };
  return resolveRecipe(doc, recipeFile);
}

test('GGUF exported by HAQA runs in llama.cpp with onnxruntime fp32 logits', { timeout: 240_000 }, async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'haqa-llamacpp-'));
  try {
    const ort = await DecoderSession.create(path.join(dir, 'model.onnx'), { sessionOptions: { intraOpNumThreads: 1 } });
    const refJob = {
      kind: 'reference',
      model: '',
      session,
      workload,
      quick: false,
      evaluation,
      out: '',
      key: 'k',
    } as ReferenceJob;
    const ref = await decoderReference(refJob, ort, () => undefined);
    await ort.release();
    const rt = runtimeFor('llama.cpp');
    const kl: Record<string, number> = {};
    for (const t of ['F32', 'Q8_0', 'Q4_K_M']) {
      const out = path.join(tmp, `${t}.gguf`);
      await exportGguf(recipe(t), out);
      const m = await rt.load(out, { session, llama: { threads: 1 } });
      try {
        const job = {
          kind: 'measure',
          model: out,
          session,
          workload,
          quick: false,
          latency: false,
          evaluation,
        } as MeasureJob;
        const acc = await decoderAccuracy(job, m, ref, () => undefined);
        kl[t] = acc.kl!;
        assert.equal(acc.eval_tokens, ref.tokens);
        if (t === 'F32') {
          assert.ok(Math.abs(acc.ppl! - ref.ppl!) / ref.ppl! < 1e-3, `F32 perplexity ${acc.ppl} vs fp32 ${ref.ppl}`);
          assert.ok(acc.top1! > 0.99, `F32 top-1 agreement ${acc.top1}`);
          const s = await (await m.timed(workload)).sample();
          assert.equal(s.length, 2);
          assert.ok(s[0] > 0 && s[1] > 0, `timing sample ${s}`);
        }
      } finally {
        await m.release();
      }
    }
    assert.ok(kl.F32 < 1e-6, `F32 KL ${kl.F32}`);
    assert.ok(kl.Q8_0 < 2e-3, `Q8_0 KL ${kl.Q8_0}`);
    assert.ok(kl.Q4_K_M < 3e-2, `Q4_K_M KL ${kl.Q4_K_M}`);
    assert.ok(kl.F32 < kl.Q8_0 && kl.Q8_0 < kl.Q4_K_M, `KL ordered by precision: ${JSON.stringify(kl)}`);
    console.log(`KL vs onnxruntime fp32: ${JSON.stringify(kl)}`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
