// Host key verification for the SSH runner: the key a host presents must be listed for that host (and
// port) in a known_hosts file, in OpenSSH's format — plain or hashed (`|1|salt|hmac`) host patterns,
// `[host]:port` for ports other than 22, `@revoked` lines refusing a key. No trust on first use: a host
// not listed is refused with the command that would list it.
import { createHmac } from 'node:crypto';
import * as fs from 'node:fs';
import { READ_CAPS, readRegularTextSync } from '../util/paths';

export interface HostKeyVerdict {
  ok: boolean;
  /** Why not, for the error message. */
  reason?: string;
}

function hostMatches(pattern: string, name: string): boolean {
  if (pattern.startsWith('|1|')) {
    const [, , salt, mac] = pattern.split('|');
    if (!salt || !mac) return false;
    return createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64') === mac;
  }
  if (!pattern.includes('*') && !pattern.includes('?')) return pattern.toLowerCase() === name.toLowerCase();
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
    'i',
  );
  return re.test(name);
}

/** Is `key` (the raw public key blob the server sent) listed for host:port in `file`? */
export function verifyHostKey(file: string, host: string, port: number, key: Buffer): HostKeyVerdict {
  let text: string;
  try {
    if (!fs.existsSync(file)) return { ok: false, reason: `no known_hosts file at ${file}` };
    text = readRegularTextSync(file, 'known_hosts', READ_CAPS.config);
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
  const name = port === 22 ? host : `[${host}]:${port}`;
  let listed = false;
  let match = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const parts = line.split(/\s+/);
    const marker = parts[0].startsWith('@') ? parts.shift() : undefined;
    const [hosts, , b64] = parts;
    if (!hosts || !b64 || marker === '@cert-authority') continue;
    const pats = hosts.split(',');
    const negated = pats.some((p) => p.startsWith('!') && hostMatches(p.slice(1), name));
    if (negated || !pats.some((p) => !p.startsWith('!') && hostMatches(p, name))) continue;
    const same = Buffer.from(b64, 'base64').equals(key);
    if (marker === '@revoked') {
      if (same) return { ok: false, reason: `the host key of ${name} is marked @revoked in ${file}` };
      continue;
    }
    listed = true;
    if (same) match = true;
  }
  if (match) return { ok: true };
  if (listed)
    return {
      ok: false,
      reason:
        `the host key of ${name} does not match the one in ` +
        `${file}: the host changed its key, or this is not that host`,
    };
  return {
    ok: false,
    reason:
      `${name} is not in ${file}; after checking its fingerprint, ` +
      `add it with: ssh-keyscan -p ${port} ${host} >> ${file}`,
  };
}
