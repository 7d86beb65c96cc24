// A short fixed-seed fuzz campaign (test/fuzz): hostile recipes, config.json files, ONNX models, LSP
// messages and agent tool calls. Every input must end in a clear error or be accepted: no crash, no
// hang past the per-input deadline, nothing half-written. `npm run bench` runs a longer campaign.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { runFuzz } from '../fuzz/fuzz';
import { rng, mutateText, mutateModel } from '../fuzz/mutators';
import { tinyMlpModel, tempDir } from '../helpers/tinyModel';
import { ClaudeAgent } from '../../server/src/agent/claude';
import { defaultSpace, validateConfig } from '../../server/src/agent/space';
import { syntheticSetting } from '../../server/src/agent/synthetic';

const root = path.join(__dirname, '..', '..');
const serverJs = path.join(root, 'dist', 'server.js');

test('the mutators are deterministic for a seed', () => {
  const a = rng(7),
    b = rng(7);
  const text = 'model: ./m.onnx\nquantize:\n  bits: 4\n';
  for (let i = 0; i < 20; i++) assert.equal(mutateText(a, text), mutateText(b, text));
  const ma = tinyMlpModel({ hidden: 8, intermediate: 8, layers: 1 }),
    mb = tinyMlpModel({ hidden: 8, intermediate: 8, layers: 1 });
  assert.deepEqual(mutateModel(rng(3), ma), mutateModel(rng(3), mb));
});

test('fixed-seed campaign: 0 crashes, 0 hangs, 0 data lost', async () => {
  if (!fs.existsSync(serverJs))
    execFileSync(process.execPath, [path.join(root, 'esbuild.mjs')], { cwd: root, stdio: 'inherit' });
  const rep = await runFuzz({
    seed: 20260,
    n: { recipe: 80, config: 60, onnx: 40, lsp: 60, tool: 100 },
    dir: tempDir('haqa-fuzz-'),
    serverJs,
    deadlineMs: 10_000,
  });
  assert.equal(rep.total.inputs, 340);
  const failures = rep.failures.map(
    (f) => `${f.target} #${f.index} ${f.kind}: ${f.input}\n  ${f.detail.split('\n').slice(0, 3).join('\n  ')}`,
  );
  assert.deepEqual(failures, []);
  assert.equal(rep.total.crash + rep.total.hang + rep.total.dataLost, 0);
  // The campaign reaches both outcomes for each target: it is not all refusals or all passes.
  for (const [t, c] of Object.entries(rep.perTarget))
    assert.ok(c.clear > 0 && c.accepted > 0, `${t}: ${JSON.stringify(c)}`);
  assert.equal(rep.incrementalMismatches, 0);
});

test('what the fuzzer found, pinned: agent replies whose content is no list or tool name no string', async () => {
  const setting = syntheticSetting();
  const space = defaultSpace(setting);
  const ctx = {
    space,
    setting,
    trials: [],
    budget: { trialsLeft: 3 },
    validate: (c: unknown) => validateConfig(c, space, setting),
    duplicateOf: () => undefined,
  };
  const fresh = () => new ClaudeAgent({ apiKey: 'sk-ant-x', baseURL: 'http://127.0.0.1:9' }, { trials: 3 });
  let agent = fresh();
  const handle = (m: unknown) => (agent as unknown as { handle(m: unknown, c: unknown): unknown }).handle(m, ctx);
  // No tool use in the reply: the agent is nudged (undefined), as for a reply with text only.
  for (const content of [5, 'x', null, true, [null, 3, 'y']]) {
    agent = fresh();
    assert.equal(handle({ content, stop_reason: 'tool_use' }), undefined);
  }
  agent = fresh();
  handle({
    content: [
      { type: 'tool_use', id: 't1', name: 42, input: {} },
      { type: 'tool_use', id: 't2', name: null, input: {} },
    ],
    stop_reason: 'tool_use',
  });
  const results = (agent as unknown as { results: { tool_use_id: string; is_error?: boolean; content: string }[] })
    .results;
  assert.deepEqual(
    results.map((r) => [r.tool_use_id, r.is_error]),
    [
      ['t1', true],
      ['t2', true],
    ],
  );
  assert.match(results[0].content, /tool name must be a string, got 42/);
});
