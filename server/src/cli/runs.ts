// haqa runs list [--json] | haqa runs prune [--keep N]: the run store of a workspace (.haqa/).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, parse, UsageError, humanBytes, table } from './command';
import { RunStore } from '../bench/store';

const usage = 'haqa runs list [--json] [--dir WORKSPACE|RECIPE] | haqa runs prune [--keep N] [--dir WORKSPACE|RECIPE]';

export const runsCommand: Command = {
  name: 'runs',
  summary: 'list recorded benchmark runs, or prune stored model artifacts no recent run refers to',
  usage,
  async run(argv, io) {
    const { values, positionals } = parse(argv, {
      json: { type: 'boolean' },
      keep: { type: 'string' },
      dir: { type: 'string' },
    }, usage);
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
      const rows: (string | number)[][] = [['id', 'status', 'recipe', 'decode ms/tok', 'prefill ms', 'speedup', 'ppl', 'size']];
      for (const r of records) {
        const m = r.metrics ?? {};
        rows.push([
          r.id, r.status + (r.quick ? '*' : ''), path.relative(process.cwd(), r.recipe_file) || r.recipe_file,
          m.decode_ms_per_token ? m.decode_ms_per_token.median.toFixed(3) : m.inference_ms ? `(${m.inference_ms.median.toFixed(3)})` : '-',
          m.prefill_ms ? m.prefill_ms.median.toFixed(2) : '-',
          r.speedups?.decode ? `${r.speedups.decode.toFixed(2)}×` : r.speedups?.inference ? `${r.speedups.inference.toFixed(2)}×` : '-',
          m.ppl !== undefined ? m.ppl.toFixed(3) : '-',
          m.model_bytes !== undefined ? humanBytes(m.model_bytes) : '-',
        ]);
      }
      for (const l of table(rows, [3, 4, 5, 6, 7])) io.out(l);
      io.out(`${records.length} runs (* quick); inference times in parentheses for non-decoder models`);
      return 0;
    }
    if (sub === 'prune') {
      const keep = values.keep === undefined ? 20 : Number(values.keep);
      if (!Number.isInteger(keep) || keep < 0) throw new UsageError(`--keep must be a non-negative integer, got '${values.keep}'`);
      const res = await store.prune(keep);
      io.out(`removed ${res.removed.length} artifacts (${humanBytes(res.freedBytes)}), kept ${res.kept.length}`);
      return 0;
    }
    throw new UsageError(`expected 'list' or 'prune'\nusage: ${usage}`);
  },
};
