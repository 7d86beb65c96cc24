// haqa synth <config.json> -o model.onnx: a decoder of any family in config/families.ts with seeded
// random weights, at the real size of the config, to measure speed and memory before the real weights
// are here.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, parse, UsageError, humanBytes, humanCount } from './command';
import { architectureFromConfig, familyOfArch, HfConfigError, ModelArchitecture } from '../config/hfConfig';
import { acceptedModelTypes } from '../config/families';
import { synthesizeDecoder, synthParameterCount } from '../model/synth';
import { writeFileAtomic } from '../util/atomicWrite';

const usage =
  'haqa synth <config.json> -o <model.onnx> [--seed N] [--layers N] ' +
  '[--vocab N] [--dtype fp32|fp16|bf16] [--external-data]';

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
  summary:
    'generate an ONNX decoder of a known family (docs/families.md) with random weights from a Hugging Face config.json',
  usage,
  async run(argv, io) {
    const { values, positionals } = parse(
      argv,
      {
        out: { type: 'string', short: 'o' },
        seed: { type: 'string' },
        layers: { type: 'string' },
        vocab: { type: 'string' },
        'external-data': { type: 'boolean' },
        dtype: { type: 'string' },
      },
      usage,
    );
    if (positionals.length !== 1) throw new UsageError(`expected one config.json\nusage: ${usage}`);
    if (!values.out) throw new UsageError(`missing -o <model.onnx>\nusage: ${usage}`);
    const cfgFile = path.resolve(positionals[0]);
    const out = path.resolve(values.out);
    const seed = values.seed === undefined ? 0 : Number(values.seed);
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff)
      throw new UsageError(`--seed must be an integer in 0..2^32-1, got '${values.seed}'`);
    const layers = positiveInt(values.layers, '--layers');
    const vocab = positiveInt(values.vocab, '--vocab');
    const dtype = values.dtype ?? 'fp32';
    if (dtype !== 'fp32' && dtype !== 'fp16' && dtype !== 'bf16')
      throw new UsageError(`--dtype must be fp32, fp16 or bf16, got '${dtype}'`);

    const { raw, arch } = readHfConfig(cfgFile);
    const fam = familyOfArch(arch);
    if (!fam) {
      const known = acceptedModelTypes();
      throw new UsageError(
        `${cfgFile}: 'model_type' ${JSON.stringify(arch.model_type)} is not a decoder family HAQA knows (${known})`,
      );
    }
    for (const note of fam.synthNotes ?? []) io.err(`haqa synth: note: ${fam.label}: ${note}`);
    if (arch.sliding_window !== undefined) {
      const which = fam.attention.slidingLayers === 'even' ? 'even-numbered layers attend' : 'every layer attends';
      io.err(
        `haqa synth: note: sliding_window ${arch.sliding_window}: ` +
          `${which} to the last ${arch.sliding_window} tokens; ` +
          'prompts longer than that are measured with windowed attention',
      );
    }
    try {
      synthParameterCount(arch, { layers, vocab });
    } catch (err) {
      throw new UsageError((err as Error).message);
    }

    const started = process.hrtime.bigint();
    let lastPct = 0;
    const res = await synthesizeDecoder(arch, {
      out,
      seed,
      layers,
      vocab,
      dtype,
      externalData: values['external-data'] ? true : 'auto',
      signal: io.signal,
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
      io.err(
        `haqa synth: note: ${cfgOut} is the input config and was left ` +
          'unchanged; it does not describe the --layers/--vocab override',
      );
    }
    const a = res.arch;
    io.out(`${out}${res.dataFile ? ` (+ ${path.basename(res.dataFile)})` : ''}`);
    io.out(
      `  ${a.model_type}: ${a.num_hidden_layers} layers, hidden ${a.hidden_size}, heads ${a.num_attention_heads}` +
        `/${a.num_key_value_heads} kv, vocab ${a.vocab_size}${a.tie_word_embeddings ? ', tied embeddings' : ''}`,
    );
    io.out(
      `  ${humanCount(res.params)} parameters (${dtype}), ` +
        `${humanBytes(res.bytes)} on disk, ${seconds.toFixed(1)} s, seed ${seed}`,
    );
    io.out(`  peak RSS ${humanBytes(process.resourceUsage().maxRSS * 1024)}`);
    return 0;
  },
};
