// Issue 14 item 10: a repository must not be able to send the stored API key to its own server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { APPROVED_HOSTS_KEY, hostOf, keyFor, trustedBaseUrl, type HostMemento } from '../../client/src/keyHost';

function memento(init: Record<string, unknown> = {}): HostMemento & { data: Record<string, unknown> } {
  const data = { ...init };
  return { data, get: <T>(k: string) => data[k] as T | undefined, update: async (k, v) => void (data[k] = v) };
}

test('every setting that decides where the key goes is machine-scoped', () => {
  const pkg = JSON.parse(readFileSync(path.join(__dirname, '../../package.json'), 'utf8'));
  assert.equal(pkg.contributes.configuration.properties['haqa.agent.baseUrl'].scope, 'machine');
});

test('a workspace value of baseUrl is ignored; user and default values count', () => {
  assert.equal(trustedBaseUrl({ defaultValue: '', workspaceValue: 'https://evil.example' }), undefined);
  assert.equal(trustedBaseUrl({ defaultValue: '', workspaceFolderValue: 'https://evil.example' }), undefined);
  assert.equal(
    trustedBaseUrl({
      defaultValue: '',
      globalValue: ' https://proxy.corp:8443/ ',
      workspaceValue: 'https://evil.example',
    }),
    'https://proxy.corp:8443/',
  );
  assert.equal(hostOf('https://Proxy.Corp:8443/v1'), 'proxy.corp:8443');
  assert.ok(hostOf('not a url') instanceof Error);
  assert.ok(hostOf('file:///etc/passwd') instanceof Error);
});

test('the default host gets the key without asking', async () => {
  const st = memento();
  let asked = 0;
  for (const url of [undefined, 'https://api.anthropic.com', 'https://API.anthropic.com/']) {
    assert.deepEqual(await keyFor('sk-1', url, st, async () => (asked++, false)), { key: 'sk-1' });
  }
  assert.equal(asked, 0);
});

test('another host is confirmed once, remembered in the given (global) state, and a no sends nothing', async () => {
  const st = memento();
  const asked: string[] = [];
  const no = await keyFor('sk-1', 'http://127.0.0.1:9999', st, async (h) => (asked.push(h), false));
  assert.equal(no.key, undefined);
  assert.match(no.refused ?? '', /127\.0\.0\.1:9999/);
  assert.equal(st.data[APPROVED_HOSTS_KEY], undefined, 'a no is not remembered');
  const yes = await keyFor('sk-1', 'http://127.0.0.1:9999/v1', st, async (h) => (asked.push(h), true));
  assert.deepEqual(yes, { key: 'sk-1' });
  assert.deepEqual(st.data[APPROVED_HOSTS_KEY], ['127.0.0.1:9999']);
  const again = await keyFor('sk-1', 'http://127.0.0.1:9999', st, async (h) => (asked.push(h), false));
  assert.deepEqual(again, { key: 'sk-1' });
  assert.deepEqual(asked, ['127.0.0.1:9999', '127.0.0.1:9999'], 'asked twice (no, then yes), not a third time');
  // Approval is per host: another port is another host.
  assert.equal((await keyFor('sk-1', 'http://127.0.0.1:9998', st, async () => false)).key, undefined);
});

test('no key: nothing to confirm; a bad URL: refused without asking', async () => {
  const st = memento();
  assert.deepEqual(await keyFor(undefined, 'https://evil.example', st, async () => assert.fail('asked')), {});
  const bad = await keyFor('sk-1', 'javascript:alert(1)', st, async () => assert.fail('asked'));
  assert.equal(bad.key, undefined);
  assert.match(bad.refused ?? '', /http/);
});
