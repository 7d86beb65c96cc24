// The proposer registry: every search strategy the tuner can run, by the name `--agent` and
// `search.agent` use. A new strategy implements Proposer (proposer.ts) and adds one entry here; the CLI's
// flag check, usage text and help, and the tune session's construction read this table.
import type { ModelArchitecture } from '../config/hfConfig';
import type { Proposer } from './proposer';
import { TpeSearch } from './offline';
import { RandomSearch } from './random';
import { Sweep } from './sweep';
import { ClaudeAgent } from './claude';

/** What a proposer may be built from: the tune options and what the setting knows about the model. */
export interface ProposerOptions {
  seed: number;
  trials: number;
  minutes?: number;
  apiKey?: string;
  model?: string;
  baseURL?: string;
  architecture?: ModelArchitecture;
}

export interface ProposerEntry {
  /** One line for help text. */
  summary: string;
  /** Needs an Anthropic API key (without one, `search.agent` falls back to `offline`). */
  needsApiKey?: boolean;
  create(o: ProposerOptions): Proposer;
}

export class ProposerError extends Error {}

export const PROPOSERS = {
  claude: {
    summary: 'the Claude agent with tool use (needs an API key)',
    needsApiKey: true,
    create: (o) =>
      new ClaudeAgent(
        { apiKey: o.apiKey!, model: o.model, baseURL: o.baseURL, architecture: o.architecture },
        { trials: o.trials, minutes: o.minutes },
      ),
  },
  offline: { summary: 'the built-in model-based optimizer (TPE)', create: (o) => new TpeSearch({ seed: o.seed }) },
  random: { summary: 'random search over the space', create: (o) => new RandomSearch(o.seed) },
  sweep: { summary: 'every assignment of the space, in order', create: () => new Sweep() },
} satisfies Record<string, ProposerEntry>;

export type ProposerName = keyof typeof PROPOSERS;

/** Registered names, in table order. */
export const PROPOSER_NAMES = Object.keys(PROPOSERS) as ProposerName[];

export function isProposerName(s: string): s is ProposerName {
  return Object.prototype.hasOwnProperty.call(PROPOSERS, s);
}

/** `claude, offline, random or sweep`. */
export function proposerList(names: readonly string[] = PROPOSER_NAMES): string {
  return names.length <= 1 ? names.join('') : `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}`;
}

/** Why `name` cannot run with these options (a missing API key), or undefined. */
export function proposerProblem(name: ProposerName, o: Pick<ProposerOptions, 'apiKey'>): string | undefined {
  const entry: ProposerEntry = PROPOSERS[name];
  return entry.needsApiKey && !o.apiKey
    ? `the ${name} agent needs an API key: set ANTHROPIC_API_KEY (or use --agent offline)`
    : undefined;
}

/**
 * Which proposer a session runs: the one asked for this run (`--agent`, the editor's pick), else the
 * recipe's `search.agent`. A recipe's choice that needs a key nobody set falls back to `offline` with a
 * note (the recipe is shared; the key is the user's); an explicit ask keeps its name, and
 * createProposer refuses it with the reason.
 */
export function chooseProposer(
  asked: ProposerName | undefined,
  recipe: ProposerName,
  o: Pick<ProposerOptions, 'apiKey'>,
): { name: ProposerName; note?: string } {
  if (asked !== undefined) return { name: asked };
  const entry: ProposerEntry = PROPOSERS[recipe];
  if (entry.needsApiKey && !o.apiKey)
    return { name: 'offline', note: `search.agent is ${recipe} but no API key is set; using the offline optimizer` };
  return { name: recipe };
}

/** The proposer registered under `name`. */
export function createProposer(name: ProposerName, o: ProposerOptions): Proposer {
  const entry: ProposerEntry | undefined = PROPOSERS[name];
  if (!entry) throw new ProposerError(`unknown agent '${name}'; agents are ${proposerList()}`);
  const problem = proposerProblem(name, o);
  if (problem) throw new ProposerError(problem);
  return entry.create(o);
}
