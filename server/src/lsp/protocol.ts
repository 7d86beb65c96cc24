// The custom requests between the extension and the language server: one module that both the client
// (client/src) and the server (lsp/runs.ts, lsp/recipeFeature.ts) import. Each request is a typed
// `RequestType<Params, Result>`, so a sender and its handler cannot disagree on what travels. Data and
// vscode-languageserver-protocol's message types only: both bundles include this file, and the server never
// sees `vscode`.
//
// Long requests carry an LSP `workDoneToken` the client made; the server reports `$/progress` on it and
// honours `$/cancelRequest`. The Anthropic key travels per request (from the client's SecretStorage) and
// is never stored or logged by the server.

import { type CancellationToken, NotificationType, RequestType, type TextEdit } from 'vscode-languageserver-protocol';
import type { SearchValue } from '../config/recipe';
import type { ProposerName } from '../agent/proposers';

export const Methods = {
  benchmark: 'haqa/benchmark',
  tune: 'haqa/tune',
  advise: 'haqa/advise',
  runs: 'haqa/runs',
  bestTrialEdit: 'haqa/bestTrialEdit',
  suggestionEdit: 'haqa/suggestionEdit',
  pruneRuns: 'haqa/pruneRuns',
  /** Notification client → server: whether the workspace is trusted (runs are refused when not). */
  trust: 'haqa/trust',
  /** The edits that set tuner knobs in an open recipe (recipeFeature.ts). */
  knobEdits: 'haqa/knobEdits',
} as const;

export interface AgentParams {
  /** Anthropic API key, when the user set one; absent → the offline optimizer / rule-based advisor. */
  apiKey?: string;
  model?: string;
  baseUrl?: string;
}

export interface RecipeParams {
  /** The recipe's document URI. */
  uri: string;
  workDoneToken?: string | number;
}

export interface BenchmarkParams extends RecipeParams {
  timeoutSeconds?: number;
}

export interface TuneParams extends RecipeParams, AgentParams {
  /**
   * The budget: fills in a recipe without `search.trials`, or
   * (trialsChosen) one the user picked for this run, over the recipe's.
   */
  trials?: number;
  trialsChosen?: boolean;
  /** The user's pick for this run, over the recipe's `search.agent` (Claude still needs a key). */
  agent?: ProposerName;
  timeoutSeconds?: number;
}

export type AdviseParams = RecipeParams & AgentParams;

/** One run as the results view and the client see it (a digest of a RunRecord). */
export interface RunSummary {
  id: string;
  recipe_file: string;
  recipe_hash: string;
  status: string;
  error?: string;
  started: string;
  trial?: {
    number?: number;
    session?: string;
    rationale?: string;
    agent?: string;
    assignment?: Record<string, unknown>;
  };
  decode_ms?: number;
  prefill_ms?: number;
  inference_ms?: number;
  throughput_tok_s?: number;
  ppl?: number;
  ppl_fp32?: number;
  /** Relative perplexity increase against fp32, percent. */
  ppl_delta_pct?: number;
  kl?: number;
  top1?: number;
  model_bytes?: number;
  peak_rss_bytes?: number;
  /** The runtime the figures came from, e.g. "llama.cpp 3.21.1" (bench/record.ts runtimeLabel). */
  runtime?: string;
  /** fp32 time / this run's: the paired race's median ratio when the run raced (bench/race.ts). */
  speedup_decode?: number;
  speedup_size?: number;
  /** A tuner's run: whether its race was paired, its verdict and its wall time (part of the trial's cost). */
  paired?: boolean;
  race_verdict?: string;
  race_seconds?: number;
  /** What the race timed it against when not fp32: the incumbent of a duel ("trial #3"; bench/race.ts). */
  race_reference?: string;
  /** Per-layer plan of the compressed model: what each layer got. */
  layers?: LayerPlanSummary[];
  /** 1-based line of this record in runs.jsonl. */
  line?: number;
}

