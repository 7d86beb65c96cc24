// The one place the benchmark builds artifacts: the recipe's runtime (./runtimes.ts) builds its own,
// onnxruntime's by the compression engine (server/src/compress/pipeline.ts, compressOnnx below).
import type { Recipe } from '../config/recipe';
import { compressModel } from '../compress/pipeline';
import { LayerCache } from '../compress/layerCache';
import { engineOf, runtimeFor } from './runtimes';

/** Write the recipe's model for its runtime to `out` (model.onnx or model.gguf: the runtime's artifactFile). */
export async function compressInto(
  recipe: Recipe,
  out: string,
  signal: AbortSignal,
  progress: (message: string, fraction?: number) => void,
  roots?: string[],
): Promise<Record<string, unknown>> {
  return runtimeFor(engineOf(recipe)).build(recipe, out, signal, progress, roots);
}

/**
 * Write the recipe's compressed model to `out` (its external data beside it). Returns what is worth
 * keeping in the artifact's meta.json: the engine's per-layer weight errors.
 */
export async function compressOnnx(
  recipe: Recipe,
  out: string,
  signal: AbortSignal,
  progress: (message: string, fraction?: number) => void,
  roots?: string[],
): Promise<Record<string, unknown>> {
  // Trials of one workspace share compressed layers (compress/layerCache.ts): only changed groups are recompressed.
  const layerCache = LayerCache.forOutput(out);
  const res = await compressModel(recipe, {
    out,
    signal,
    roots,
    layerCache,
    onProgress: (done, total, layer) => progress(`compressing ${layer}`, total ? done / total : undefined),
  });
  return {
    rel_error: res.relError,
    bytes_before: res.bytesBefore,
    compress_seconds: res.seconds,
    layer_reuse: layerCache ? { ...layerCache.stats } : undefined,
    layers: res.layers.map((l) => ({ name: l.name, actions: l.actions, rel_error: l.relError })),
  };
}
