// Where the decode time goes: onnxruntime's profile events are attributed to layer names (the graph's
// node → layer mapping first, then the longest layer prefix, then the module scope), only counted runs
// count, and the groups sum to the total. A real profile of the bundled model has every layer in it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  attributeNode,
  compareProfiles,
  nodeIndexOf,
  ProfileEvent,
  runProfileJob,
  summarizeProfile,
  UNSCOPED,
} from '../../server/src/bench/profile';
import { inspectModel } from '../../server/src/model/graph';

const ix = nodeIndexOf([
  { name: 'model.layers.0.mlp.down_proj', node: '/model/layers.0/mlp/down_proj/MatMul' },
  { name: 'lm_head', node: 'custom_lm_head_node' },
]);

test('attribution: mapped node, layer prefix (MatMulNBits, fusions), module scope, unscoped', () => {
  assert.deepEqual(attributeNode('/model/layers.0/mlp/down_proj/MatMul', ix), {
    name: 'model.layers.0.mlp.down_proj',
    layer: true,
  });
  assert.deepEqual(attributeNode('custom_lm_head_node', ix), { name: 'lm_head', layer: true });
  assert.deepEqual(attributeNode('/model/layers.0/mlp/down_proj/MatMul_Q4', ix), {
    name: 'model.layers.0.mlp.down_proj',
    layer: true,
  });
  assert.deepEqual(attributeNode('/model/layers.0/self_attn/MatMul/MatmulTransposeFusion//MatMulScaleFusion/', ix), {
    name: 'model.layers.0.self_attn',
    layer: false,
  });
  assert.deepEqual(attributeNode('/model/layers.0/input_layernorm/Mul_1/SimplifiedLayerNormFusion/', ix), {
    name: 'model.layers.0.input_layernorm',
    layer: false,
  });
  assert.deepEqual(attributeNode('Gather_token_3', ix), { name: UNSCOPED, layer: false });
});

test('only counted runs count, and the groups sum to the node time', () => {
  const run = (ts: number, dur: number): ProfileEvent => ({ cat: 'Session', name: 'model_run', ts, dur });
  const node = (name: string, ts: number, dur: number, op = 'MatMul'): ProfileEvent => ({
    cat: 'Node',
    name: `${name}_kernel_time`,
    ts,
    dur,
    args: { op_name: op },
  });
  const events: ProfileEvent[] = [
    { cat: 'Session', name: 'session_initialization', ts: 0, dur: 50 },
    run(100, 100),
    node('/model/layers.0/mlp/down_proj/MatMul', 110, 80), // prefill: skipped
    run(300, 100),
    node('/model/layers.0/mlp/down_proj/MatMul', 310, 40),
    node('/model/layers.0/self_attn/Mul_1', 360, 10, 'Mul'),
    node('Gather_token_1', 380, 6, 'Gather'),
    run(500, 100),
    node('/model/layers.0/mlp/down_proj/MatMul', 510, 20),
    node('/model/layers.0/self_attn/Mul_1', 560, 30, 'Mul'),
    node('custom_lm_head_node', 700, 999), // outside any run
    run(800, 100),
    node('/model/layers.0/mlp/down_proj/MatMul', 810, 900), // a preempted step
  ];
  const p = summarizeProfile(events, ix, 1);
  assert.equal(p.steps, 3);
  assert.equal(p.node_us, (40 + 10 + 6 + 20 + 30 + 900) / 3);
  assert.equal(p.run_us, 100);
  assert.equal(p.run_median_us, 100);
  const sum = p.groups.reduce((s, g) => s + g.us, 0);
  assert.equal(sum, p.node_us);
  assert.ok(Math.abs(p.groups.reduce((s, g) => s + g.share, 0) - 1) < 1e-12);
  const down = p.groups.find((g) => g.name === 'model.layers.0.mlp.down_proj')!;
  assert.equal(down.us, 320);
  assert.equal(down.median_us, 40, 'the median ignores the preempted step');
  assert.deepEqual(down.ops, { MatMul: 320 });
  const attn = p.groups.find((g) => g.name === 'model.layers.0.self_attn')!;
  assert.equal(attn.us, 40 / 3);
  assert.equal(attn.median_us, 10, 'a step without the group counts as 0');
  assert.equal(
    p.groups.find((g) => g.name === 'lm_head'),
    undefined,
  );
  const rows = compareProfiles([p, { ...p, label: 'b', groups: p.groups.filter((g) => g.layer) }]);
  assert.equal(rows.find((r) => r.name === 'model.layers.0.self_attn')!.us[1], undefined);
});

test('a real profile of the bundled model: every layer is a group and the groups sum to the node time', async () => {
  const model = path.join(__dirname, '..', '..', 'examples', 'tiny-llama', 'model.onnx');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'haqa-profile-'));
  try {
    const session = {
      provider: 'cpu',
      intra_op_threads: 1,
      inter_op_threads: 1,
      graph_optimization: 'all',
      execution_mode: 'sequential',
    } as const;
    const [p] = await runProfileJob(
      {
        kind: 'profile',
        models: [{ label: 'fp32', model }],
        session: session as never,
        workload: { prompt_length: 8, decode_tokens: 3, batch: 1 },
        dir,
        warmup: 1,
      },
      () => undefined,
    );
    assert.equal(p.steps, 3);
    const layers = (await inspectModel(model)).layers.map((l) => l.name);
    for (const l of layers)
      assert.ok(
        p.groups.some((g) => g.name === l && g.layer && g.us > 0),
        `${l} in the profile`,
      );
    const sum = p.groups.reduce((s, g) => s + g.us, 0);
    assert.ok(Math.abs(sum - p.node_us) < 1e-6 * p.node_us);
    assert.ok(p.run_us >= p.node_us * 0.5, 'node time is within the run time');
    assert.deepEqual(fs.readdirSync(dir), [], 'the profile file is removed');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
