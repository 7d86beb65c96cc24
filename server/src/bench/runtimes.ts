// The table of runtimes (./runtime.ts is the interface). A recipe's runtime.engine picks one; absent
// means onnxruntime. llama.cpp is imported only when a recipe asks for it (an optional dependency).
import type { Engine, Recipe } from '../config/recipe';
import type { Runtime } from './runtime';
import { onnxRuntime } from './onnxruntime';
import { llamaCppRuntime } from './llamacpp';

export const RUNTIMES: Record<Engine, Runtime> = {
  onnxruntime: onnxRuntime,
  'llama.cpp': llamaCppRuntime,
};

export const ENGINES = Object.keys(RUNTIMES) as Engine[];

export function engineOf(recipe: Pick<Recipe, 'runtime'>): Engine {
  return recipe.runtime.engine ?? 'onnxruntime';
}

export function runtimeFor(engine: Engine | undefined): Runtime {
  return RUNTIMES[engine ?? 'onnxruntime'];
}
