// haqa synth <config.json> -o model.onnx: a Llama-family decoder with seeded random weights, at the
// real size of the config, to measure speed and memory before the real weights are here.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, parse, UsageError, humanBytes, humanCount } from './command';
import { architectureFromConfig, HfConfigError, isLlamaFamily, ModelArchitecture } from '../config/hfConfig';
import { synthesizeDecoder, synthParameterCount } from '../model/synth';
import { writeFileAtomic } from '../util/atomicWrite';

const usage = 'haqa synth <config.json> -o <model.onnx> [--seed N] [--layers N] [--vocab N] [--dtype fp32|fp16|bf16] [--external-data]';

/** Model types whose graph is exactly the Llama one (others of the family differ in details). */
const EXACT = new Set(['llama', 'mistral', 'qwen2']);

function positiveInt(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) <= 0) throw new UsageError(`${flag} must be a positive integer, got '${v}'`);
  return Number(v);
}

export function readHfConfig(file: string): { raw: Record<string, unknown>; arch: ModelArchitecture } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new UsageError(`config file not found: ${file}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${file}: not valid JSON (${(err as Error).message})`);
  }
  try {
    return { raw: raw as Record<string, unknown>, arch: architectureFromConfig(raw) };
  } catch (err) {
    if (err instanceof HfConfigError) throw new UsageError(`${file}: ${err.message}`);
    throw err;
  }
}

export const synthCommand: Command = {
  name: 'synth',
  summary: 'generate a Llama-family ONNX decoder with random weights from a Hugging Face config.json',
  usage,
  async run(argv, io) {
    const { values, positionals } = parse(argv, {
      out: { type: 'string', short: 'o' },
      seed: { type: 'string' },
      layers: { type: 'string' },
      vocab: { type: 'string' },
      'external-data': { type: 'boolean' },
      dtype: { type: 'string' },
    }, usage);
    if (positionals.length !== 1) throw new UsageError(`expected one config.json\nusage: ${usage}`);
    if (!values.out) throw new UsageError(`missing -o <model.onnx>\nusage: ${usage}`);
    const cfgFile = path.resolve(positionals[0]);
    const out = path.resolve(values.out);
    const seed = values.seed === undefined ? 0 : Number(values.seed);
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new UsageError(`--seed must be an integer in 0..2^32-1, got '${values.seed}'`);
    const layers = positiveInt(values.layers, '--layers');
    const vocab = positiveInt(values.vocab, '--vocab');
    const dtype = values.dtype ?? 'fp32';
    if (dtype !== 'fp32' && dtype !== 'fp16' && dtype !== 'bf16') throw new UsageError(`--dtype must be fp32, fp16 or bf16, got '${dtype}'`);

    const { raw, arch } = readHfConfig(cfgFile);
    if (!isLlamaFamily(arch)) {
      throw new UsageError(`${cfgFile}: 'model_type' ${JSON.stringify(arch.model_type)} is not a Llama-family decoder (llama, mistral, qwen2)`);
    }
    if (!EXACT.has(arch.model_type)) {
      io.err(`haqa synth: note: '${arch.model_type}' is built as a Llama graph; its own differences are not modelled`);
    }
    try {
      synthParameterCount(arch, { layers, vocab });
    } catch (err) {
      throw new UsageError((err as Error).message);
    }

    const started = process.hrtime.bigint();
    let lastPct = 0;
    const res = await synthesizeDecoder(arch, {
      out, seed, layers, vocab, dtype, externalData: values['external-data'] ? true : 'auto', signal: io.signal,
      onProgress: ({ doneBytes, totalBytes }) => {
        const pct = Math.floor((100 * doneBytes) / totalBytes / 10) * 10; // every 10%
        if (totalBytes > 256 * 1024 ** 2 && pct > lastPct) {
          lastPct = pct;
          io.err(`  ${pct}% (${humanBytes(doneBytes)} of ${humanBytes(totalBytes)})`);
        }
      },
    }).catch((err) => {
      if (err instanceof HfConfigError) throw new UsageError(`${cfgFile}: ${err.message}`);
      throw err;
    });
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;

    // The config beside the model describes the model written (overrides included).
    const cfgOut = path.join(path.dirname(out), 'config.json');
    if (cfgOut !== cfgFile) {
      const copy = { ...raw, num_hidden_layers: res.arch.num_hidden_layers, vocab_size: res.arch.vocab_size };
      await writeFileAtomic(cfgOut, JSON.stringify(copy, null, 2) + '\n');
    } else if (layers !== undefined || vocab !== undefined) {
      io.err(`haqa synth: note: ${cfgOut} is the input config and was left unchanged; it does not describe the --layers/--vocab override`);
    }
    const a = res.arch;
    io.out(`${out}${res.dataFile ? ` (+ ${path.basename(res.dataFile)})` : ''}`);
    io.out(`  ${a.model_type}: ${a.num_hidden_layers} layers, hidden ${a.hidden_size}, heads ${a.num_attention_heads}/${a.num_key_value_heads} kv, vocab ${a.vocab_size}${a.tie_word_embeddings ? ', tied embeddings' : ''}`);
    io.out(`  ${humanCount(res.params)} parameters (${dtype}), ${humanBytes(res.bytes)} on disk, ${seconds.toFixed(1)} s, seed ${seed}`);
    io.out(`  peak RSS ${humanBytes(process.resourceUsage().maxRSS * 1024)}`);
    return 0;
  },
};
