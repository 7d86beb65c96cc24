// A reference that fits (bench/reference.ts): the source when it fits in free memory, else the stated
// model, else a refusal naming both sizes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { chooseReference, neededBytes, weightProfile } from '../../server/src/bench/reference';
import { synthesizeDecoder } from '../../server/src/model/synth';
import { architectureFromConfig } from '../../server/src/config/hfConfig';
import { tempDir } from '../helpers/tinyModel';

test('the source when it fits, the stated fp16 model when only that fits, else a refusal naming both', async () => {
  const dir = tempDir('haqa-ref-');
  const arch = architectureFromConfig({
    model_type: 'llama',
    hidden_size: 64,
    intermediate_size: 128,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    vocab_size: 100,
    max_position_embeddings: 64,
  });
  const fp32 = (await synthesizeDecoder(arch, { out: path.join(dir, 'fp32', 'model.onnx') })).out;
  const fp16 = (
    await synthesizeDecoder(arch, { out: path.join(dir, 'fp16', 'model.onnx'), dtype: 'fp16', externalData: true })
  ).out;
  const p32 = await weightProfile(fp32);
  const p16 = await weightProfile(fp16);
  assert.equal(p32.dtype, 'FLOAT');
  assert.equal(p16.dtype, 'FLOAT16');
  assert.equal(p32.bytes, 2 * p16.bytes);

  const roomy = await chooseReference(fp32, { freeBytes: neededBytes(p32.bytes) });
  assert.equal(roomy.kind, 'source');
  assert.equal(roomy.model, fp32);

  const tight = neededBytes(p16.bytes); // the fp16 model fits, the fp32 one does not
  await assert.rejects(chooseReference(fp32, { freeBytes: tight }), /does not fit.*--reference/);
  const stated = await chooseReference(fp32, { freeBytes: tight, stated: fp16 });
  assert.equal(stated.kind, 'stated');
  assert.equal(stated.dtype, 'FLOAT16');
  assert.match(stated.reason, /does not fit.*the stated reference \(FLOAT16/);
  await assert.rejects(chooseReference(fp32, { freeBytes: tight - 1, stated: fp16 }), /nor does the stated reference/);
});
