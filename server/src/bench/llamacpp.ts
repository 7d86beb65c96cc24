// The llama.cpp runtime (./runtime.ts), through node-llama-cpp's prebuilt llama.cpp (CPU build here;
// the package ships CUDA, Vulkan and Metal builds too). It is an optional dependency: where it is not
// installed, loading a llama.cpp recipe fails with a message saying so, and nothing else changes.
// Artifacts are GGUF files exported by compress/gguf.ts from the recipe's source model.
//
// Timing: one sample clears the sequence, evaluates the prompt (logits of its last token only) and
// then decode_tokens greedy steps of one token each, reusing llama.cpp's KV cache.
// Scoring: a window is evaluated with next-token probabilities at every position (node-llama-cpp gives
// the softmax over the whole vocabulary); their logs are the log-probs the scorers compare with fp32.
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import type { Recipe } from '../config/recipe';
import { exportGguf } from '../compress/gguf';
import { BenchError, MeasureJob } from './protocol';
import type { LoadedModel, Logits, Runtime, Timed } from './runtime';

type NodeLlamaCpp = typeof import('node-llama-cpp', { with: { 'resolution-mode': 'import' } });
type Token = import('node-llama-cpp', { with: { 'resolution-mode': 'import' } }).Token;
export const LLAMA_CPP_PACKAGE = 'node-llama-cpp';

let mod: Promise<NodeLlamaCpp> | undefined;
/** The package, imported once; a clear error where it is missing. */
export function nodeLlamaCpp(): Promise<NodeLlamaCpp> {
  // A real dynamic import (the bundle is CommonJS; node-llama-cpp is an ES module).
  const dynamicImport = new Function('s', 'return import(s)') as (s: string) => Promise<NodeLlamaCpp>;
  mod ??= dynamicImport(LLAMA_CPP_PACKAGE).catch((err: Error) => {
    mod = undefined;
    throw new BenchError(
      `runtime.engine llama.cpp needs the optional dependency ${LLAMA_CPP_PACKAGE} ` +
        `(npm install ${LLAMA_CPP_PACKAGE}@3.21.1): ${err.message}`,
      'load',
    );
  });
  return mod;
}

export function llamaCppVersion(): string {
  // The package exports no package.json and no CommonJS entry: find its folder on the resolution paths.
  for (const dir of createRequire(__filename).resolve.paths(LLAMA_CPP_PACKAGE) ?? []) {
    try {
      return (
        JSON.parse(fs.readFileSync(path.join(dir, LLAMA_CPP_PACKAGE, 'package.json'), 'utf8')) as { version: string }
      ).version;
    } catch {
      /* not in this folder */
    }
  }
  return 'not installed';
}

