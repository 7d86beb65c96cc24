// Recipe checks of the runtime choice (runtime.engine, bench/runtimes.ts): knobs written for one
// runtime while another runs the model, and llama.cpp settings it cannot honour. Called by ./check.ts.
import { diag } from './diagnostics';
import { rangeOf } from './parse';
import type { RecipeAnalysis } from './check';

/** quantize keys that shape onnxruntime's MatMulNBits model only; llama.cpp's export reads gguf_type. */
const ORT_QUANT_KEYS = ['bits', 'block_size', 'symmetric', 'accuracy_level', 'activations', 'weight_type', 'method'];

export function checkRuntime(a: RecipeAnalysis): void {
  const d = a.doc as {
    quantize?: Record<string, unknown>;
    runtime?: Record<string, unknown>;
    objective?: { workload?: { batch?: number } };
  };
  const r = a.recipe!;
  const llama = r.runtime.engine === 'llama.cpp';
  if (!llama) {
    if (d.quantize?.gguf_type !== undefined) {
      a.diagnostics.push(
        diag(
          rangeOf(a.parsed, ['quantize', 'gguf_type'], 'key'),
          'warning',
          'runtime-knob-unused',
          'quantize.gguf_type applies to runtime.engine llama.cpp only; this recipe runs in onnxruntime',
        ),
      );
    }
    if (d.runtime?.llama !== undefined) {
      a.diagnostics.push(
        diag(
          rangeOf(a.parsed, ['runtime', 'llama'], 'key'),
          'warning',
          'runtime-knob-unused',
          "runtime.llama holds llama.cpp's knobs; this recipe runs in onnxruntime (set runtime.engine: llama.cpp)",
        ),
      );
    }
    return;
  }
  for (const k of ORT_QUANT_KEYS) {
    if (d.quantize?.[k] === undefined) continue;
    a.diagnostics.push(
      diag(
        rangeOf(a.parsed, ['quantize', k], 'key'),
        'warning',
        'runtime-knob-unused',
        `quantize.${k} shapes onnxruntime's model; with runtime.engine llama.cpp ` +
          `the weights' types come from quantize.gguf_type (and overrides' gguf_type)`,
      ),
    );
  }
  const kv = r.runtime.llama;
  if (kv?.type_v && kv.type_v !== 'f16' && kv.type_v !== 'f32' && !kv.flash_attention) {
    a.diagnostics.push(
      diag(
        rangeOf(a.parsed, ['runtime', 'llama', 'type_v']),
        'error',
        'kv-type-needs-flash-attention',
        `llama.cpp quantizes the V cache (type_v ${kv.type_v}) only ` +
          'with flash attention: set runtime.llama.flash_attention: true',
      ),
    );
  }
  if (r.objective.workload.batch > 1) {
    a.diagnostics.push(
      diag(
        rangeOf(a.parsed, ['objective', 'workload', 'batch']),
        'error',
        'runtime-batch-unsupported',
        `HAQA runs llama.cpp at batch 1 (one sequence); objective.workload.batch is ${r.objective.workload.batch}`,
      ),
    );
  }
}
