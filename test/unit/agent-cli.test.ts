// `haqa tune` and `haqa advise` end to end on a small synthesized decoder: real compression and
// measurement in worker processes, the best recipe written beside the original with its comments, the
// Claude agent through a fake API, and the API key nowhere in output, results or the run store.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { main } from '../../server/src/cli';
import { synthesizeDecoder } from '../../server/src/model/synth';
import { architectureFromConfig } from '../../server/src/config/hfConfig';
import { tempDir } from '../helpers/tinyModel';
import { FakeAnthropic, reply, toolUse } from '../helpers/fakeAnthropic';

const KEY = 'sk-ant-cli-SECRET-42';
const dir = tempDir('haqa-agent-cli-');
const servers: FakeAnthropic[] = [];
after(() => Promise.all(servers.map((s) => s.close())));

const RECIPE = `# tuning test recipe
model: ./model.onnx
target: { provider: cpu, threads: 2 }
objective:
  metric: decode_latency
  workload: { prompt_length: 16, decode_tokens: 8, batch: 1 }
  accuracy: { max_ppl_increase: 5% }
quantize:
  bits: 4
  block_size: 32
  accuracy_level: 0   # keep this comment
evaluation:
  text: ./eval.txt
  tokenizer: ./tokenizer.json
  window: 64
  max_windows: 2
search:
  trials: 3
  space:
    quantize.bits: [4, 8]
    quantize.accuracy_level: [0, 4]
`;

async function run(argv: string[], env: Record<string, string | undefined> = {}) {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete process.env[k];
  const out: string[] = [];
  const err: string[] = [];
  try {
    const code = await main(argv, {
      out: (l) => out.push(l),
      err: (l) => err.push(l),
      signal: new AbortController().signal,
    });
    return { code, out: out.join('\n'), err: err.join('\n') };
  } finally {
    for (const [k, v] of Object.entries(saved))
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
  }
}