export interface LayerPlanSummary {
  name: string;
  bits?: number;
  block_size?: number;
  /** What the rules sections did to it, as the method table labels it (`2:4`, `rank 8`). */
  methods?: string[];
  skip?: boolean;
}

export interface RunsResult {
  runs: RunSummary[];
  /** Absolute path of runs.jsonl. */
  storeFile: string;
  /** Accuracy budget of the recipe (max ppl increase, percent), for the chart's guide line. */
  budgetPct?: number;
  /** The recipe's recipe_hash for its current text, so the view can mark the current config. */
  currentHash?: string;
  /** The record id of the newest tuning session's best plan, by the loop's ranking (what the tune announced). */
  bestId?: string;
  /** Its headline, as the lens and the tune's toast show it. */
  bestHeadline?: string;
}

export interface BenchmarkResult {
  run: RunSummary;
  /** One line a human reads: "decode 7.9 ms/token · 2.7× vs fp32 · ppl +0.6%". */
  headline: string;
}

export interface TuneResult {
  outcome: string;
  trials: number;
  best?: RunSummary & { assignment?: Record<string, unknown> };
  headline: string;
}

export interface SuggestionDto {
  title: string;
  rationale: string;
  knobs: Record<string, unknown>;
}

export interface AdviseResult {
  suggestions: SuggestionDto[];
  source: string;
}

export interface PruneParams {
  uri: string;
  /** Keep the artifacts (built models) of this many newest runs (default 20); records stay. */
  keep?: number;
}

export interface PruneResult {
  removed: number;
  kept: number;
}

export interface EditResult {
  /** An LSP WorkspaceEdit (one undoable edit), or nothing with the reason. */
  edit?: unknown;
  message: string;
}

export interface TrustParams {
  trusted: boolean;
}

/** Why a run was refused in a restricted (untrusted) workspace; the client shows it as is. */
export const UNTRUSTED_MESSAGE =
  'HAQA runs (benchmark, tune, advise) execute the model and may call an LLM: they are ' +
  'disabled in Restricted Mode. Trust this workspace to run them; diagnostics keep working.';

export interface SuggestionEditParams extends RecipeParams {
  knobs: Record<string, unknown>;
  title?: string;
}

export interface RunsParams {
  /** The recipe whose runs to list (absent: none). */
  uri?: string;
}

export interface KnobEditsParams {
  uri: string;
  assignment: Record<string, SearchValue>;
}

export interface KnobEditsResult {
  /** Edits of the open document, in its coordinates. */
  edits: TextEdit[];
}

/** The typed requests: what the client sends and the server answers, by the method names above. */
export const Requests = {
  benchmark: new RequestType<BenchmarkParams, BenchmarkResult, void>(Methods.benchmark),
  tune: new RequestType<TuneParams, TuneResult, void>(Methods.tune),
  advise: new RequestType<AdviseParams, AdviseResult, void>(Methods.advise),
  runs: new RequestType<RunsParams, RunsResult, void>(Methods.runs),
  bestTrialEdit: new RequestType<RecipeParams, EditResult, void>(Methods.bestTrialEdit),
  suggestionEdit: new RequestType<SuggestionEditParams, EditResult, void>(Methods.suggestionEdit),
  pruneRuns: new RequestType<PruneParams, PruneResult, void>(Methods.pruneRuns),
  knobEdits: new RequestType<KnobEditsParams, KnobEditsResult, void>(Methods.knobEdits),
} as const;

export const Notifications = {
  trust: new NotificationType<TrustParams>(Methods.trust),
} as const;

/**
 * Register the server's handler of a typed request. By method name: vscode-languageserver pins its own
 * copy of vscode-languageserver-protocol, whose RequestType class TypeScript does not take for this one;
 * the params and the result stay typed by `type`.
 */
export function onTypedRequest<P, R>(
  connection: { onRequest(method: string, handler: (params: P, token: CancellationToken) => unknown): unknown },
  type: RequestType<P, R, void>,
  handler: (params: P, token: CancellationToken) => R | Promise<R>,
): void {
  connection.onRequest(type.method, handler);
}
