// The API key must never reach the log, even with the protocol trace on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { redact } from '../../client/src/redact';

test('the apiKey field of traced params is blanked, the rest kept', () => {
  const traced =
    'Params: {\n    "uri": "file:///w/haqa.yaml",\n' +
    '    "apiKey": "sk-ant-api03-secret_value-XYZ",\n    "model": "claude-sonnet-4-5"\n}';
  const out = redact(traced);
  assert.doesNotMatch(out, /secret_value/);
  assert.match(out, /"apiKey": "\*\*\*"/);
  assert.match(out, /"model": "claude-sonnet-4-5"/);
  assert.equal(redact('{"apiKey":"a","x":{"apiKey":"b"}}'), '{"apiKey":"***","x":{"apiKey":"***"}}');
});
