// Run features of the language server: the editor's doors into bench/ and agent/.
// - custom requests haqa/benchmark, haqa/tune, haqa/advise (work-done progress on the client's token,
//   cancellation through $/cancelRequest → AbortSignal → the worker is killed), haqa/runs (the results
//   view), haqa/bestTrialEdit and haqa/suggestionEdit (one WorkspaceEdit through the comment-keeping
//   edit module), haqa/pruneRuns;
// - code lenses: Benchmark/Tune/Advise at the top, the last measured result on the compression
//   sections and overrides (marked stale when the recipe changed since that run);
// - run diagnostics: accuracy budget exceeded, slower than fp32, regression against the previous run of
//   the same recipe, memory over the target — each pointing at its record line in runs.jsonl.
// Runs execute the workspace's model and may call an LLM: refused unless the client says the
// workspace is trusted (initializationOptions.trusted, then haqa/trust notifications).
// Text from the LLM and from model files (advice, progress, refusals) reaches the editor through
// util/sanitize's displayText/lineText: no raw control or bidi characters.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { boundedYamlValue as parseYamlValue } from '../config/parse';
import { isObj, plainUri } from './params';
import {
  DiagnosticSeverity, type CodeLens, ResponseError, WorkDoneProgress, type CancellationToken, type Diagnostic, type Range, type WorkspaceEdit,
} from 'vscode-languageserver/node';
import type { TextDocument } from 'vscode-languageserver-textdocument';
import { URI } from 'vscode-uri';
import type { ServerContext, ServerFeature } from './features';
import { docKind, uriToPath } from './service';
import {
  Methods, UNTRUSTED_MESSAGE,
  type AdviseParams, type AdviseResult, type BenchmarkParams, type BenchmarkResult, type EditResult, type LayerPlanSummary,
  type PruneParams, type PruneResult, type RecipeParams, type RunSummary, type RunsResult, type TrustParams, type TuneParams, type TuneResult,
} from './protocol';
import type { Recipe } from '../config/recipe';
import { planLayers } from '../config/plan';
import type { Layer } from '../model/graph';
import { recipeTextEdits, knobEdits, RecipeEditError } from '../config/edit';
import { recipeHash, type RunRecord } from '../bench/record';
import { RunStore } from '../bench/store';
import type { Config, TrialMetrics } from '../agent/types';
import type { Plan } from '../agent/ranking';
import { bestOfSession } from '../agent/fromRecords';
import { objectiveOf as objectiveOfRecipe, type Objective } from '../agent/objective';
import { configKey } from '../agent/space';
import { displayText, lineText } from '../util/sanitize';

/** The run engine, loaded on the first run request (see runEngine.ts). */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const engine = async (): Promise<typeof import('./runEngine')> => require('./runEngine');

/** Error code of refused runs (untrusted workspace, broken recipe): the client shows the message. */
const REFUSED = -32001;

// ------------------------------------------------------------------ pure helpers (tested directly)

function pctDelta(ppl?: number, base?: number): number | undefined {
  return ppl !== undefined && base ? ((ppl - base) / base) * 100 : undefined;
}

/** "decode 7.9 ms/token · 2.7× vs fp32 · ppl +0.6%" — the figure a user reads first. */
export function headline(r: RunSummary): string {
  if (r.status !== 'ok') return `${r.status}${r.error ? `: ${r.error}` : ''}`;
  const parts: string[] = [];
  const f = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
  if (r.decode_ms !== undefined) parts.push(`decode ${f(r.decode_ms)} ms/token`);
  else if (r.inference_ms !== undefined) parts.push(`${f(r.inference_ms)} ms/inference`);
  if (r.speedup_decode !== undefined) parts.push(`${r.speedup_decode.toFixed(1)}× vs fp32`);
  if (r.ppl_delta_pct !== undefined) parts.push(`ppl ${r.ppl_delta_pct >= 0 ? '+' : ''}${r.ppl_delta_pct.toFixed(1)}%`);
  if (r.model_bytes !== undefined) parts.push(`${(r.model_bytes / 1e6).toFixed(1)} MB`);
  return parts.join(' · ') || 'measured';
}

