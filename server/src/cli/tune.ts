// haqa tune <haqa.yaml>: the closed loop. Proposes configurations (offline TPE, random, sweep, or Claude),
// compresses and benchmarks each, prints every trial as it ends and the best against fp32, and writes
// the best recipe beside the original (comments kept) — the original only with --write. Knob names (globs
// over layer names from the model) and the agent's explanation are untrusted: printed through util/sanitize.
import * as path from 'node:path';
import { Command, humanBytes, parse, UsageError } from './command';
import { loadSetting, bestPathFor, SettingError, LoadedSetting } from '../agent/setting';
import { pplChange } from '../agent/objective';
import type { LoopResult } from '../agent/loop';
import { PROPOSER_NAMES, type ProposerName, chooseProposer, isProposerName, proposerList } from '../agent/proposers';
import { DEFAULT_MODEL } from '../agent/claude';
import type { Proposer } from '../agent/proposer';
import type { Config, Trial, TrialMetrics } from '../agent/types';
import { sessionProposer, tune, TuneSetupError, type TuneOptions } from '../agent/session';
import { applyConfig } from '../agent/edits';
import { shownKnobs } from '../agent/space';
import { writeFileAtomic } from '../util/atomicWrite';
import { displayText, lineText } from '../util/sanitize';

const usage =
  `haqa tune <haqa.yaml> [--trials N] [--minutes M] [--agent ${PROPOSER_NAMES.join('|')}] ` +
  '[--seed S] [--model NAME] [--base-url URL] [--full] [--json] [--write]';

export type AgentKind = ProposerName;

function int(v: string | undefined, flag: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max)
    throw new UsageError(`${flag} must be an integer in ${min}..${max}, got '${v}'`);
  return Number(v);
}

/** A config as the CLI shows it: its knobs that apply (shownKnobs), or that it is the recipe as written. */
export function configText(c: Config): string {
  const parts = Object.entries(shownKnobs(c)).map(([k, v]) => `${lineText(k)}=${lineText(v)}`);
  return parts.length ? parts.join(' ') : '(recipe as written)';
}

function pct(x: number | undefined): string {
  return x === undefined ? '—' : `${x >= 0 ? '+' : ''}${(x * 100).toFixed(2)}%`;
}

export function trialLine(t: Trial, baseline: TrialMetrics | undefined): string {
  const d = t.metrics.decode_ms_per_token;
  // A raced trial shows its paired speedup, verdict and race time (part of the trial's cost, bench/race.ts).
  const race = t.metrics.race;
  const f = race?.decode ?? race?.inference;
  const sp = f
    ? ` (${(1 / f.ratio).toFixed(2)}x ${race!.paired ? 'paired' : 'unpaired'}, ` +
      `${race!.verdict} in ${(race!.wall_ms / 1000).toFixed(1)} s)`
    : d && baseline?.decode_ms_per_token
      ? ` (${(baseline.decode_ms_per_token / d).toFixed(2)}x)`
      : '';
  const state = t.feasible
    ? 'feasible'
    : t.status === 'pruned'
      ? 'pruned'
      : t.status === 'failed'
        ? `failed: ${t.error}`
        : `infeasible: ${t.violations.join('; ')}`;
  const again = t.repeatOf !== undefined ? ` (re-measure of #${t.repeatOf}: speed only)` : '';
  return (
    `#${String(t.index).padEnd(3)} ${configText(t.config)}${again}\n` +
    `     decode ${d !== undefined ? d.toFixed(3) : '—'} ms/token${sp}  ` +
    `ppl ${pct(pplChange(t.metrics, baseline))}  ${state}`
  );
}

export interface TuneRun {
  result: LoopResult;
  written?: string;
}

/** The session's proposer (agent/session.ts), its setup problems as usage errors of the command. */
export function makeProposer(loaded: LoadedSetting, o: TuneOptions): Proposer {
  try {
    return sessionProposer(loaded, o);
  } catch (err) {
    throw asUsage(err);
  }
}

/** A session that cannot start as asked is the command line's fault: exit 2 with the reason. */
function asUsage(err: unknown): unknown {
  return err instanceof TuneSetupError ? new UsageError(err.message) : err;
}

