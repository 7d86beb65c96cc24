// The run feature's history requests: haqa/runs (the results view: this recipe's runs from the run store,
// a trial's two records as one run, each with its per-layer plan, and the newest session's best by the
// loop's rule) and haqa/pruneRuns (refused in an untrusted workspace: it deletes files). The records come
// from bench/store.ts and the ranking from agent/; this module only assembles the view's answer.
import { plainUri } from './params';
import { onTypedRequest, Requests, type PruneResult, type RunsResult } from './protocol';
import { fileOf, storeFor, type RunsContext } from './runContext';
import { bestOfNewestSession, layerMap, summarize } from './runViews';
import type { Recipe } from '../config/recipe';
import type { Layer } from '../model/graph';
import { recipeHash } from '../bench/record';
import { mergeTrialSteps } from '../agent/fromRecords';
import { objectiveOf } from '../agent/objective';
import { lineText } from '../util/sanitize';

export function registerRunHistory(rc: RunsContext): void {
  const { connection } = rc.ctx;

  onTypedRequest(connection, Requests.runs, async (p): Promise<RunsResult> => {
    const uri = plainUri(p);
    if (!uri) return { runs: [], storeFile: '' };
    const file = fileOf(uri);
    const store = storeFor(file);
    let current: { recipe: Recipe; layers?: readonly Layer[] } | undefined;
    try {
      current = await rc.recipeOf(uri);
    } catch {
      current = undefined; // a broken recipe still shows its history
    }
    const recs = store.recordsOf(file);
    const runs = mergeTrialSteps(recs).map(({ record, line }) =>
      summarize(record, line, current?.layers ? layerMap(current.recipe, current.layers, record) : undefined),
    );
    const best = current ? bestOfNewestSession(recs, objectiveOf(current.recipe)) : undefined;
    return {
      runs,
      storeFile: store.runsFile,
      bestId: best?.id,
      bestHeadline: best && lineText(best.headline),
      budgetPct: current ? current.recipe.objective.accuracy.max_ppl_increase * 100 : undefined,
      currentHash: current ? recipeHash(current.recipe) : undefined,
    };
  });

  onTypedRequest(connection, Requests.pruneRuns, async (p): Promise<PruneResult> => {
    rc.refuseUntrusted(); // it deletes files: a restricted workspace's folder layout decides where
    const r = await storeFor(fileOf(rc.uriParam(p))).prune(Math.max(1, p.keep ?? 20));
    return { removed: r.removed.length, kept: r.kept.length };
  });
}
