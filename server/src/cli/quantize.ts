// haqa quantize <haqa.yaml> [-o out.onnx] [--json]: apply a recipe to its model. The recipe is checked
// first with the same code as `haqa check` (errors stop here, with file:line:col); the result is written
// atomically, by default to `<model>.haqa.onnx` beside the recipe. The input model is never overwritten.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, parse, UsageError, humanBytes, table } from './command';
import { analyzeRecipe } from '../config/check';
import { ModelCache } from '../config/modelCache';
import { messageText, severityName } from '../config/diagnostics';
import { compressModel } from '../compress/pipeline';
import { rangeOf } from '../config/parse';
import { PathError } from '../util/paths';

const usage = 'haqa quantize <haqa.yaml> [-o out.onnx] [--threads N] [--json]';

export function defaultOutput(recipeFile: string, model: string): string {
  const base = path.basename(model).replace(/\.onnx$/i, '');
  return path.join(path.dirname(path.resolve(recipeFile)), `${base}.haqa.onnx`);
}

export const quantizeCommand: Command = {
  name: 'quantize',
  summary: 'compress the model a recipe names (quantization, sparsity, low rank) and write the result',
  usage,
  async run(argv, io) {
    const { values, positionals } = parse(
      argv,
      { out: { type: 'string', short: 'o' }, json: { type: 'boolean' }, threads: { type: 'string' } },
      usage,
    );
    // Threads quantizing streamed layers (compress/parallel.ts); default min(cores, 4).
    const threads = values.threads === undefined ? undefined : Number(values.threads);
    if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1 && threads <= 256)) {
      throw new UsageError(`--threads must be an integer in 1..256, got '${values.threads}'`);
    }
    if (positionals.length !== 1) throw new UsageError(`expected one recipe file\nusage: ${usage}`);
    const file = positionals[0];
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      throw new UsageError(`${file}: no such file`);
    }
    const analysis = await analyzeRecipe(text, file, { models: new ModelCache() });
    const errors = analysis.diagnostics.filter((d) => d.severity === 1);
    if (errors.length || !analysis.recipe) {
      for (const d of errors)
        io.err(
          `${file}:${d.range.start.line + 1}:${d.range.start.character + 1} ` +
            `${severityName(d.severity)} ${d.code} ${messageText(d)}`,
        );
      io.err(
        `haqa quantize: ${file} has ${errors.length || 'unresolved'} ` +
          `error${errors.length === 1 ? '' : 's'}; nothing written`,
      );
      return 2;
    }
    const recipe = analysis.recipe;
    const out = path.resolve(values.out ?? defaultOutput(file, recipe.model));
    if (out === path.resolve(recipe.model))
      throw new UsageError(`the output ${out} is the input model; choose another -o`);
    let res;
    try {
      res = await compressModel(recipe, {
        out,
        threads,
        signal: io.signal,
        onProgress: values.json ? undefined : (done, total, layer) => io.err(`  [${done}/${total}] ${layer}`),
      });
    } catch (err) {
      // A path the policy refuses (the check's "not read"): reported at its key in the recipe.
      if (!(err instanceof PathError) || !err.recipePath) throw err;
      const at = rangeOf(analysis.parsed, err.recipePath).start;
      io.err(`${file}:${at.line + 1}:${at.character + 1} error ${err.code} ${err.message}`);
      io.err(`haqa quantize: ${file}: ${err.recipePath.join('.')} is refused; nothing written`);
      return 2;
    }
    if (values.json) {
      io.out(JSON.stringify(res, null, 2));
      return 0;
    }
    const rows: (string | number)[][] = [['layer', 'actions', 'rel.err']];
    for (const l of res.layers)
      rows.push([l.name, l.actions.join(', '), l.relError === undefined ? '' : l.relError.toFixed(4)]);
    for (const line of table(rows, [2])) io.out(line);
    io.out('');
    const changed = res.layers.filter((l) => l.relError !== undefined).length;
    io.out(
      `${changed} layers compressed` +
        (res.calibration ? `, calibrated on ${res.calibration.samples} samples (${res.calibration.source})` : ''),
    );
    io.out(
      `size ${humanBytes(res.bytesBefore)} → ${humanBytes(res.bytes)} ` +
        `(${(res.bytesBefore / Math.max(res.bytes, 1)).toFixed(2)}× smaller)` +
        `${res.relError !== undefined ? `, weight relative error ${res.relError.toFixed(4)}` : ''}, ` +
        `${res.seconds.toFixed(1)} s`,
    );
    io.out(`wrote ${res.out}`);
    return 0;
  },
};