export const tuneCommand: Command = {
  name: 'tune',
  summary: 'tune quantization and runtime knobs by measuring (offline optimizer or Claude); writes <recipe>.best.yaml',
  usage,
  async run(argv, io) {
    const { values, positionals } = parse(
      argv,
      {
        trials: { type: 'string' },
        minutes: { type: 'string' },
        agent: { type: 'string' },
        seed: { type: 'string' },
        model: { type: 'string' },
        'base-url': { type: 'string' },
        json: { type: 'boolean' },
        write: { type: 'boolean' },
        full: { type: 'boolean' },
      },
      usage,
    );
    if (positionals.length !== 1) throw new UsageError(`expected one recipe\nusage: ${usage}`);
    const file = path.resolve(positionals[0]);
    const agentArg = values.agent;
    if (agentArg !== undefined && !isProposerName(agentArg))
      throw new UsageError(`--agent must be ${proposerList()}, got '${agentArg}'`);
    const minutes = values.minutes === undefined ? undefined : Number(values.minutes);
    if (minutes !== undefined && !(minutes > 0))
      throw new UsageError(`--minutes must be a positive number, got '${values.minutes}'`);

    let loaded: LoadedSetting;
    try {
      loaded = await loadSetting(file);
    } catch (err) {
      if (err instanceof SettingError) {
        io.err(`haqa tune: ${err.message}`);
        return 1;
      }
      throw err;
    }
    const r = loaded.setting.recipe;
    const apiKey = process.env.ANTHROPIC_API_KEY || undefined;
    const { name: agent, note } = chooseProposer(agentArg, r.search.agent, { apiKey });
    if (note) io.err(`haqa tune: note: ${note} (ANTHROPIC_API_KEY)`);
    const o: TuneOptions = {
      agent,
      trials: int(values.trials, '--trials', 1, 1000) ?? r.search.trials,
      minutes: minutes ?? r.search.minutes,
      seed: int(values.seed, '--seed', 0, 2 ** 32 - 1) ?? r.search.seed,
      apiKey,
      model: values.model ?? DEFAULT_MODEL,
      baseURL: values['base-url'] ?? process.env.ANTHROPIC_BASE_URL,
      signal: io.signal,
      quick: !values.full,
    };
    for (const p of loaded.spaceProblems) io.err(`haqa tune: warning: ${p}`);
    const json = values.json === true;
    let baseline: TrialMetrics | undefined;
    if (!json) {
      io.out(
        `tuning ${path.basename(file)}: ${o.agent}${o.agent === 'claude' ? ` (${o.model})` : ''}, ` +
          `${o.trials} trials${o.minutes ? `, ${o.minutes} min` : ''}, seed ${o.seed}; ` +
          `space of ${loaded.space.size} assignments (${loaded.space.source})`,
      );
    }
    o.onEvent = (e) => {
      if (json) return;
      if (e.type === 'baseline') {
        baseline = e.metrics;
        io.out(
          `fp32 baseline: decode ${e.metrics.decode_ms_per_token?.toFixed(3) ?? '—'} ` +
            `ms/token, ppl ${e.metrics.ppl?.toFixed(3) ?? '—'}`,
        );
        io.out(
          '  (each trial races fp32 in one worker; its "x" is the paired ratio, which both saw under the same load)',
        );
      } else if (e.type === 'trial-end') io.out(trialLine(e.trial, baseline));
      else if (e.type === 'refused') io.err(`     refused: ${e.reasons.join('; ')}`);
    };
    // Trials take seconds to minutes: say on stderr which stage each is in (once per stage).
    let lastStage = '';
    if (!json) {
      o.onProgress = (trial, stage) => {
        const key = `${trial}/${stage}`;
        if (key === lastStage) return;
        lastStage = key;
        io.err(`     ${trial ? `trial #${trial}` : 'baseline'}: ${stage}…`);
      };
    }
    const result = await tune(loaded, o).catch((err: unknown) => {
      throw asUsage(err);
    });

    let written: string | undefined;
    const best = result.best?.feasible ? result.best : undefined;
    if (best) {
      const dest = values.write ? file : bestPathFor(file);
      await writeFileAtomic(dest, applyConfig(loaded.text, best.config));
      written = dest;
    }
    if (json) {
      io.out(JSON.stringify({ ...result, written }, null, 2));
    } else {
      io.out('');
      io.out(`${result.outcome}: ${result.reason}; ${result.trials.length} trials in ${result.seconds.toFixed(1)} s`);
      if (best) {
        const b = result.baseline;
        const d = best.metrics.decode_ms_per_token;
        io.out(
          `best: trial #${best.index} ${configText(best.config)}` +
            `${best.measurements && best.measurements > 1 ? ` (median of ${best.measurements} measurements)` : ''}`,
        );
        // The ranking's own figure (agent/ranking.ts): the paired ratio against fp32 when the trial raced.
        const race = best.metrics.race;
        const vs = best.ratio ? `, ${best.paired ? 'paired' : 'unpaired'} ${(1 / best.ratio).toFixed(2)}x vs fp32` : '';
        io.out(`  decode ${d?.toFixed(3)} ms/token${vs}; perplexity ${pct(pplChange(best.metrics, b))} vs fp32`);
        if (race)
          io.out(
            `  race: ${race.verdict}${race.reference ? ` against ${race.reference}` : ''} after ${race.pairs} pairs in ` +
              `${(race.wall_ms / 1000).toFixed(1)} s${race.note ? ` (${race.note})` : ''}`,
          );
        io.out(`  written to ${written}`);
      } else io.out('no trial met the accuracy budget; nothing written');
      if (result.answer) io.out(`agent: ${displayText(result.answer.explanation).replace(/\n/g, '\n       ')}`);
      if (result.usage) {
        const u = result.usage;
        const calls = u.tool_calls !== undefined ? `, ${u.tool_calls} tool calls` : '';
        const sent = u.bytes_sent !== undefined ? `, ${humanBytes(u.bytes_sent)} sent` : '';
        const cost = u.cost_usd !== undefined ? `, ~$${u.cost_usd.toFixed(4)}` : '';
        io.out(
          `tokens: ${u.input_tokens} in, ${u.output_tokens} out, ${u.cache_read_input_tokens} cache reads, ` +
            `${u.cache_creation_input_tokens} cache writes; ${u.requests} requests${calls}${sent}${cost}`,
        );
      }
    }
    if (result.outcome === 'cancelled') return 130;
    if (result.outcome === 'error') {
      if (!json) io.err(`haqa tune: ${result.reason}`);
      return 1;
    }
    return best ? 0 : 1;
  },
};
