// A causal-LM decoder with a KV cache, run by onnxruntime-node, for models that follow
// docs/decoder-interface.md (the Hugging Face Optimum "text-generation-with-past" export).
//
// The interface is discovered from the session: the layers from the `past_key_values.{i}.key` inputs,
// the kv heads and head dim from the static dims of those inputs, or else from the given config.
import * as ort from 'onnxruntime-node';

/** The cache after a step: per layer, keys and values of shape [batch, kv_heads, length, head_dim]. */
export interface KvCache {
  readonly batch: number;
  /** Tokens held per row (past + new of the step that made it). */
  readonly length: number;
  readonly keys: ort.Tensor[];
  readonly values: ort.Tensor[];
}

export interface DecoderConfig {
  num_key_value_heads: number;
  head_dim?: number;
  hidden_size?: number;
  num_attention_heads?: number;
}

export interface DecoderOptions {
  sessionOptions?: ort.InferenceSession.SessionOptions;
  /** HF config.json values; without them kv heads and head dim come from the model's input shapes. */
  config?: DecoderConfig;
}

export interface StepResult {
  /** [batch, seq, vocab], row-major. */
  logits: { data: Float32Array; dims: number[] };
  cache: KvCache;
}

export class DecoderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecoderError';
  }
}

/** position_ids is optional (some exports derive positions from the mask). */
const REQUIRED_INPUTS = ['input_ids', 'attention_mask'];

export class DecoderSession {
  private constructor(
    readonly session: ort.InferenceSession,
    readonly numLayers: number,
    readonly numKvHeads: number,
    readonly headDim: number,
    readonly hasPositionIds: boolean,
  ) {}

  static async create(modelPathOrBytes: string | Uint8Array, opts: DecoderOptions = {}): Promise<DecoderSession> {
    const so = opts.sessionOptions ?? {};
    const session =
      typeof modelPathOrBytes === 'string'
        ? await ort.InferenceSession.create(modelPathOrBytes, so)
        : await ort.InferenceSession.create(modelPathOrBytes, so);
    try {
      return DecoderSession.fromSession(session, opts.config);
    } catch (e) {
      await session.release();
      throw e;
    }
  }

  private static fromSession(session: ort.InferenceSession, config?: DecoderConfig): DecoderSession {
    const inputs = new Set(session.inputNames);
    const outputs = new Set(session.outputNames);
    for (const name of REQUIRED_INPUTS) {
      if (!inputs.has(name))
        throw new DecoderError(`model has no input "${name}" (inputs: ${session.inputNames.join(', ')})`);
    }
    if (!outputs.has('logits'))
      throw new DecoderError(`model has no output "logits" (outputs: ${session.outputNames.join(', ')})`);
    let numLayers = 0;
    while (inputs.has(`past_key_values.${numLayers}.key`)) numLayers++;
    if (numLayers === 0)
      throw new DecoderError('model has no "past_key_values.0.key" input: it was not exported with a KV cache');
    for (let i = 0; i < numLayers; i++) {
      if (!inputs.has(`past_key_values.${i}.value`))
        throw new DecoderError(`model has no input "past_key_values.${i}.value"`);
      for (const n of [`present.${i}.key`, `present.${i}.value`])
        if (!outputs.has(n)) throw new DecoderError(`model has no output "${n}"`);
    }

    let numKvHeads: number | undefined;
    let headDim: number | undefined;
    if (config) {
      numKvHeads = config.num_key_value_heads;
      headDim =
        config.head_dim ??
        (config.hidden_size && config.num_attention_heads
          ? config.hidden_size / config.num_attention_heads
          : undefined);
    }
    // The graph's static dims win over config.json: they are what onnxruntime checks the feeds against.
    const meta = session.inputMetadata.find((m) => m.name === 'past_key_values.0.key');
    if (meta && meta.isTensor && meta.shape.length === 4) {
      const [, kv, , hd] = meta.shape;
      if (typeof kv === 'number' && kv > 0) numKvHeads = kv;
      if (typeof hd === 'number' && hd > 0) headDim = hd;
    }
    if (!numKvHeads || !headDim || !Number.isInteger(headDim)) {
      throw new DecoderError(
        'cannot tell the kv heads and head dim from the model: pass config ' +
          '(num_key_value_heads, head_dim or hidden_size/num_attention_heads)',
      );
    }
    return new DecoderSession(session, numLayers, numKvHeads, headDim, inputs.has('position_ids'));
  }

  /** An empty cache (length 0) for `batch` rows. */
  emptyCache(batch: number): KvCache {
    const empty = () => new ort.Tensor('float32', new Float32Array(0), [batch, this.numKvHeads, 0, this.headDim]);
    return {
      batch,
      length: 0,
      keys: Array.from({ length: this.numLayers }, empty),
      values: Array.from({ length: this.numLayers }, empty),
    };
  }

  /**
   * Runs the new tokens `ids` (rows of equal length, no padding) after the cache `past` (empty when
   * absent) and returns their logits and the grown cache.
   */
  async step(ids: number[][], past?: KvCache): Promise<StepResult> {
    const batch = ids.length;
    const seq = batch > 0 ? ids[0].length : 0;
    if (batch === 0 || seq === 0) throw new DecoderError('step needs at least one row of at least one token');
    if (ids.some((r) => r.length !== seq)) throw new DecoderError('step: all rows must have the same number of tokens');
    const cache = past ?? this.emptyCache(batch);
    if (cache.batch !== batch) throw new DecoderError(`step: ${batch} rows but the cache holds ${cache.batch}`);
    const total = cache.length + seq;

    const inputIds = new BigInt64Array(batch * seq);
    const positions = new BigInt64Array(batch * seq);
    for (let b = 0; b < batch; b++) {
      for (let t = 0; t < seq; t++) {
        inputIds[b * seq + t] = BigInt(ids[b][t]);
        positions[b * seq + t] = BigInt(cache.length + t);
      }
    }
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', inputIds, [batch, seq]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(batch * total).fill(1n), [batch, total]),
    };
    if (this.hasPositionIds) feeds.position_ids = new ort.Tensor('int64', positions, [batch, seq]);
    for (let i = 0; i < this.numLayers; i++) {
      feeds[`past_key_values.${i}.key`] = cache.keys[i];
      feeds[`past_key_values.${i}.value`] = cache.values[i];
    }

    const out = await this.session.run(feeds);
    const logits = out.logits as ort.Tensor;
    const keys: ort.Tensor[] = [];
    const values: ort.Tensor[] = [];
    for (let i = 0; i < this.numLayers; i++) {
      keys.push(out[`present.${i}.key`] as ort.Tensor);
      values.push(out[`present.${i}.value`] as ort.Tensor);
    }
    return {
      logits: { data: logits.data as Float32Array, dims: logits.dims.slice() },
      cache: { batch, length: total, keys, values },
    };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