export function summarize(r: RunRecord, line?: number, layers?: LayerPlanSummary[]): RunSummary {
  const m = r.metrics ?? {};
  // The record's words (the agent's rationale, an error quoting the model) are shown in the editor.
  const shown = (s: string | undefined) => (s === undefined ? undefined : displayText(s));
  const t = r.trial;
  return {
    id: r.id, recipe_file: r.recipe_file, recipe_hash: r.recipe_hash, status: r.status, error: shown(r.error?.message), started: r.started,
    trial: t && { number: t.number, session: t.session, rationale: shown(t.rationale), agent: t.agent, assignment: t.assignment },
    decode_ms: m.decode_ms_per_token?.median, prefill_ms: m.prefill_ms?.median, inference_ms: m.inference_ms?.median,
    throughput_tok_s: m.throughput_tok_s, ppl: m.ppl, ppl_fp32: m.ppl_fp32, ppl_delta_pct: pctDelta(m.ppl, m.ppl_fp32),
    kl: m.kl, top1: m.top1, model_bytes: m.model_bytes, peak_rss_bytes: m.peak_rss_bytes,
    speedup_decode: speedupOf(r), speedup_size: r.speedups?.size, line, layers,
    ...(r.race ? { paired: r.race.paired, race_verdict: r.race.verdict, race_seconds: r.race.wall_ms / 1000 } : {}),
  };
}

/** fp32 time / this run's: the paired race's ratio when the run raced (bench/race.ts), else the record's speedup. */
export function speedupOf(r: RunRecord): number | undefined {
  const f = r.race?.decode ?? r.race?.inference;
  if (f && f.ratio > 0) return 1 / f.ratio;
  return r.speedups?.decode ?? r.speedups?.inference;
}

/** Records of one recipe file with their 1-based line in runs.jsonl (oldest first). */
export function recordsOf(store: RunStore, recipeFile: string): { record: RunRecord; line: number }[] {
  let text: string;
  try {
    text = store.readText(store.runsFile, 'run records'); // inside the workspace, a regular file, capped
  } catch {
    return [];
  }
  const out: { record: RunRecord; line: number }[] = [];
  text.split('\n').forEach((l, i) => {
    if (!l.trim()) return;
    try {
      const r = JSON.parse(l) as RunRecord;
      if (r && typeof r.id === 'string' && path.resolve(r.recipe_file ?? '') === path.resolve(recipeFile)) out.push({ record: r, line: i + 1 });
    } catch {
      /* torn or hand-edited line: RunStore.read reports those */
    }
  });
  return out;
}

