// Tuner and advisor results as edits to the recipe text, through the comment-keeping edit module: what
// "apply suggestion" and "apply best trial" do in the editor and what `haqa tune` writes.
import { parse } from 'yaml';
import { applyRecipeEdits, knobEdits, RecipeEdit } from '../config/edit';
import type { Config } from './types';

/** The edits that make the recipe text say what `config` says. */
export function configEdits(text: string, config: Config): RecipeEdit[] {
  return knobEdits(config, parse(text));
}

/** The recipe text with `config` applied (comments and formatting kept). */
export function applyConfig(text: string, config: Config): string {
  return applyRecipeEdits(text, configEdits(text, config));
}
