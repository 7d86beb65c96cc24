// The models the benchmark scripts share: the synthetic decoder of Llama-3.2-1B's shape (seeded random
// weights; the project makes it, nothing is downloaded), and what a decode step of a model reads.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { architectureFromConfig } from '../server/src/config/hfConfig';
import { synthesizeDecoder } from '../server/src/model/synth';
import { readModel, tensorDims, elementSize } from '../server/src/model/onnx';
import { readGguf } from '../server/src/model/gguf';

const ROOT = path.resolve(__dirname, '..');
export const FIXTURE = path.join(ROOT, 'examples', 'tiny-llama');

/**
 * Writes a decoder of Llama-3.2-1B's shape (`layers` of its 16) into `dir` as model.onnx with its
 * config.json, unless one is there; with the fixture's tokenizer and evaluation text: random weights have
 * no meaningful perplexity, so the tokenizer only turns the text into valid token ids and accuracy is
 * read as KL / top-1 agreement with the fp32 model. Returns how many layers it has and of how many.
 */
export async function llama1b(
  dir: string,
  layers: number | undefined,
  log: (msg: string) => void,
): Promise<{ layers: number; of: number }> {
  fs.mkdirSync(dir, { recursive: true });
  const cfgFile = path.join(ROOT, 'examples', 'configs', 'Llama-3.2-1B.json');
  const hf = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
  const arch = architectureFromConfig(hf);
  const n = layers ?? arch.num_hidden_layers;
  const model = path.join(dir, 'model.onnx');
  if (!fs.existsSync(model)) {
    const t0 = Date.now();
    log(`synthesizing Llama-3.2-1B shape with ${n} of ${arch.num_hidden_layers} layers`);
    await synthesizeDecoder(arch, { out: model, seed: 1, layers: n });
    log(`  done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...hf, num_hidden_layers: n }, null, 2));
  fs.copyFileSync(path.join(FIXTURE, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
  fs.copyFileSync(path.join(FIXTURE, 'data', 'eval.txt'), path.join(dir, 'eval.txt'));
  return { layers: n, of: arch.num_hidden_layers };
}

/** The search space the benchmarks tune the 1B-shaped decoder over (bench/e2e.ts, bench/runtimes.ts). */
export const LLAMA_1B_SPACE = {
  'quantize.bits': [4, 8],
  'quantize.block_size': [32, 128],
  'quantize.accuracy_level': [0, 4],
  'quantize.bits@lm_head': [4, 8],
};

/**
 * Bytes a decode step must read: every weight except a table only gathered from (the embedding), in an
 * ONNX model (its initializers) or a GGUF file (its tensors; token_embd.weight counts only when the
 * model has no separate output.weight, i.e. the head is tied to it).
 */
export async function bytesReadPerToken(modelFile: string): Promise<number> {
  if (modelFile.endsWith('.gguf')) {
    const g = readGguf(modelFile);
    const tied = !g.tensors.some((t) => t.name === 'output.weight');
    return g.tensors.reduce((s, t) => s + (t.name === 'token_embd.weight' && !tied ? 0 : t.bytes), 0);
  }
  const m = await readModel(modelFile);
  const g = m.proto.graph!;
  const gatheredOnly = new Set<string>();
  const usedElsewhere = new Set<string>();
  for (const n of g.node ?? []) {
    (n.input ?? []).forEach((name, i) => {
      if (n.opType === 'Gather' && i === 0) gatheredOnly.add(name);
      else usedElsewhere.add(name);
    });
  }
  let bytes = 0;
  for (const t of g.initializer ?? []) {
    if (gatheredOnly.has(t.name ?? '') && !usedElsewhere.has(t.name ?? '')) continue;
    try {
      bytes += tensorDims(t).reduce((a, b) => a * b, 1) * elementSize(t.dataType ?? 0);
    } catch {
      /* non-numeric tensors are not weights */
    }
  }
  return bytes;
}
