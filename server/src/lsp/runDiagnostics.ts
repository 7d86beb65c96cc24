// The run feature's diagnostics on a recipe, from its latest plain benchmark of exactly this content:
// the run failed, accuracy budget exceeded, slower than fp32, a regression against the previous run,
// memory over the target. Each lands on the recipe key it is about (config/anchors.ts, from the analysis'
// parse) and points at its record's line in runs.jsonl. `runFindings` and `findingRuns` are pure.
import { DiagnosticSeverity, type Diagnostic, type Location } from 'vscode-languageserver/node';
import type { TextDocument } from 'vscode-languageserver-textdocument';
import { URI } from 'vscode-uri';
import { docKind } from './service';
import { fileOf, lineRange, storeFor, type RunsContext } from './runContext';
import { pctDelta, speedupOf } from './runViews';
import { recipeAnchors } from '../config/anchors';
import type { Recipe } from '../config/recipe';
import { recipeHash, runtimeLabel, type RunRecord } from '../bench/record';

export function registerRunDiagnostics(rc: RunsContext): void {
  const { diagnostics, service } = rc.ctx;
  diagnostics.register({
    id: 'haqa.runs',
    appliesTo: (doc) => docKind(doc.uri) === 'recipe',
    async compute(doc: TextDocument): Promise<Diagnostic[]> {
      const a = await service.recipe(doc);
      if (!a.recipe) return [];
      const file = fileOf(doc.uri);
      const store = storeFor(file);
      const runs = findingRuns(store.recordsOf(file), recipeHash(a.recipe));
      if (!runs) return [];
      const { latest, previous } = runs;
      const text = doc.getText();
      const anchors = recipeAnchors(a.parsed);
      const runUri = URI.file(store.runsFile).toString();
      const at = (line: number): Location => ({
        uri: runUri,
        range: { start: { line: line - 1, character: 0 }, end: { line: line - 1, character: 0 } },
      });
      return runFindings(a.recipe, latest.record, previous?.record).map((f) => {
        const line = anchors.keys.get(f.anchor) ?? anchors.keys.get(f.anchor.split('.')[0]) ?? 0;
        return {
          range: lineRange(text, line),
          severity: f.severity,
          code: f.code,
          source: 'haqa',
          message: f.message,
          relatedInformation: [
            { location: at(latest.line), message: `run ${latest.record.id} (${latest.record.started})` },
            ...(f.code === 'run-regression' && previous
              ? [{ location: at(previous.line), message: `previous run ${previous.record.id}` }]
              : []),
          ],
        };
      });
    },
  });
}

/**
 * The runs diagnostics speak from: the newest plain benchmark of exactly this content and the ok one
 * before it. A cancelled run is the user's choice, not a finding, and is passed over.
 */
export function findingRuns<T extends { record: RunRecord }>(
  recs: T[],
  hash: string,
): { latest: T; previous?: T } | undefined {
  const same = recs.filter((x) => x.record.recipe_hash === hash && !x.record.trial && x.record.status !== 'cancelled');
  if (!same.length) return undefined;
  return {
    latest: same[same.length - 1],
    previous: same
      .slice(0, -1)
      .reverse()
      .find((x) => x.record.status === 'ok'),
  };
}

export interface RunFinding {
  code: string;
  severity: DiagnosticSeverity;
  message: string;
  anchor: string;
}

/** What the latest run of the current recipe says about it (pure: records in, findings out). */
export function runFindings(recipe: Recipe, latest: RunRecord, previous: RunRecord | undefined): RunFinding[] {
  const out: RunFinding[] = [];
  const warn = (code: string, message: string, anchor: string) =>
    out.push({ code, severity: DiagnosticSeverity.Warning, message, anchor });
  if (latest.status !== 'ok') {
    warn(
      'run-failed',
      `the last run of this recipe ended ${latest.status}: ${latest.error?.message ?? 'no message'}`,
      'quantize',
    );
    return out;
  }
  const m = latest.metrics;
  const budget = recipe.objective.accuracy.max_ppl_increase;
  const d = pctDelta(m.ppl, m.ppl_fp32);
  if (d !== undefined && d / 100 > budget) {
    warn(
      'run-accuracy-budget',
      `measured perplexity is ${d.toFixed(2)}% above fp32 (${m.ppl!.toFixed(3)} vs ${m.ppl_fp32!.toFixed(3)}), ` +
        `over the budget of ${(budget * 100).toFixed(1)}%`,
      'objective.accuracy',
    );
  }
  const sp = speedupOf(latest);
  // A raced run is slower than fp32 only when its interval says so (its verdict against fp32 = 'worse').
  const race = latest.race;
  const slower = race
    ? race.threshold === 0
      ? race.verdict === 'worse'
      : (race.decode ?? race.inference)!.lo > 1
    : sp !== undefined && sp < 1;
  if (sp !== undefined && slower) {
    warn(
      'run-slower-than-fp32',
      `this recipe runs ${(1 / sp).toFixed(2)}× slower than the fp32 model on this machine ` +
        `(decode ${m.decode_ms_per_token?.median.toFixed(2) ?? '?'} ms in ${runtimeLabel(latest)} vs fp32 ` +
        `${latest.baseline?.decode_ms_per_token?.median.toFixed(2) ?? '?'} ms in onnxruntime ${latest.onnxruntime})`,
      'quantize',
    );
  }
  const now = m.decode_ms_per_token,
    before = previous?.metrics.decode_ms_per_token;
  if (previous && now && before && previous.hardware?.cpu === latest.hardware?.cpu) {
    // A regression only when the intervals don't overlap: p10 of now above p90 of before, and > 5 %.
    if (now.median > before.median * 1.05 && now.p10 > before.p90) {
      const pct = (((now.median - before.median) / before.median) * 100).toFixed(1);
      out.push({
        code: 'run-regression',
        severity: DiagnosticSeverity.Information,
        anchor: 'quantize',
        message:
          'decode got slower than the previous run of this recipe: ' +
          `${now.median.toFixed(3)} ms in ${runtimeLabel(latest)} vs ${before.median.toFixed(3)} ms in ` +
          `${runtimeLabel(previous)} (+${pct}%)`,
      });
    }
  }
  const limit = recipe.target.memory_limit;
  if (limit !== undefined && m.peak_rss_bytes !== undefined && m.peak_rss_bytes > limit) {
    warn(
      'run-memory-over-target',
      `peak memory of the run was ${(m.peak_rss_bytes / 2 ** 20).toFixed(1)} MiB, over the target's ` +
        `${(limit / 2 ** 20).toFixed(1)} MiB (the process, runtime included)`,
      'target.memory_limit',
    );
  }
  return out;
}
