// The one place the benchmark calls the compression engine (server/src/compress/pipeline.ts).
import type { Recipe } from '../config/recipe';

type CompressModel = (
  recipe: Recipe,
  opts: { out: string; signal?: AbortSignal; onProgress?: (p: unknown) => void },
) => Promise<{ out: string; layers?: unknown; bytes?: number; seconds?: number }>;

function loadPipeline(): CompressModel {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require('../compress/pipeline') as { compressModel: CompressModel }).compressModel;
  } catch (err) {
    throw new Error(`the compression engine is not available (${(err as Error).message})`);
  }
}

/** Write the recipe's compressed model to `out` (its external data beside it). */
export async function compressInto(recipe: Recipe, out: string, signal: AbortSignal, progress: (message: string, fraction?: number) => void): Promise<void> {
  const compressModel = loadPipeline();
  await compressModel(recipe, {
    out, signal,
    onProgress: (p) => {
      const o = (p ?? {}) as { message?: string; fraction?: number; layer?: string; done?: number; total?: number };
      const fraction = o.fraction ?? (o.done !== undefined && o.total ? o.done / o.total : undefined);
      progress(o.message ?? (o.layer ? `compressing ${o.layer}` : 'compressing'), fraction);
    },
  });
}
