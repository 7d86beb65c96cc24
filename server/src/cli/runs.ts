// haqa runs list [--json] | haqa runs prune [--keep N]: the run store of a workspace (.haqa/).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, parse, UsageError, humanBytes, table } from './command';
import { RunStore } from '../bench/store';
import { LayerCache } from '../compress/layerCache';

const usage = 'haqa runs list [--json] [--dir WORKSPACE|RECIPE] | haqa runs prune [--keep N] [--dir WORKSPACE|RECIPE]';

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** The recipe column: a record from an older version or a hand edit may lack the path, or hold junk. */
function recipeColumn(file: unknown): string {
  if (typeof file !== 'string' || file === '') return '-';
  return path.relative(process.cwd(), file) || file;
}

export const runsCommand: Command = {
  name: 'runs',
  summary: 'list recorded benchmark runs, or prune stored model artifacts no recent run refers to',
  usage,
  async run(argv, io) {
    const { values, positionals } = parse(
      argv,
      {
        json: { type: 'boolean' },
        keep: { type: 'string' },
        dir: { type: 'string' },
      },
      usage,
    );
    const [sub, ...rest] = positionals;
    if (rest.length) throw new UsageError(`unexpected argument '${rest[0]}'\nusage: ${usage}`);
    // --dir takes the workspace folder or a recipe in it (the store lives beside the recipe by default).
    let dir = path.resolve(values.dir ?? '.');
    if (fs.statSync(dir, { throwIfNoEntry: false })?.isFile()) dir = path.dirname(dir);
    const store = new RunStore(dir);
    if (sub === 'list') {
      const { records, skipped } = store.read();
      for (const s of skipped) io.err(`haqa runs: ${store.runsFile}:${s.line}: skipped (${s.reason})`);
      if (values.json) {
        io.out(JSON.stringify(records, null, 2));
        return 0;
      }
      if (!records.length) {
        io.out(`no runs recorded in ${store.runsFile}`);
        return 0;
      }
      const rows: (string | number)[][] = [
        ['id', 'status', 'recipe', 'decode ms/tok', 'prefill ms', 'speedup', 'ppl', 'size'],
      ];
      for (const r of records) {
        // Lines are hand-editable: every field is checked for its type before it is formatted.
        const m = (typeof r.metrics === 'object' && r.metrics !== null ? r.metrics : {}) as Record<string, unknown>;
        const med = (k: string) => num((m[k] as { median?: unknown } | undefined)?.median);
        const sp = (typeof r.speedups === 'object' && r.speedups !== null ? r.speedups : {}) as Record<string, unknown>;
        const decode = med('decode_ms_per_token'),
          inference = med('inference_ms'),
          prefill = med('prefill_ms');
        const spd = num(sp.decode),
          spi = num(sp.inference),
          ppl = num(m.ppl),
          bytes = num(m.model_bytes);
        rows.push([
          r.id,
          r.status + (r.quick ? '*' : ''),
          recipeColumn(r.recipe_file),
          decode !== undefined ? decode.toFixed(3) : inference !== undefined ? `(${inference.toFixed(3)})` : '-',
          prefill !== undefined ? prefill.toFixed(2) : '-',
          spd ? `${spd.toFixed(2)}×` : spi ? `${spi.toFixed(2)}×` : '-',
          ppl !== undefined ? ppl.toFixed(3) : '-',
          bytes !== undefined ? humanBytes(bytes) : '-',
        ]);
      }
      for (const l of table(rows, [3, 4, 5, 6, 7])) io.out(l);
      io.out(
        `${records.length} run${records.length === 1 ? '' : 's'} (* quick); ` +
          'inference times in parentheses for non-decoder models',
      );
      return 0;
    }
    if (sub === 'prune') {
      const keep = values.keep === undefined ? 20 : Number(values.keep);
      if (!Number.isInteger(keep) || keep < 0)
        throw new UsageError(`--keep must be a non-negative integer, got '${values.keep}'`);
      const res = await store.prune(keep);
      io.out(`removed ${res.removed.length} artifacts (${humanBytes(res.freedBytes)}), kept ${res.kept.length}`);
      // Compressed layers reused across trials (compress/layerCache.ts): all of them go; trials rebuild them.
      const layers = await LayerCache.forWorkspace(dir).evict(0);
      io.out(`layer store: removed ${layers.removed} entries (${humanBytes(layers.freedBytes)})`);
      return 0;
    }
    throw new UsageError(`expected 'list' or 'prune'\nusage: ${usage}`);
  },
};