let ready: Promise<string> | undefined;
function fixture(): Promise<string> {
  ready ??= (async () => {
    const arch = architectureFromConfig({
      model_type: 'llama',
      hidden_size: 64,
      intermediate_size: 128,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      vocab_size: 1024,
      max_position_embeddings: 256,
    });
    await synthesizeDecoder(arch, { out: path.join(dir, 'model.onnx'), seed: 1 });
    const ex = path.resolve(__dirname, '../../examples/tiny-llama');
    fs.copyFileSync(path.join(ex, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
    fs.writeFileSync(
      path.join(dir, 'eval.txt'),
      fs.readFileSync(path.join(ex, 'data/eval.txt'), 'utf8').slice(0, 3000),
    );
    const file = path.join(dir, 'haqa.yaml');
    fs.writeFileSync(file, RECIPE);
    return file;
  })();
  return ready;
}

function filesUnder(d: string): string[] {
  return fs
    .readdirSync(d, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? filesUnder(path.join(d, e.name)) : [path.join(d, e.name)]));
}

test('haqa tune (offline) prints trials, writes haqa.best.yaml with comments, leaves the original alone', async () => {
  const file = await fixture();
  const r = await run(['tune', file, '--json'], { ANTHROPIC_API_KEY: KEY });
  assert.equal(r.code, 0, r.err);
  const res = JSON.parse(r.out);
  assert.equal(res.proposer, 'offline', 'an API key alone does not switch agents: search.agent is offline');
  assert.equal(res.trials.length, 3);
  assert.ok(res.best.feasible);
  assert.ok(res.baseline.decode_ms_per_token > 0 && res.baseline.ppl > 0);
  assert.equal(res.written, path.join(dir, 'haqa.best.yaml'));
  const best = fs.readFileSync(res.written, 'utf8');
  assert.match(best, /# keep this comment/);
  assert.match(best, /^# tuning test recipe/);
  assert.match(best, new RegExp(`accuracy_level: ${res.best.config['quantize.accuracy_level']}`));
  assert.equal(fs.readFileSync(file, 'utf8'), RECIPE);
  // the human-readable form
  const h = await run(['tune', file, '--trials', '2', '--agent', 'random', '--seed', '3']);
  assert.equal(h.code, 0, h.err);
  assert.match(h.out, /fp32 baseline: decode [\d.]+ ms\/token/);
  assert.match(h.out, /#1 +quantize\.bits=\d+ quantize\.accuracy_level=\d/);
  assert.match(h.out, /best: trial #\d .*\n.*x vs fp32; perplexity [+-][\d.]+% vs fp32/);
  for (const f of filesUnder(dir))
    if (!f.endsWith('.onnx') && !f.endsWith('.data')) assert.ok(!fs.readFileSync(f, 'utf8').includes(KEY), f);
});

test('haqa tune --agent claude via a fake API: the agent runs a trial and answers; the key is not shown', async () => {
  const file = await fixture();
  const fake = await FakeAnthropic.start([
    reply([
      toolUse('run_trial', { config: { 'quantize.bits': 8, 'quantize.accuracy_level': 4 }, rationale: 'int8 compute' }),
    ]),
    reply([
      toolUse('final_answer', {
        config: { 'quantize.bits': 8, 'quantize.accuracy_level': 4 },
        explanation: 'EIGHT-BIT-WINS',
      }),
    ]),
  ]);
  servers.push(fake);
  const r = await run(['tune', file, '--agent', 'claude', '--base-url', fake.url, '--trials', '2'], {
    ANTHROPIC_API_KEY: KEY,
  });
  assert.deepEqual(fake.problems, []);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /agent: EIGHT-BIT-WINS/);
  assert.match(r.out, /tokens: 200 in, 100 out.*2 requests, 2 tool calls, [\d.]+ KiB sent/);
  assert.ok(!r.out.includes(KEY) && !r.err.includes(KEY));
  // without a key, asking for claude is a usage error
  const nokey = await run(['tune', file, '--agent', 'claude'], { ANTHROPIC_API_KEY: undefined });
  assert.equal(nokey.code, 2);
  assert.match(nokey.err, /ANTHROPIC_API_KEY/);
});

test('haqa tune --write replaces the original; a broken recipe is refused with its location', async () => {
  const file = await fixture();
  const copy = path.join(dir, 'copy.haqa.yaml');
  fs.writeFileSync(copy, RECIPE.replace('trials: 3', 'trials: 2'));
  const w = await run(['tune', copy, '--write', '--json']);
  assert.equal(w.code, 0, w.err);
  assert.equal(JSON.parse(w.out).written, copy);
  assert.match(fs.readFileSync(copy, 'utf8'), /# keep this comment/);
  assert.ok(!fs.existsSync(path.join(dir, 'copy.haqa.best.yaml')));
  const bad = path.join(dir, 'bad.yaml');
  fs.writeFileSync(bad, RECIPE.replace('bits: 4\n', 'bits: 5x\n'));
  const b = await run(['tune', bad]);
  assert.equal(b.code, 1);
  assert.match(b.err, /bad\.yaml:9:\d+: /);
  assert.equal((await run(['tune', file, '--trials', 'many'])).code, 2);
  void file;
});

test('haqa advise (rules) suggests int8 compute for this recipe', async () => {
  const file = await fixture();
  const r = await run(['advise', file, '--agent', 'offline', '--json']);
  assert.equal(r.code, 0, r.err);
  const res = JSON.parse(r.out);
  assert.ok(res.suggestions.some((s: { knobs: Record<string, unknown> }) => s.knobs['quantize.accuracy_level'] === 4));
  const h = await run(['advise', file, '--agent', 'offline']);
  assert.match(h.out, /• Use int8 compute \(accuracy_level 4\)\n {4}set: quantize\.accuracy_level=4\n {4}why: /);
});