function now(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

type Job = Pick<MeasureJob, 'session' | 'config' | 'llama' | 'workload'>;

async function load(model: string, job: Pick<MeasureJob, 'session' | 'config' | 'llama'>): Promise<LoadedModel> {
  const m = await nodeLlamaCpp();
  const knobs = job.llama ?? {};
  const threads = knobs.threads ?? job.session.intra_op_threads;
  const llama = await m
    .getLlama({ gpu: false, build: 'never', logLevel: m.LlamaLogLevel.error, progressLogs: false, maxThreads: threads })
    .catch((err: Error) => {
      throw new BenchError(`llama.cpp cannot start: ${err.message}`, 'load', model);
    });
  const lm = await llama.loadModel({ modelPath: model }).catch((err: Error) => {
    throw new BenchError(`llama.cpp cannot load ${model}: ${err.message}`, 'load', model);
  });
  const meta = lm.fileInfo.metadata as unknown as { tokenizer?: { ggml?: { tokens?: readonly string[] } } };
  const vocab = meta.tokenizer?.ggml?.tokens?.length ?? 0;
  if (!vocab)
    throw new BenchError(
      `${model}: the GGUF file carries no tokenizer.ggml.tokens (its vocabulary size)`,
      'load',
      model,
    );
  const contexts: { dispose(): Promise<void> }[] = [];
  const context = async (size: number) => {
    const c = await lm
      .createContext({
        contextSize: size,
        batchSize: knobs.batch_size ?? Math.max(size, 512),
        threads,
        flashAttention: knobs.flash_attention ?? false,
        experimentalKvCacheKeyType: knobs.type_k?.toUpperCase() as never,
        experimentalKvCacheValueType: knobs.type_v?.toUpperCase() as never,
        sequences: 1,
      })
      .catch((err: Error) => {
        throw new BenchError(`llama.cpp cannot create a context for ${model}: ${err.message}`, 'load', model);
      });
    contexts.push(c);
    return c;
  };
  let scoring:
    | { ctx: Awaited<ReturnType<typeof context>>; seq: ReturnType<Awaited<ReturnType<typeof context>>['getSequence']> }
    | undefined;
  return {
    async step(ids: number[][]): Promise<{ logits: Logits }> {
      if (ids.length !== 1) throw new BenchError('llama.cpp scores one window at a time', 'accuracy', model);
      const win = ids[0];
      if (!scoring || scoring.ctx.contextSize < win.length) {
        const ctx = await context(Math.max(win.length, 128));
        scoring = { ctx, seq: ctx.getSequence() };
      }
      const seq = scoring.seq;
      await seq.clearHistory(); // each window from an empty cache
      {
        const out = await seq.controlledEvaluate(
          win.map((t) => [t as Token, { generateNext: { probabilities: true } }] as [Token, object]),
        );
        const data = new Float32Array(win.length * vocab);
        out.forEach((o, t) => {
          const row = data.subarray(t * vocab, (t + 1) * vocab);
          row.fill(Math.log(1e-38));
          for (const [tok, p] of o?.next.probabilities ?? []) row[tok] = Math.log(Math.max(p, 1e-38));
        });
        return { logits: { data, dims: [1, win.length, vocab] } };
      }
    },
    async timed(workload: Job['workload']): Promise<Timed> {
      const { prompt_length: P, decode_tokens: D, batch: B } = workload;
      if (B !== 1)
        throw new BenchError(`llama.cpp runs batch 1 here (objective.workload.batch is ${B})`, 'latency', model);
      const ctx = await context(P + D + 8);
      const seq = ctx.getSequence();
      let s = 1234;
      const prompt = Array.from({ length: P }, () => {
        s ^= s << 13;
        s >>>= 0;
        s ^= s >>> 17;
        s ^= s << 5;
        s >>>= 0;
        return s % vocab;
      });
      const greedy = { generateNext: { token: true, options: { temperature: 0 } } };
      return {
        async sample() {
          await seq.clearHistory();
          const t0 = now();
          const r = await seq.controlledEvaluate([
            ...(prompt.slice(0, -1) as Token[]),
            [prompt[P - 1] as Token, greedy],
          ]);
          const prefill = now() - t0;
          let next: number = r[P - 1]?.next.token ?? 0;
          let decode = 0;
          for (let i = 0; i < D; i++) {
            const t = now();
            const o = await seq.controlledEvaluate([[next as Token, greedy]]);
            decode += now() - t;
            next = o[0]?.next.token ?? 0;
          }
          return [prefill, decode / D];
        },
      };
    },
    async release() {
      for (const c of contexts) await c.dispose();
      await lm.dispose();
    },
  };
}

export const llamaCppRuntime: Runtime = {
  engine: 'llama.cpp',
  version: llamaCppVersion,
  artifactFile: 'model.gguf',
  runsSourceModel: false,
  async build(
    recipe: Recipe,
    out: string,
    signal: AbortSignal,
    progress: (message: string, fraction?: number) => void,
  ) {
    const res = await exportGguf(recipe, out, {
      signal,
      onProgress: (done, total, t) => progress(`exporting ${t}`, done / total),
    });
    return {
      gguf_bytes: res.bytes,
      compress_seconds: res.seconds,
      tensors: res.tensors.map((t) => ({ name: t.name, type: t.type })),
    };
  },
  load,
};
