// The proposer registry (agent/proposers.ts): each name builds the strategy of that name, the API-key
// requirement is the entry's, and the CLI's --agent check reads the same table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  PROPOSERS,
  PROPOSER_NAMES,
  ProposerError,
  type ProposerEntry,
  chooseProposer,
  createProposer,
  isProposerName,
  proposerList,
  proposerProblem,
} from '../../server/src/agent/proposers';
import { makeProposer } from '../../server/src/cli/tune';
import { UsageError } from '../../server/src/cli/command';
import schemaJson from '../../schemas/haqa.schema.json';
import { validateSchema } from '../../server/src/config/schema';
import { parseYaml } from '../../server/src/config/parse';

test('every registered name builds the proposer of that name', () => {
  assert.deepEqual(PROPOSER_NAMES, ['claude', 'offline', 'random', 'sweep']);
  for (const name of PROPOSER_NAMES) {
    const p = createProposer(name, { seed: 1, trials: 3, apiKey: 'sk-test', baseURL: 'http://127.0.0.1:9' });
    assert.equal(p.name, name);
  }
  assert.ok(isProposerName('sweep') && !isProposerName('toString') && !isProposerName('grid'));
  assert.equal(proposerList(), 'claude, offline, random or sweep');
});

test('a proposer that needs a key refuses to start without one, as a usage error in the CLI', () => {
  assert.equal(PROPOSERS.claude.needsApiKey, true);
  assert.match(proposerProblem('claude', {}) ?? '', /needs an API key/);
  assert.equal(proposerProblem('offline', {}), undefined);
  assert.throws(() => createProposer('claude', { seed: 0, trials: 1 }), ProposerError);
  const loaded = {} as Parameters<typeof makeProposer>[0];
  assert.throws(() => makeProposer(loaded, { agent: 'claude', trials: 1, seed: 0 }), UsageError);
  assert.equal(makeProposer(loaded, { agent: 'random', trials: 1, seed: 0 }).name, 'random');
});

test('a recipe may name every registered proposer in search.agent, and nothing else', () => {
  const agentEnum = (schemaJson as { properties: { search: { properties: { agent: { enum: string[] } } } } }).properties
    .search.properties.agent.enum;
  assert.deepEqual(
    agentEnum,
    PROPOSER_NAMES,
    'schemas/haqa.schema.json search.agent.enum must list agent/proposers.ts PROPOSER_NAMES',
  );
  const codes = (agent: string) => {
    const p = parseYaml(`model: m.onnx\nsearch:\n  agent: ${agent}\n`);
    return validateSchema(p)
      .diagnostics.filter((d) => d.range.start.line === 2)
      .map((d) => String(d.message));
  };
  for (const name of PROPOSER_NAMES) assert.deepEqual(codes(name), [], name);
  assert.notDeepEqual(codes('grid'), []);
});

test("one rule picks the session's proposer for the CLI and the editor: the run's ask, else the recipe's", () => {
  for (const name of PROPOSER_NAMES) {
    // An explicit ask is kept as asked (createProposer refuses a keyless claude with the reason).
    assert.deepEqual(chooseProposer(name, 'offline', {}), { name });
    const fromRecipe = chooseProposer(undefined, name, {});
    if ((PROPOSERS[name] as ProposerEntry).needsApiKey) {
      assert.equal(fromRecipe.name, 'offline');
      assert.match(fromRecipe.note ?? '', new RegExp(`search.agent is ${name} but no API key`));
      assert.deepEqual(chooseProposer(undefined, name, { apiKey: 'k' }), { name });
    } else assert.deepEqual(fromRecipe, { name }, `${name} from the recipe runs as ${name}, without a key`);
  }
});
