// Issue 21 item 6: "Set API key" checks the key with one cheap request (count_tokens) to the configured
// host. Against the local fake API, never the real one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkApiKey } from '../../client/src/keyCheck';
import { ApiKey } from '../../client/src/apiKey';
import { apiError, credential, FakeAnthropic } from '../helpers/fakeAnthropic';

test('a working key: one count_tokens request to the configured host, with the key and the API version', async () => {
  const fake = await FakeAnthropic.start([{ body: { input_tokens: 8 } }]);
  try {
    const r = await checkApiKey('sk-ant-good', { baseUrl: fake.url + '/', model: 'claude-sonnet-4-6' });
    assert.deepEqual(r, { ok: true });
    assert.equal(fake.requests.length, 1);
    assert.equal(fake.requests[0].url, '/v1/messages/count_tokens');
    assert.equal(credential(fake.requests[0].headers), 'sk-ant-good');
    assert.equal(fake.requests[0].body.max_tokens, undefined, 'nothing is generated');
    assert.deepEqual(fake.problems, []);
  } finally {
    await fake.close();
  }
});

test('a refused key is reported as invalid with the API message; an unknown model still proves the key', async () => {
  const fake = await FakeAnthropic.start([
    apiError(401, 'authentication_error', 'invalid x-api-key'),
    apiError(404, 'not_found_error', 'model: nope'),
  ]);
  try {
    const bad = await checkApiKey('sk-ant-bad', { baseUrl: fake.url, model: 'claude-sonnet-4-6' });
    assert.equal(bad.ok, false);
    assert.equal(!bad.ok && bad.kind, 'invalid');
    assert.match(!bad.ok ? bad.message : '', /refused \(401: invalid x-api-key\)/);
    const model = await checkApiKey('sk-ant-good', { baseUrl: fake.url, model: 'nope' });
    assert.equal(model.ok, true);
    assert.match(model.ok ? (model.note ?? '') : '', /404/);
  } finally {
    await fake.close();
  }
});

test('a host that does not answer is "unreachable", within the timeout', async () => {
  const fake = await FakeAnthropic.start([]);
  const url = fake.url;
  await fake.close(); // nothing listens there now
  const r = await checkApiKey('sk-ant-x', { baseUrl: url, model: 'm', timeoutMs: 2000 });
  assert.equal(!r.ok && r.kind, 'unreachable');
  assert.match(!r.ok ? r.message : '', /127\.0\.0\.1/);
});

test('Clear API key knows whether a key was stored', async () => {
  const m = new Map<string, string>();
  const secrets = {
    get: async (k: string) => m.get(k),
    store: async (k: string, v: string) => void m.set(k, v),
    delete: async (k: string) => void m.delete(k),
  };
  const key = new ApiKey(secrets as never);
  assert.equal(await key.clear(), false, 'nothing stored: says so');
  await key.set('sk-ant-1');
  assert.equal(await key.stored(), true);
  assert.equal(await key.clear(), true);
  assert.equal(await key.stored(), false);
});
