// haqa check <file> [--json]: the diagnostics the editor shows, from the same code. A recipe
// (haqa.yaml, *.haqa.yaml, or any other .yaml) or a Hugging Face config.json.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, parse, UsageError } from './command';
import { analyzeRecipe } from '../config/check';
import { analyzeHfConfig } from '../config/hfCheck';
import { ModelCache } from '../config/modelCache';
import { Diagnostic, messageText, severityName } from '../config/diagnostics';

const usage = 'haqa check <haqa.yaml | config.json> [--json]';

export interface CheckOutput {
  file: string;
  range: { start: { line: number; character: number }; end: { line: number; character: number } };
  severity: 'error' | 'warning' | 'information' | 'hint';
  code: string;
  message: string;
}

export async function checkFile(file: string): Promise<Diagnostic[]> {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw new UsageError(`${file}: no such file`);
  }
  if (st.isDirectory()) throw new UsageError(`${file} is a directory; give a recipe (haqa.yaml) or a config.json`);
  // Refuse to slurp something enormous: the checks cap at 2 MB anyway and say so.
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(Math.min(st.size, 2 * 1024 * 1024 + 1));
  fs.readSync(fd, buf, 0, buf.length, 0);
  fs.closeSync(fd);
  // A file over the cap is read one byte past it, which is enough for the checks to report its size.
  const text = buf.toString('utf8');
  const ctx = { models: new ModelCache() };
  if (path.basename(file).toLowerCase().endsWith('.json')) return (await analyzeHfConfig(text, file, ctx)).diagnostics;
  return (await analyzeRecipe(text, file, ctx)).diagnostics;
}

export const checkCommand: Command = {
  name: 'check',
  summary: 'check a recipe (haqa.yaml) or a Hugging Face config.json: the diagnostics the editor shows',
  usage,
  async run(argv, io) {
    const { values, positionals } = parse(argv, { json: { type: 'boolean' } }, usage);
    if (positionals.length !== 1) throw new UsageError(`expected one file\nusage: ${usage}`);
    const file = positionals[0];
    const diags = await checkFile(file);
    const sorted = [...diags].sort(
      (a, b) => a.range.start.line - b.range.start.line || a.range.start.character - b.range.start.character,
    );
    const errors = sorted.filter((d) => d.severity === 1).length;
    if (values.json) {
      const out: CheckOutput[] = sorted.map((d) => ({
        file,
        range: d.range,
        severity: severityName(d.severity),
        code: String(d.code),
        message: messageText(d),
      }));
      io.out(JSON.stringify(out, null, 2));
    } else {
      for (const d of sorted) {
        io.out(
          `${file}:${d.range.start.line + 1}:${d.range.start.character + 1} ` +
            `${severityName(d.severity)} ${d.code} ${messageText(d)}`,
        );
      }
      const warnings = sorted.filter((d) => d.severity === 2).length;
      io.err(
        sorted.length
          ? `${errors} error${errors === 1 ? '' : 's'}, ${warnings} ` +
              `warning${warnings === 1 ? '' : 's'}, ${sorted.length - errors - warnings} other`
          : `${file}: no problems`,
      );
    }
    return errors > 0 ? 1 : 0;
  },
};
