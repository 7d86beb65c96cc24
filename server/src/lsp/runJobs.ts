// The run feature's long requests: haqa/benchmark, haqa/tune and haqa/advise. Each is refused in an
// untrusted workspace, reports work-done progress on the client's token and stops when the client cancels
// ($/cancelRequest → AbortSignal → the worker is killed). The work is the engine's (runner, agent/session.ts,
// agent/advise.ts, loaded through runEngine.ts on first use); this module maps params in and results out.
// Advice, progress and refusals quote the LLM and model files: they pass util/sanitize.
import * as path from 'node:path';
import { ResponseError } from 'vscode-languageserver/node';
import { boundedYamlValue as parseYamlValue } from '../config/parse';
import { onTypedRequest, Requests, type AdviseResult, type BenchmarkResult, type TuneResult } from './protocol';
import { engine, fileOf, REFUSED, storeFor, type RunsContext } from './runContext';
import { headline, planSummary, summarize } from './runViews';
import type { Config } from '../agent/types';
import { displayText, lineText } from '../util/sanitize';

export function registerRunJobs(rc: RunsContext): void {
  const { connection, service } = rc.ctx;

  onTypedRequest(connection, Requests.benchmark, async (p, cancel): Promise<BenchmarkResult> => {
    rc.refuseUntrusted();
    const { recipe } = await rc.recipeOf(p.uri);
    const j = rc.job(p.workDoneToken, cancel, `Benchmark ${path.basename(recipe.file)}`);
    try {
      const { runOnTarget } = await engine();
      const record = await runOnTarget(recipe, {
        baseline: true,
        signal: j.signal,
        timeoutMs: p.timeoutSeconds ? p.timeoutSeconds * 1000 : undefined,
        roots: service.roots.length ? service.roots : undefined, // the folders the check judged paths by
        onProgress: (pr) => j.report(`${pr.stage}: ${pr.message}`, pr.fraction),
      });
      const line = storeFor(recipe.file)
        .recordsOf(recipe.file)
        .find((x) => x.record.id === record.id)?.line;
      const run = summarize(record, line);
      j.end(headline(run));
      rc.afterRun(p.uri);
      if (record.status === 'cancelled') throw new ResponseError(-32800, 'benchmark cancelled');
      return { run, headline: headline(run) };
    } catch (err) {
      j.end('failed');
      throw err;
    }
  });

  onTypedRequest(connection, Requests.tune, async (p, cancel): Promise<TuneResult> => {
    rc.refuseUntrusted();
    const { loadSetting, SettingError, tune, chooseProposer, isProposerName, proposerList } = await engine();
    let loaded;
    try {
      loaded = await loadSetting(fileOf(p.uri), service.models);
    } catch (err) {
      throw new ResponseError(REFUSED, displayText(err instanceof SettingError ? err.message : (err as Error).message));
    }
    // The recipe's search section rules; the editor setting only fills in a trial budget it leaves out.
    const search = loaded.setting.recipe.search;
    const written = (parseYamlValue(loaded.text) as { search?: { trials?: unknown } } | null)?.search?.trials;
    const trials =
      p.trialsChosen && p.trials ? p.trials : typeof written === 'number' ? written : (p.trials ?? search.trials);
    if (p.agent !== undefined && !isProposerName(p.agent))
      throw new ResponseError(REFUSED, `unknown agent; agents are ${proposerList()}`);
    const { name: agent, note } = chooseProposer(p.agent, search.agent, p);
    const j = rc.job(p.workDoneToken, cancel, `Tune ${path.basename(fileOf(p.uri))}`);
    if (note) j.report(`${note} (HAQA: Set Anthropic API Key)`);
    let done = 0;
    try {
      const result = await tune(loaded, {
        agent,
        trials,
        seed: search.seed,
        apiKey: p.apiKey,
        model: p.model,
        baseURL: p.baseUrl,
        signal: j.signal,
        onEvent: (e) => {
          if (e.type === 'trial-start') {
            const knobs =
              Object.entries(e.config)
                .map(([k, v]) => `${k}=${v}`)
                .join(' ') || 'as written';
            j.report(`trial ${e.index}: ${knobs}`, done / trials);
          } else if (e.type === 'trial-end') {
            done++;
            j.report(
              `trial ${e.trial.index} ${e.trial.feasible ? 'feasible' : e.trial.status}` +
                `${e.best ? `; best #${e.best.index}` : ''}`,
              done / trials,
            );
          } else if (e.type === 'baseline') j.report('fp32 baseline measured', 0);
        },
        onProgress: (t, stage, message) => j.report(`${t !== undefined ? `trial ${t} ` : ''}${stage}: ${message}`),
      });
      const best = result.best;
      // The loop's best under its ranking rule, with its figures: what the view and the lens show too.
      const summary: TuneResult['best'] = best && { ...planSummary(best, result.baseline), recipe_file: fileOf(p.uri) };
      const text = summary
        ? `best: trial ${best!.index} — ${headline(summary)}`
        : `no feasible trial (${result.reason})`;
      if (best) rc.state.bestByUri.set(p.uri, { config: best.config, headline: text });
      j.end(text);
      rc.afterRun(p.uri);
      return { outcome: result.outcome, trials: result.trials.length, best: summary, headline: lineText(text) };
    } catch (err) {
      j.end('failed');
      throw err;
    }
  });

  onTypedRequest(connection, Requests.advise, async (p, cancel): Promise<AdviseResult> => {
    rc.refuseUntrusted();
    const { loadSetting, adviseOffline, adviseWithClaude, objectiveOf, ...probing } = await engine();
    let loaded;
    try {
      loaded = await loadSetting(fileOf(p.uri), service.models);
    } catch (err) {
      throw new ResponseError(REFUSED, displayText((err as Error).message));
    }
    type Shown = { title: string; rationale: string; knobs: Config };
    const shown = ({ title, rationale, knobs }: Shown) => ({
      title: lineText(title),
      rationale: displayText(rationale),
      knobs,
    });
    // This machine's kernel probe (written by `haqa advise --measure`), so the figures quoted are its own.
    const probe = probing.readKernelProbe(storeFor(fileOf(p.uri)), probing.hardwareFingerprint());
    if (!p.apiKey) return { suggestions: adviseOffline(loaded.setting, probe).map(shown), source: 'rules' };
    const j = rc.job(p.workDoneToken, cancel, 'Advise');
    j.report(`asking ${p.model ?? 'Claude'}`);
    try {
      const res = await adviseWithClaude(loaded.setting, objectiveOf(loaded.setting.recipe), {
        apiKey: p.apiKey,
        model: p.model,
        baseURL: p.baseUrl,
        signal: j.signal,
        architecture: loaded.architecture,
        kernelFacts: probe ? probing.kernelFacts(probe) : undefined,
      });
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
}
