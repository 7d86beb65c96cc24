// From a recipe file to what the tuner and the advisor need: the checked recipe, the model's layers, the
// machine's profile, the architecture from config.json, the search space. Shared by `haqa tune`,
// `haqa advise` and the editor, so they refuse the same broken recipes with the same diagnostics.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { analyzeRecipe, RecipeAnalysis } from '../config/check';
import { ModelCache } from '../config/modelCache';
import { architectureFromConfig, ModelArchitecture } from '../config/hfConfig';
import { configPathFor } from '../model/graph';
import { besideModel, readRegularTextSync, READ_CAPS } from '../util/paths';
import { hardwareFingerprint } from '../bench/hardware';
import { busyCores, HardwareProfile } from './profile';
import { buildSpace, SearchSpace, SpaceContext } from './space';

export interface LoadedSetting {
  text: string;
  analysis: RecipeAnalysis;
  setting: SpaceContext;
  space: SearchSpace;
  /** Entries of search.space that were dropped, with reasons. */
  spaceProblems: string[];
  architecture?: ModelArchitecture;
}

export class SettingError extends Error {
  constructor(
    message: string,
    readonly analysis?: RecipeAnalysis,
  ) {
    super(message);
  }
}

/** The profile of this machine, from the same fingerprint the run records carry. */
export function machineProfile(): HardwareProfile {
  const f = hardwareFingerprint();
  const cores = Math.max(1, f.cores);
  return {
    cpu: f.cpu,
    arch: f.arch,
    cores,
    isa: f.isa,
    memory_bytes: f.memory_bytes,
    providers: ['cpu'],
    busy_cores: busyCores(cores),
  };
}

export async function loadSetting(
  file: string,
  models = new ModelCache(),
  hardware = machineProfile(),
): Promise<LoadedSetting> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new SettingError(`${file}: no such file`);
  }
  const analysis = await analyzeRecipe(text, file, { models });
  const errors = analysis.diagnostics.filter((d) => d.severity === 1);
  if (errors.length > 0 || !analysis.recipe || !analysis.graph) {
    // No error but no graph: the model was not read, e.g. outside the workspace (the path policy's warning says why).
    const first = errors[0] ?? analysis.diagnostics.find((d) => d.code === 'model-outside-workspace');
    const where = first ? `${file}:${first.range.start.line + 1}:${first.range.start.character + 1}: ` : `${file}: `;
    throw new SettingError(
      `${where}${first?.message ?? 'the recipe could not be resolved'}` +
        `${errors.length > 1 ? ` (and ${errors.length - 1} more; run haqa check)` : ''}`,
      analysis,
    );
  }
  let architecture: ModelArchitecture | undefined;
  try {
    // Beside the model, a regular file under the cap (util/paths.ts): a FIFO here must not hang the tuner.
    const cfg = besideModel(analysis.recipe.model, path.basename(configPathFor(analysis.recipe.model)), 'config.json');
    architecture = architectureFromConfig(JSON.parse(readRegularTextSync(cfg, 'config.json', READ_CAPS.config)));
  } catch {
    architecture = undefined; // config.json is optional
  }
  const setting: SpaceContext = { recipe: analysis.recipe, layers: analysis.graph.layers, hardware };
  const { space, problems } = buildSpace(setting);
  return { text, analysis, setting, space, spaceProblems: problems, architecture };
}

/** `haqa.yaml` → `haqa.best.yaml`; `foo.haqa.yml` → `foo.haqa.best.yml`. */
export function bestPathFor(file: string): string {
  const m = /^(.*?)(\.ya?ml)?$/i.exec(file)!;
  return `${m[1]}.best${m[2] ?? '.yaml'}`;
}
