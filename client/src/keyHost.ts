// Where the Anthropic API key may go. `haqa.agent.baseUrl` is machine-scoped (package.json), so a
// repository's .vscode/settings.json cannot redirect the key; on top of that, before the key is sent to
// any host but the default one, the user confirms once per host, and the answer is remembered in the
// extension's globalState (per user, never per workspace). Pure logic, no vscode import: the glue in
// extension.ts supplies the modal and the Memento.

export const DEFAULT_API_HOST = 'api.anthropic.com';
export const APPROVED_HOSTS_KEY = 'haqa.approvedApiHosts';

/** The subset of vscode.Memento used here (globalState). */
export interface HostMemento {
  get<T>(key: string): T | undefined;
  update(key: string, value: unknown): Thenable<void> | Promise<void>;
}

/** The subset of WorkspaceConfiguration.inspect() that says where a value came from. */
export interface Inspected<T> {
  defaultValue?: T;
  globalValue?: T;
  workspaceValue?: T;
  workspaceFolderValue?: T;
}

/**
 * The base URL the key may be sent to: only user (global) or default values count, whatever a workspace
 * says (defence in depth beside the machine scope). Empty means the SDK's default host.
 */
export function trustedBaseUrl(inspected: Inspected<string> | undefined): string | undefined {
  const v = (inspected?.globalValue ?? inspected?.defaultValue ?? '').trim();
  return v || undefined;
}

/** The host part of a base URL ("host:port", lower case), or an Error for a URL that does not parse. */
export function hostOf(baseUrl: string | undefined): string | Error {
  if (!baseUrl) return DEFAULT_API_HOST;
  let u: URL;
  try {
    u = new URL(baseUrl);
  } catch {
    return new Error(`haqa.agent.baseUrl is not a URL: ${JSON.stringify(baseUrl.slice(0, 200))}`);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:')
    return new Error(`haqa.agent.baseUrl must be http(s), got ${u.protocol}`);
  return u.host.toLowerCase();
}

export type KeyDecision =
  { kind: 'send'; host: string } | { kind: 'ask'; host: string } | { kind: 'refuse'; reason: string };

export function approvedHosts(state: HostMemento): string[] {
  const v = state.get<unknown>(APPROVED_HOSTS_KEY);
  return Array.isArray(v) ? v.filter((h): h is string => typeof h === 'string') : [];
}

/** Whether the key may go to `baseUrl` now, must be confirmed first, or must not go at all. */
export function keyDecision(baseUrl: string | undefined, state: HostMemento): KeyDecision {
  const host = hostOf(baseUrl);
  if (host instanceof Error) return { kind: 'refuse', reason: host.message };
  if (host === DEFAULT_API_HOST || approvedHosts(state).includes(host)) return { kind: 'send', host };
  return { kind: 'ask', host };
}

export async function rememberHost(state: HostMemento, host: string): Promise<void> {
  const hosts = approvedHosts(state);
  if (!hosts.includes(host)) await state.update(APPROVED_HOSTS_KEY, [...hosts, host]);
}

/**
 * The key to send to `baseUrl`, or undefined (no key is sent; the caller runs offline or stops).
 * `confirm(host)` shows the modal; a yes is remembered for that host.
 */
export async function keyFor(
  key: string | undefined,
  baseUrl: string | undefined,
  state: HostMemento,
  confirm: (host: string) => Promise<boolean>,
): Promise<{ key?: string; refused?: string }> {
  if (!key) return {};
  const d = keyDecision(baseUrl, state);
  if (d.kind === 'send') return { key };
  if (d.kind === 'refuse') return { refused: d.reason };
  if (!(await confirm(d.host))) return { refused: `the API key was not sent to ${d.host} (not confirmed)` };
  await rememberHost(state, d.host);
  return { key };
}
