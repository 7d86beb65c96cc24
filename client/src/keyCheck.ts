// Does an Anthropic API key work? One cheap request to the configured host: POST /v1/messages/count_tokens
// (counts a one-word prompt; no tokens are generated or billed). Plain fetch, no vscode import, so the
// unit test runs it against test/helpers/fakeAnthropic.ts. The caller confirms the host first (keyHost.ts).

export const DEFAULT_BASE_URL = 'https://api.anthropic.com';
export const KEYS_PAGE = 'https://console.anthropic.com/settings/keys';

export type KeyCheck =
  { ok: true; note?: string } | { ok: false; kind: 'invalid' | 'unreachable' | 'error'; message: string };

export interface KeyCheckOptions {
  baseUrl?: string;
  model: string;
  timeoutMs?: number;
  fetchImpl?: typeof fetch;
}

export async function checkApiKey(key: string, opts: KeyCheckOptions): Promise<KeyCheck> {
  const base = (opts.baseUrl || DEFAULT_BASE_URL).replace(/\/+$/, '');
  const f = opts.fetchImpl ?? fetch;
  let res: Response;
  try {
    res = await f(`${base}/v1/messages/count_tokens`, {
      method: 'POST',
      headers: { 'x-api-key': key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
      body: JSON.stringify({ model: opts.model, messages: [{ role: 'user', content: 'ping' }] }),
      signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
    });
  } catch (err) {
    return {
      ok: false,
      kind: 'unreachable',
      message: `${new URL(base).host} did not answer (${(err as Error).message})`,
    };
  }
  if (res.ok) return { ok: true };
  let detail = '';
  try {
    const body = (await res.json()) as { error?: { message?: unknown } };
    const m = body?.error?.message;
    if (typeof m === 'string') detail = m.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ').slice(0, 200);
  } catch {
    /* not JSON */
  }
  const said = `${res.status}${detail ? `: ${detail}` : ''}`;
  if (res.status === 401 || res.status === 403)
    return { ok: false, kind: 'invalid', message: `the key was refused (${said})` };
  // The key got past authentication: a wrong model name or a busy API does not make it a bad key.
  const passed = res.status === 404 || res.status === 429 || res.status >= 500;
  if (passed) return { ok: true, note: `the key was accepted; the API answered ${said}` };
  return { ok: false, kind: 'error', message: `the check failed (${said})` };
}
