// Real services for the runner tests, on loopback only, in a temporary folder, started and stopped by
// the test: Debian's OpenSSH server (run as the current user with its own config, throwaway host and
// user keys) and Debian's redis-server. scripts/ensure-deps.js installs both with apt where it can; when
// one is still missing, `missing` says why and the test skips with that reason.
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

function which(cmd: string, extra: string[] = []): string | undefined {
  for (const d of [...(process.env.PATH ?? '').split(':'), ...extra]) {
    const f = path.join(d, cmd);
    if (d && fs.existsSync(f)) return f;
  }
  return undefined;
}

export const SSHD = which('sshd', ['/usr/sbin', '/usr/local/sbin']);
export const REDIS = which('redis-server', ['/usr/bin', '/usr/sbin']);

export function sshdMissing(): string | undefined {
  if (!SSHD)
    return 'sshd not found and not installable here (apt-get install openssh-server: see scripts/ensure-deps.js)';
  if (!which('ssh-keygen')) return 'ssh-keygen not found (openssh-client)';
  return undefined;
}

export function redisMissing(): string | undefined {
  return REDIS
    ? undefined
    : 'redis-server not found and not installable here (apt-get install redis-server: see scripts/ensure-deps.js)';
}

/** A free loopback port (asked of the kernel, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, what: string, log: () => string): Promise<void> {
  const until = Date.now() + 15_000;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}: ${log()}`);
    const ok = await new Promise<boolean>((res) => {
      const c = net.connect(port, '127.0.0.1', () => {
        c.end();
        res(true);
      });
      c.once('error', () => res(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not listen on 127.0.0.1:${port} within 15 s: ${log()}`);
}

export interface Sshd {
  port: number;
  user: string;
  /** The user's private key file. */
  identity: string;
  /** A known_hosts file listing the throwaway host key for [127.0.0.1]:port. */
  knownHosts: string;
  url: string;
  stop(): Promise<void>;
}

export async function startSshd(dir: string, opts: { env?: Record<string, string> } = {}): Promise<Sshd> {
  fs.mkdirSync(dir, { recursive: true });
  const hostKey = path.join(dir, 'host_ed25519');
  const identity = path.join(dir, 'user_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', identity]);
  fs.copyFileSync(`${identity}.pub`, path.join(dir, 'authorized_keys'));
  const port = await freePort();
  const user = execFileSync('id', ['-un']).toString().trim();
  const cfg = path.join(dir, 'sshd_config');
  const env = Object.entries(opts.env ?? {}).map(([k, v]) => `SetEnv ${k}=${v}`);
  fs.writeFileSync(
    cfg,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
      'UsePAM no',
      'StrictModes no',
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PubkeyAuthentication yes',
      'Subsystem sftp internal-sftp',
      'PermitRootLogin prohibit-password',
      'LogLevel ERROR',
      ...env,
      '',
    ].join('\n'),
  );
  // Run as root, sshd wants its privilege-separation folder.
  if (process.getuid?.() === 0) fs.mkdirSync('/run/sshd', { recursive: true });
  const knownHosts = path.join(dir, 'known_hosts');
  const pub = fs.readFileSync(`${hostKey}.pub`, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
  fs.writeFileSync(knownHosts, `[127.0.0.1]:${port} ${pub}\n`);
  let log = '';
  const child = spawn(SSHD!, ['-D', '-e', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr!.on('data', (b: Buffer) => (log = (log + b.toString()).slice(-4000)));
  await waitForPort(port, child, 'sshd', () => log);
  return {
    port,
    user,
    identity,
    knownHosts,
    url: `ssh://${user}@127.0.0.1:${port}`,
    stop: () => stopChild(child),
  };
}

export interface Redis {
  port: number;
  url: string;
  stop(): Promise<void>;
}

export async function startRedis(dir: string): Promise<Redis> {
  fs.mkdirSync(dir, { recursive: true });
  const port = await freePort();
  let log = '';
  const child = spawn(
    REDIS!,
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'no',
      '--protected-mode',
      'yes',
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  child.stdout!.on('data', (b: Buffer) => (log = (log + b.toString()).slice(-4000)));
  child.stderr!.on('data', (b: Buffer) => (log = (log + b.toString()).slice(-4000)));
  await waitForPort(port, child, 'redis-server', () => log);
  return { port, url: `redis://127.0.0.1:${port}`, stop: () => stopChild(child) };
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), 3000);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
