// The run feature's code lenses on a recipe: Benchmark / Tune / Advise at the top, Results (n runs) and
// Apply best trial when there are any, and the last measured result on each compression section and
// override (config/anchors.ts, from the analysis' parse), marked stale when the recipe changed since.
import type { CodeLens, Range } from 'vscode-languageserver/node';
import { docKind } from './service';
import { fileOf, lineRange, storeFor, type RunsContext } from './runContext';
import { headline, summarize } from './runViews';
import { recipeAnchors } from '../config/anchors';
import type { RecordAt } from '../bench/store';
import { recipeHash, type RunRecord } from '../bench/record';
import { mergeTrialSteps } from '../agent/fromRecords';

export function registerRunLenses(rc: RunsContext): void {
  const { connection, documents, service, safe } = rc.ctx;
  connection.onCodeLens((p) =>
    safe(
      'codeLens',
      async () => {
        const doc = documents.get(p.textDocument.uri);
        if (!doc || docKind(doc.uri) !== 'recipe') return [];
        const uri = doc.uri;
        const top: Range = { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } };
        const lenses: CodeLens[] = [
          lens(top, { title: '▶ Benchmark', command: 'haqa.benchmark', arguments: [uri] }),
          lens(top, { title: 'Tune', command: 'haqa.tune', arguments: [uri] }),
          lens(top, { title: 'Advise', command: 'haqa.advise', arguments: [uri] }),
        ];
        const file = fileOf(uri);
        const recs = storeFor(file).recordsOf(file);
        // One run count everywhere: runs as the results view lists them (a trial's two steps are one run).
        const count = mergeTrialSteps(recs).length;
        if (count)
          lenses.push(
            lens(top, {
              title: `Results (${count} run${count === 1 ? '' : 's'})`,
              command: 'haqa.showResults',
              arguments: [uri],
            }),
          );
        if (rc.state.bestByUri.has(uri))
          lenses.push(lens(top, { title: 'Apply best trial', command: 'haqa.applyBestTrial', arguments: [uri] }));
        // Any run of exactly this content counts (a tuning trial too);
        // when none, the last plain benchmark, marked stale.
        const a = await service.recipe(doc);
        const pick = lensRecord(recs, a.recipe ? recipeHash(a.recipe) : undefined);
        if (!pick) return lenses;
        const title = headline(summarize(pick.record)) + (pick.fresh ? '' : ' · stale (edited since)');
        const anchors = recipeAnchors(a.parsed);
        const text = doc.getText();
        for (const at of [...anchors.sections.map((s) => s.line), ...anchors.overrides.map((o) => o.line)]) {
          lenses.push(lens(lineRange(text, at), { title, command: 'haqa.showResults', arguments: [uri] }));
        }
        return lenses;
      },
      [],
    ),
  );
}

/**
 * The run the code lens shows: the newest complete run of exactly this content (a tuning trial too, its
 * two steps merged), else the newest run of it, else the newest plain benchmark (stale). Cancelled runs
 * have no figures and are passed over.
 */
export function lensRecord(
  recs: readonly RecordAt[],
  hash: string | undefined,
): { record: RunRecord; fresh: boolean } | undefined {
  const done = mergeTrialSteps(recs)
    .filter((x) => x.record.status !== 'cancelled')
    .reverse();
  const complete = (r: RunRecord) => r.status === 'ok' && r.metrics.decode_ms_per_token && r.metrics.ppl !== undefined;
  const fresh =
    done.find((x) => x.record.recipe_hash === hash && complete(x.record)) ??
    done.find((x) => x.record.recipe_hash === hash);
  if (fresh) return { record: fresh.record, fresh: true };
  const measured = done.find((x) => !x.record.trial);
  return measured ? { record: measured.record, fresh: false } : undefined;
}

function lens(range: Range, command: { title: string; command: string; arguments?: unknown[] }): CodeLens {
  return { range, command };
}
