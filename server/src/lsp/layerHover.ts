// Per-layer measurements in the editor (thin: the views are agent/layerViews.ts): the hover on a layer
// glob gains each matched layer's decode time share and sensitivity, and the plan under the budget
// arrives as a diagnostic with a quick fix — both only when `haqa advise --measure` has cached
// measurements for the recipe's model (.haqa/layers/), never from fixed figures.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Position } from 'vscode-languageserver-types';
import type { RecipeAnalysis } from '../config/check';
import { globAt } from '../config/hover';
import { pathAt } from '../config/parse';
import { parseKnob } from '../config/plan';
import { layerCachePath, readLayerMeasurements, StoredLayerMeasurements } from '../agent/layerAdvice';
import { layerHoverMarkdown, layerPlanDiagnostic } from '../agent/layerViews';
import { RunStore } from '../bench/store';
import { docKind } from './service';
import type { ServerFeature } from './features';

const cache = new Map<string, { mtimeMs: number; m: StoredLayerMeasurements | undefined }>();

/** The measurements cached for this recipe's model (the run store is the recipe's folder, as runs use). */
export function measurementsFor(a: RecipeAnalysis): StoredLayerMeasurements | undefined {
  if (!a.recipe) return undefined;
  const storeDir = path.dirname(a.file);
  let file: string;
  try {
    file = layerCachePath(new RunStore(storeDir), a.recipe.model);
  } catch {
    return undefined;
  }
  let mtimeMs: number;
  try {
    mtimeMs = fs.statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
  const hit = cache.get(file);
  if (hit && hit.mtimeMs === mtimeMs) return hit.m;
  const m = readLayerMeasurements(storeDir, a.recipe.model);
  if (cache.size > 64) cache.clear();
  cache.set(file, { mtimeMs, m });
  return m;
}

/** Extra hover markdown for a glob under the cursor, when measurements exist. */
export function layerHover(a: RecipeAnalysis, pos: Position): string | undefined {
  const m = measurementsFor(a);
  if (!m || !a.index || !a.graph) return undefined;
  const at = pathAt(a.parsed.doc, a.parsed.lines.offset(pos));
  if (!at) return undefined;
  const where = globAt(at.path, at.onKey);
  if (!where) return undefined;
  const raw = where === 'knob' ? String(at.path[2]) : String((at.node as { value?: unknown }).value ?? '');
  const glob = where === 'knob' ? (parseKnob(raw).scope ?? '') : raw;
  const names = a.index.match(glob).map((i) => a.graph!.layers[i].name);
  return names.length ? layerHoverMarkdown(m, names) : undefined;
}

export const layerAdviceFeature: ServerFeature = {
  name: 'layer-advice',
  register(ctx) {
    ctx.diagnostics.register({
      id: 'haqa.layers',
      appliesTo: (doc) => docKind(doc.uri) === 'recipe',
      async compute(doc) {
        const a = await ctx.service.recipe(doc);
        const m = measurementsFor(a);
        const d = m ? layerPlanDiagnostic(a, m) : undefined;
        return d ? [d] : [];
      },
    });
  },
};