/** Line numbers (0-based) of what lenses and diagnostics attach to, found by indentation. */
export function recipeAnchors(text: string): { sections: { key: string; line: number }[]; overrides: { line: number; match: string }[]; keys: Map<string, number> } {
  const lines = text.split(/\r?\n/);
  const sections: { key: string; line: number }[] = [];
  const overrides: { line: number; match: string }[] = [];
  const keys = new Map<string, number>();
  let top = '';
  lines.forEach((l, i) => {
    const t = /^([A-Za-z_][\w-]*)\s*:/.exec(l);
    if (t) {
      top = t[1];
      keys.set(top, i);
      if (top === 'quantize' || top === 'sparsity' || top === 'low_rank') sections.push({ key: top, line: i });
      return;
    }
    const nested = /^\s+([A-Za-z_][\w-]*)\s*:/.exec(l);
    if (nested && !keys.has(`${top}.${nested[1]}`)) keys.set(`${top}.${nested[1]}`, i);
    const o = /^\s*-\s*match\s*:\s*["']?([^"'#]+?)["']?\s*(#.*)?$/.exec(l);
    if (o && (top === 'quantize' || top === 'sparsity' || top === 'low_rank')) overrides.push({ line: i, match: o[1].trim() });
  });
  return { sections, overrides, keys };
}

function lineRange(text: string, line: number): Range {
  const l = text.split(/\r?\n/)[line] ?? '';
  const start = l.length - l.trimStart().length;
  return { start: { line, character: start }, end: { line, character: l.length } };
}

export interface RunFinding { code: string; severity: DiagnosticSeverity; message: string; anchor: string }

/** What the latest run of the current recipe says about it (pure: records in, findings out). */
export function runFindings(recipe: Recipe, latest: RunRecord, previous: RunRecord | undefined): RunFinding[] {
  const out: RunFinding[] = [];
  if (latest.status !== 'ok') {
    out.push({ code: 'run-failed', severity: DiagnosticSeverity.Warning, message: `the last run of this recipe ended ${latest.status}: ${latest.error?.message ?? 'no message'}`, anchor: 'quantize' });
    return out;
  }
  const m = latest.metrics;
  const budget = recipe.objective.accuracy.max_ppl_increase;
  const d = pctDelta(m.ppl, m.ppl_fp32);
  if (d !== undefined && d / 100 > budget) {
    out.push({ code: 'run-accuracy-budget', severity: DiagnosticSeverity.Warning, message: `measured perplexity is ${d.toFixed(2)}% above fp32 (${m.ppl!.toFixed(3)} vs ${m.ppl_fp32!.toFixed(3)}), over the budget of ${(budget * 100).toFixed(1)}%`, anchor: 'objective.accuracy' });
  }
  const sp = speedupOf(latest);
  // A raced run is slower than fp32 only when its interval says so (its verdict against fp32 = 'worse').
  const slower = latest.race ? latest.race.threshold === 0 ? latest.race.verdict === 'worse' : (latest.race.decode ?? latest.race.inference)!.lo > 1 : sp !== undefined && sp < 1;
  if (sp !== undefined && slower) {
    out.push({ code: 'run-slower-than-fp32', severity: DiagnosticSeverity.Warning, message: `this recipe runs ${(1 / sp).toFixed(2)}× slower than the fp32 model on this machine (decode ${m.decode_ms_per_token?.median.toFixed(2) ?? '?'} ms vs fp32 ${latest.baseline?.decode_ms_per_token?.median.toFixed(2) ?? '?'} ms)`, anchor: 'quantize' });
  }
  const now = m.decode_ms_per_token, before = previous?.metrics.decode_ms_per_token;
  if (previous && now && before && previous.hardware?.cpu === latest.hardware?.cpu) {
    // A regression only when the intervals don't overlap: p10 of now above p90 of before, and > 5 %.
    if (now.median > before.median * 1.05 && now.p10 > before.p90) {
      out.push({ code: 'run-regression', severity: DiagnosticSeverity.Information, message: `decode got slower than the previous run of this recipe: ${now.median.toFixed(3)} ms vs ${before.median.toFixed(3)} ms (+${(((now.median - before.median) / before.median) * 100).toFixed(1)}%)`, anchor: 'quantize' });
    }
  }
  const limit = recipe.target.memory_limit;
  if (limit !== undefined && m.peak_rss_bytes !== undefined && m.peak_rss_bytes > limit) {
    out.push({ code: 'run-memory-over-target', severity: DiagnosticSeverity.Warning, message: `peak memory of the run was ${(m.peak_rss_bytes / 2 ** 20).toFixed(1)} MiB, over the target's ${(limit / 2 ** 20).toFixed(1)} MiB (the process, runtime included)`, anchor: 'target.memory_limit' });
  }
  return out;
}

// ------------------------------------------------------------------ the feature

interface BestTrial { config: Config; headline: string }

export function createRunsFeature(): ServerFeature {
  let trusted = false;
  const bestByUri = new Map<string, BestTrial>();

  return {
    name: 'runs',
    capabilities(params) {
      trusted = (params.initializationOptions as { trusted?: boolean } | undefined)?.trusted === true;
      return { codeLensProvider: { resolveProvider: false } };
    },
    register(ctx) {
      const { connection, documents, service, diagnostics, safe } = ctx;
      const log = (m: string) => connection.console.log(m);

      const refuseUntrusted = () => {
        if (!trusted) throw new ResponseError(REFUSED, UNTRUSTED_MESSAGE);
      };
      const fileOf = (uri: string) => uriToPath(uri);
      const storeFor = (file: string) => new RunStore(path.dirname(file));

      /** The checked recipe for the document's current text (open document) or the file on disk. */
      /** The request's `uri`, or a refusal for params without one (they come from the client, unchecked). */
      function uriParam(p: unknown): string {
        const uri = plainUri(p);
        if (uri === undefined) throw new ResponseError(REFUSED, 'the request needs a uri (a string)');
        return uri;
      }

      async function recipeOf(uri: string): Promise<{ recipe: Recipe; layers?: readonly Layer[] }> {
        const doc = documents.get(uri);
        const { loadSetting } = await engine();
        const a = doc ? await service.recipe(doc) : (await loadSetting(fileOf(uri)).catch((e) => { throw new ResponseError(REFUSED, (e as Error).message); })).analysis;
        const errors = a.diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
        if (errors.length || !a.recipe) {
          const e = errors[0];
          throw new ResponseError(REFUSED, `the recipe has ${errors.length} error${errors.length === 1 ? '' : 's'}; fix ${e ? `line ${e.range.start.line + 1}: ${e.message}` : 'it'} first`);
        }
        return { recipe: a.recipe, layers: a.graph?.layers };
      }

      /** Progress on the client's token, and an AbortSignal tied to the request's cancellation. */
      function job(token: string | number | undefined, cancel: CancellationToken, title: string) {
        const ac = new AbortController();
        const sub = cancel.onCancellationRequested(() => ac.abort());
        if (token !== undefined) void connection.sendProgress(WorkDoneProgress.type, token, { kind: 'begin', title, cancellable: true, percentage: 0 });
        return {
          signal: ac.signal,
          report(message: string, fraction?: number) {
            const percentage = fraction !== undefined ? Math.round(Math.min(1, Math.max(0, fraction)) * 100) : undefined;
            if (token !== undefined) {
              void connection.sendProgress(WorkDoneProgress.type, token, { kind: 'report', message: lineText(message), percentage });
            }
          },
          end(message: string) {
            sub.dispose();
            if (token !== undefined) {
              void connection.sendProgress(WorkDoneProgress.type, token, { kind: 'end', message: lineText(message) });
            }
          },
        };
      }

      function afterRun(uri: string) {
        diagnostics.schedule(uri);
        if (ctx.clientCapabilities.workspace?.codeLens?.refreshSupport) void connection.sendRequest('workspace/codeLens/refresh').catch(() => {});
      }

      connection.onNotification(Methods.trust, (p: TrustParams) => {
        trusted = p?.trusted === true;
        log(`haqa: workspace ${trusted ? 'trusted: runs enabled' : 'restricted: runs disabled'}`);
      });

      connection.onRequest(Methods.benchmark, async (p: BenchmarkParams, cancel: CancellationToken): Promise<BenchmarkResult> => {
        refuseUntrusted();
        const { recipe } = await recipeOf(p.uri);
        const j = job(p.workDoneToken, cancel, `Benchmark ${path.basename(recipe.file)}`);
        try {
          const { runOnTarget } = await engine();
          const record = await runOnTarget(recipe, {
            baseline: true, signal: j.signal, timeoutMs: p.timeoutSeconds ? p.timeoutSeconds * 1000 : undefined,
            roots: service.roots.length ? service.roots : undefined, // the folders the check judged paths by
            onProgress: (pr) => j.report(`${pr.stage}: ${pr.message}`, pr.fraction),
          });
          const line = recordsOf(storeFor(recipe.file), recipe.file).find((x) => x.record.id === record.id)?.line;
          const run = summarize(record, line);
          j.end(headline(run));
          afterRun(p.uri);
          if (record.status === 'cancelled') throw new ResponseError(-32800, 'benchmark cancelled');
          return { run, headline: headline(run) };
        } catch (err) {
          j.end('failed');
          throw err;
        }
      });

      connection.onRequest(Methods.tune, async (p: TuneParams, cancel: CancellationToken): Promise<TuneResult> => {
        refuseUntrusted();
        const { loadSetting, SettingError, tune } = await engine();
        let loaded;
        try {
          loaded = await loadSetting(fileOf(p.uri), service.models);
        } catch (err) {
          throw new ResponseError(REFUSED, displayText(err instanceof SettingError ? err.message : (err as Error).message));
        }
        // The recipe's search section rules; the editor setting only fills in a trial budget it leaves out.
        const search = loaded.setting.recipe.search;
        const written = (parseYamlValue(loaded.text) as { search?: { trials?: unknown } } | null)?.search?.trials;
        const trials = p.trialsChosen && p.trials ? p.trials : typeof written === 'number' ? written : p.trials ?? search.trials;
        const agent = (p.agent ?? search.agent) === 'claude' && p.apiKey ? 'claude' : 'offline';
        const j = job(p.workDoneToken, cancel, `Tune ${path.basename(fileOf(p.uri))}`);
        if (search.agent === 'claude' && !p.apiKey) j.report('no API key set (HAQA: Set Anthropic API Key): using the offline optimizer');
        let done = 0;
        try {
          const result = await tune(loaded, {
            agent, trials, seed: search.seed, apiKey: p.apiKey, model: p.model, baseURL: p.baseUrl,
            signal: j.signal,
            onEvent: (e) => {
              if (e.type === 'trial-start') j.report(`trial ${e.index}: ${Object.entries(e.config).map(([k, v]) => `${k}=${v}`).join(' ') || 'as written'}`, done / trials);
              else if (e.type === 'trial-end') {
                done++;
                j.report(`trial ${e.trial.index} ${e.trial.feasible ? 'feasible' : e.trial.status}${e.best ? `; best #${e.best.index}` : ''}`, done / trials);
              } else if (e.type === 'baseline') j.report('fp32 baseline measured', 0);
            },
            onProgress: (t, stage, message) => j.report(`${t !== undefined ? `trial ${t} ` : ''}${stage}: ${message}`),
          });
          const best = result.best;
          // The loop's best under its ranking rule, with its figures: what the view and the lens show too.
          const summary: TuneResult['best'] = best && { ...planSummary(best, result.baseline), recipe_file: fileOf(p.uri) };
          const text = summary ? `best: trial ${best!.index} — ${headline(summary)}` : `no feasible trial (${result.reason})`;
          if (best) bestByUri.set(p.uri, { config: best.config, headline: text });
          j.end(text);
          afterRun(p.uri);
          return { outcome: result.outcome, trials: result.trials.length, best: summary, headline: lineText(text) };
        } catch (err) {
          j.end('failed');
          throw err;
        }
      });

      connection.onRequest(Methods.advise, async (p: AdviseParams, cancel: CancellationToken): Promise<AdviseResult> => {
        refuseUntrusted();
        const { loadSetting, adviseOffline, adviseWithClaude, objectiveOf } = await engine();
        let loaded;
        try {
          loaded = await loadSetting(fileOf(p.uri), service.models);
        } catch (err) {
          throw new ResponseError(REFUSED, displayText((err as Error).message));
        }
        type Shown = { title: string; rationale: string; knobs: Config };
        const shown = ({ title, rationale, knobs }: Shown) => ({ title: lineText(title), rationale: displayText(rationale), knobs });
        if (!p.apiKey) return { suggestions: adviseOffline(loaded.setting).map(shown), source: 'rules' };
        const j = job(p.workDoneToken, cancel, 'Advise');
        j.report(`asking ${p.model ?? 'Claude'}`);
        try {
          const res = await adviseWithClaude(loaded.setting, objectiveOf(loaded.setting.recipe), { apiKey: p.apiKey, model: p.model, baseURL: p.baseUrl, signal: j.signal, architecture: loaded.architecture });
          j.end(`${res.suggestions.length} suggestions`);
          if (res.outcome !== 'completed' && res.suggestions.length === 0) {
            throw new ResponseError(REFUSED, displayText(`the advisor gave no suggestions: ${res.reason}`));
          }
          return { suggestions: res.suggestions.map(shown), source: 'claude' };
        } catch (err) {
          j.end('failed');
          throw err;
        }
      });

      /** Knob assignment → one WorkspaceEdit on the document's current text (comments kept). */
      function knobsEdit(uri: string, knobs: Record<string, unknown>, what: string): EditResult {
        const doc = documents.get(uri);
        const text = doc ? doc.getText() : fs.readFileSync(fileOf(uri), 'utf8');
        try {
          const edits = recipeTextEdits(text, knobEdits(knobs as Config, parseYamlValue(text)));
          if (edits.length === 0) return { message: `${what}: the recipe already says so` };
          const edit: WorkspaceEdit = { changes: { [uri]: edits } };
          return { edit, message: `${what}: ${Object.entries(knobs).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ')}` };
        } catch (err) {
          if (err instanceof RecipeEditError) return { message: `${what} cannot be written into this recipe: ${err.message}` };
          throw err;
        }
      }

      connection.onRequest(Methods.suggestionEdit, (p: RecipeParams & { knobs: Record<string, unknown>; title?: string }) =>
        knobsEdit(uriParam(p), isObj(p.knobs) ? p.knobs : {},
          `apply suggestion${typeof p.title === 'string' && p.title ? ` “${p.title}”` : ''}`));

      connection.onRequest(Methods.bestTrialEdit, async (p: RecipeParams): Promise<EditResult> => {
        uriParam(p);
        const best = bestByUri.get(p.uri) ?? bestFromStore(fileOf(p.uri), objectiveOfRecipe((await recipeOf(p.uri)).recipe));
        if (!best) return { message: 'no tuning result for this recipe yet: run HAQA: Tune first' };
        return knobsEdit(p.uri, best.config, 'apply best trial');
      });

      /** After a restart: the newest tuning session's best plan, from the store. */
      function bestFromStore(file: string, objective: Objective): BestTrial | undefined {
        return bestOfNewestSession(recordsOf(storeFor(file), file), objective);
      }

      connection.onRequest(Methods.runs, async (p: { uri?: string }): Promise<RunsResult> => {
        const uri = plainUri(p);
        if (!uri) return { runs: [], storeFile: '' };
        const file = fileOf(uri);
        const store = storeFor(file);
        let current: { recipe: Recipe; layers?: readonly Layer[] } | undefined;
        try {
          current = await recipeOf(uri);
        } catch {
          current = undefined; // a broken recipe still shows its history
        }
        const recs = recordsOf(store, file);
        const runs = mergeTrialSteps(recs).map(({ record, line }) => summarize(record, line, current?.layers ? layerMap(current.recipe, current.layers, record) : undefined));
        const best = current ? bestOfNewestSession(recs, objectiveOfRecipe(current.recipe)) : undefined;
        return {
          runs, storeFile: store.runsFile, bestId: best?.id, bestHeadline: best && lineText(best.headline),
          budgetPct: current ? current.recipe.objective.accuracy.max_ppl_increase * 100 : undefined,
          currentHash: current ? recipeHash(current.recipe) : undefined,
        };
      });

      connection.onRequest(Methods.pruneRuns, async (p: PruneParams): Promise<PruneResult> => {
        refuseUntrusted(); // it deletes files: a restricted workspace's folder layout decides where
        const r = await storeFor(fileOf(p.uri)).prune(Math.max(1, p.keep ?? 20));
        return { removed: r.removed.length, kept: r.kept.length };
      });

      // ---------------------------------------------------------------- code lenses

      connection.onCodeLens((p) =>
        safe('codeLens', async () => {
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
          const recs = recordsOf(storeFor(file), file);
          // One run count everywhere: runs as the results view lists them (a trial's two steps are one run).
          const count = mergeTrialSteps(recs).length;
          if (count) lenses.push(lens(top, { title: `Results (${count} run${count === 1 ? '' : 's'})`, command: 'haqa.showResults', arguments: [uri] }));
          if (bestByUri.has(uri)) lenses.push(lens(top, { title: 'Apply best trial', command: 'haqa.applyBestTrial', arguments: [uri] }));
          // Any run of exactly this content counts (a tuning trial too); when none, the last plain benchmark, marked stale.
          const a = await service.recipe(doc);
          const pick = lensRecord(recs, a.recipe ? recipeHash(a.recipe) : undefined);
          if (!pick) return lenses;
          const text = headline(summarize(pick.record)) + (pick.fresh ? '' : ' · stale (edited since)');
          const anchors = recipeAnchors(doc.getText());
          for (const at of [...anchors.sections.map((s) => s.line), ...anchors.overrides.map((o) => o.line)]) {
            lenses.push(lens(lineRange(doc.getText(), at), { title: text, command: 'haqa.showResults', arguments: [uri] }));
          }
          return lenses;
        }, []),
      );

      // ---------------------------------------------------------------- run diagnostics

      diagnostics.register({
        id: 'haqa.runs',
        appliesTo: (doc) => docKind(doc.uri) === 'recipe',
        async compute(doc: TextDocument): Promise<Diagnostic[]> {
          const a = await service.recipe(doc);
          if (!a.recipe) return [];
          const file = fileOf(doc.uri);
          const store = storeFor(file);
          const hash = recipeHash(a.recipe);
          const runs = findingRuns(recordsOf(store, file), hash);
          if (!runs) return [];
          const { latest, previous } = runs;
          const text = doc.getText();
          const anchors = recipeAnchors(text);
          const runUri = URI.file(store.runsFile).toString();
          return runFindings(a.recipe, latest.record, previous?.record).map((f) => {
            const line = anchors.keys.get(f.anchor) ?? anchors.keys.get(f.anchor.split('.')[0]) ?? 0;
            const at = { start: { line: latest.line - 1, character: 0 }, end: { line: latest.line - 1, character: 0 } };
            return {
              range: lineRange(text, line), severity: f.severity, code: f.code, source: 'haqa',
              message: f.message,
              relatedInformation: [
                { location: { uri: runUri, range: at }, message: `run ${latest.record.id} (${latest.record.started})` },
                ...(f.code === 'run-regression' && previous ? [{ location: { uri: runUri, range: { start: { line: previous.line - 1, character: 0 }, end: { line: previous.line - 1, character: 0 } } }, message: `previous run ${previous.record.id}` }] : []),
              ],
            };
          });
        },
      });
    },
  };
}

/**
 * The runs diagnostics speak from: the newest plain benchmark of exactly this content and the ok one
 * before it. A cancelled run is the user's choice, not a finding, and is passed over.
 */
export function findingRuns<T extends { record: RunRecord }>(recs: T[], hash: string): { latest: T; previous?: T } | undefined {
  const same = recs.filter((x) => x.record.recipe_hash === hash && !x.record.trial && x.record.status !== 'cancelled');
  if (!same.length) return undefined;
  return { latest: same[same.length - 1], previous: same.slice(0, -1).reverse().find((x) => x.record.status === 'ok') };
}

/**
 * The run the code lens shows: the newest complete run of exactly this content (a tuning trial too, its
 * two steps merged), else the newest run of it, else the newest plain benchmark (stale). Cancelled runs
 * have no figures and are passed over.
 */
export function lensRecord(recs: { record: RunRecord; line: number }[], hash: string | undefined): { record: RunRecord; fresh: boolean } | undefined {
  const done = mergeTrialSteps(recs).filter((x) => x.record.status !== 'cancelled').reverse();
  const fresh = done.find((x) => x.record.recipe_hash === hash && x.record.status === 'ok' && x.record.metrics.decode_ms_per_token && x.record.metrics.ppl !== undefined)
    ?? done.find((x) => x.record.recipe_hash === hash);
  if (fresh) return { record: fresh.record, fresh: true };
  const measured = done.find((x) => !x.record.trial);
  return measured ? { record: measured.record, fresh: false } : undefined;
}

/**
 * The tuner measures a trial in two steps (speed, then accuracy if the speed is promising), each its
 * own record: show them as one run, the first record's line, metrics filled from both.
 */
export function mergeTrialSteps(recs: { record: RunRecord; line: number }[]): { record: RunRecord; line: number }[] {
  const out: { record: RunRecord; line: number }[] = [];
  const byTrial = new Map<string, { record: RunRecord; line: number }>();
  for (const x of recs) {
    const t = x.record.trial;
    const key = t?.session !== undefined && t.number !== undefined ? `${t.session}#${t.number}` : undefined;
    const prev = key ? byTrial.get(key) : undefined;
    if (!prev) {
      const copy = { record: { ...x.record, metrics: { ...x.record.metrics } }, line: x.line };
      if (key) byTrial.set(key, copy);
      out.push(copy);
      continue;
    }
    for (const [k, v] of Object.entries(x.record.metrics ?? {})) if (v !== undefined) (prev.record.metrics as Record<string, unknown>)[k] = v;
    prev.record.baseline = { ...prev.record.baseline, ...x.record.baseline };
    prev.record.speedups = { ...prev.record.speedups, ...x.record.speedups };
    if (x.record.status !== 'ok') {
      prev.record.status = x.record.status;
      prev.record.error = x.record.error;
    }
  }
  return out;
}

/**
 * The newest tuning session's best plan, from run records alone (after a restart, when the loop's answer
 * is gone): the session rebuilt as the loop judged it (agent/fromRecords.ts) and ranked by the loop's
 * one rule (agent/ranking.ts), so the lens, "apply best trial" and the results view name the best the
 * tuner announced. `id` is the record of the plan's first trial (the view marks it).
 */
export function bestOfNewestSession(
  recs: { record: RunRecord; line: number }[], objective: Objective | number,
): { config: Config; headline: string; id: string } | undefined {
  const o: Objective = typeof objective === 'number'
    ? { metric: 'decode_latency', field: 'decode_ms_per_token', direction: 'min', unit: 'ms/token', max_ppl_increase: objective }
    : objective;
  const found = bestOfSession(mergeTrialSteps(recs).map((x) => x.record), o);
  if (!found) return undefined;
  return { config: found.plan.config, headline: headline(planSummary(found.plan, found.view.baseline)), id: found.id };
}

/** The headline figures of a ranked plan (agent/ranking.ts): the same numbers the loop's answer has. */
export function planSummary(best: Plan, baseline?: TrialMetrics): NonNullable<TuneResult['best']> {
  const bm = best.metrics;
  const ratio = best.ratio ?? (bm.decode_ms_per_token && baseline?.decode_ms_per_token ? bm.decode_ms_per_token / baseline.decode_ms_per_token : undefined);
  return {
    id: `trial-${best.index}`, recipe_file: '', recipe_hash: '', status: best.status === 'failed' ? 'error' : 'ok', started: '',
    decode_ms: bm.decode_ms_per_token, prefill_ms: bm.prefill_ms, ppl: bm.ppl, ppl_fp32: bm.ppl_fp32,
    ppl_delta_pct: pctDelta(bm.ppl, bm.ppl_fp32 ?? baseline?.ppl),
    speedup_decode: ratio ? 1 / ratio : undefined, model_bytes: bm.model_bytes, assignment: best.config,
  };
}

function lens(range: Range, command: { title: string; command: string; arguments?: unknown[] }): CodeLens {
  return { range, command };
}

function layerMap(recipe: Recipe, layers: readonly Layer[], r: RunRecord): LayerPlanSummary[] {
  const c = r.config ?? ({} as RunRecord['config']);
  const asRun = { ...recipe, quantize: c.quantize, sparsity: c.sparsity, low_rank: c.low_rank } as Recipe;
  try {
    return planLayers(asRun, layers).map((p) => ({
      name: p.layer.name,
      bits: p.quant?.bits,
      block_size: p.quant?.block_size,
      skip: !p.quant,
      sparsity: p.sparsity ? ('ratio' in p.sparsity ? `${Math.round(p.sparsity.ratio * 100)}%` : `${p.sparsity.n}:${p.sparsity.m}`) : undefined,
      rank: p.lowRank?.rank,
    }));
  } catch {
    return [];
  }
}
