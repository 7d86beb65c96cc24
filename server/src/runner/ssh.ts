// The SSH runner: a trial compressed and measured on another host. Over one ssh2 connection it
//  - verifies the host key against known_hosts (./knownHosts.ts) and authenticates with the SSH agent or
//    a key file (never a password; nothing secret is in the recipe or the records);
//  - profiles the host's hardware (CPU model, ISA flags, cores, memory, OS, Node);
//  - makes sure the host has this version's worker (dist/cli.js and dist/worker.js, sent when absent),
//    and says clearly when Node or onnxruntime-node is missing there;
//  - sends each file of the trial (./bundle.ts) once into a content-addressed cache (sha256; a partial
//    upload resumes where it stopped, and is checked before use), hard-linked into the trial's folder;
//  - runs `node dist/cli.js bench --json` there in its own process group, streams its progress back,
//    and cancels by signalling that whole group (the CLI and its worker: no orphans).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Client, ClientChannel, ConnectConfig, SFTPWrapper } from 'ssh2';
import type { HardwareFingerprint, RunRecord, RunStatus } from '../bench/record';
import { sha256 } from '../bench/record';
import { isaFlags } from '../bench/hardware';
import { BundleFile, recipeBundle } from './bundle';
import { adoptRecord, deviceOf, emptyRecord, storeRecord } from './device';
import { verifyHostKey } from './knownHosts';
import { Runner, RunnerConfig, RunnerError, RunnerOptions, TrialJob } from './types';

/** Single-quote for a POSIX shell. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** After SIGTERM to the remote group, how long before SIGKILL. */
const KILL_GRACE_S = 1.5;
const MIN_NODE_MAJOR = 20;

interface Remote {
  /** Absolute remoteDir. */
  dir: string;
  cli: string;
  hardware: HardwareFingerprint;
}

export interface Transfer {
  name: string;
  sha256: string;
  bytes: number;
  sent: number;
  resumedFrom: number;
}

/** dist/cli.js and dist/worker.js of this build, and the package version. */
function localWorker(): { dist: string; version: string } {
  const candidates = [__dirname, path.resolve(__dirname, '..', '..', '..', 'dist')];
  const dist = candidates.find(
    (d) => fs.existsSync(path.join(d, 'cli.js')) && fs.existsSync(path.join(d, 'worker.js')),
  );
  if (!dist)
    throw new RunnerError(
      'the SSH runner sends dist/cli.js and dist/worker.js to the host: build them first (npm run build)',
      'local',
    );
  const pkg = JSON.parse(fs.readFileSync(path.resolve(dist, '..', 'package.json'), 'utf8')) as { version: string };
  return { dist, version: pkg.version };
}

/** The profile script's output (`key=value` lines) as a fingerprint. */
export function parseProfile(text: string): HardwareFingerprint & { nodeMajor: number } {
  const kv = new Map<string, string>();
  for (const l of text.split('\n')) {
    const i = l.indexOf('=');
    if (i > 0 && !kv.has(l.slice(0, i))) kv.set(l.slice(0, i), l.slice(i + 1).trim());
  }
  const machine = kv.get('arch') ?? 'unknown';
  const arch =
    ({ x86_64: 'x64', amd64: 'x64', aarch64: 'arm64', armv7l: 'arm', i686: 'ia32' } as Record<string, string>)[
      machine
    ] ?? machine;
  const field = (k: string) => (kv.get(k) ?? '').replace(/^[^:]*:\s*/, '');
  const node = kv.get('node') ?? '';
  return {
    cpu: field('cpu').replace(/\s+/g, ' ') || 'unknown',
    arch,
    isa: isaFlags(arch, field('flags').split(/\s+/).filter(Boolean)),
    cores: Number(kv.get('cores')) || 1,
    memory_bytes: (Number(/(\d+)/.exec(kv.get('mem') ?? '')?.[1]) || 0) * 1024,
    os: kv.get('os') ?? 'unknown',
    node,
    onnxruntime: kv.get('ort') ?? 'missing',
    nodeMajor: Number(/^v(\d+)/.exec(node)?.[1] ?? 0),
  };
}

const PROFILE_SCRIPT = [
  'echo "arch=$(uname -m)"',
  'echo "cores=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)"',
  'echo "mem=$(grep -m1 MemTotal /proc/meminfo 2>/dev/null)"',
  'echo "cpu=$(grep -m1 -E \'^(model name|Hardware|Processor|cpu model)\' /proc/cpuinfo 2>/dev/null)"',
  'echo "flags=$(grep -m1 -E \'^(flags|Features)\' /proc/cpuinfo 2>/dev/null)"',
  'echo "os=$(uname -s | tr A-Z a-z) $(uname -r)"',
  'echo "node=$(node --version 2>/dev/null)"',
].join('; ');

export class SshRunner implements Runner {
  readonly kind = 'ssh';
  readonly host: string;
  /** What each run sent, for the curious and the tests. */
  readonly transfers: Transfer[] = [];
  private readonly hostname: string;
  private readonly port: number;
  private readonly user: string;
  private conn?: Promise<Client>;
  private sftpP?: Promise<SFTPWrapper>;
  private remote?: Promise<Remote>;
  private sending: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(
    url: URL,
    private readonly config: RunnerConfig = {},
  ) {
    this.user = decodeURIComponent(url.username);
    this.hostname = url.hostname.replace(/^\[|\]$/g, '');
    this.port = url.port ? Number(url.port) : 22;
    if (!this.user) throw new RunnerError(`${url.href}: name the user (ssh://user@host:port)`, url.href);
    if (!this.hostname) throw new RunnerError(`${url.href}: no host`, url.href);
    this.host = `ssh://${this.user}@${this.hostname}:${this.port}`;
  }

  // ---------------------------------------------------------------- connection

  private connect(): Promise<Client> {
    if (this.closed) return Promise.reject(new RunnerError(`${this.host}: the runner is closed`, this.host));
    this.conn ??= new Promise<Client>((resolve, reject) => {
      const known = this.config.knownHosts ?? path.join(os.homedir(), '.ssh', 'known_hosts');
      let refusal: string | undefined;
      const cfg: ConnectConfig = {
        host: this.hostname,
        port: this.port,
        username: this.user,
        readyTimeout: 20_000,
        keepaliveInterval: 10_000,
        hostVerifier: (key: Buffer) => {
          const v = verifyHostKey(known, this.hostname, this.port, key);
          refusal = v.reason;
          return v.ok;
        },
      };
      const keyFile =
        this.config.identityFile ??
        ['id_ed25519', 'id_ecdsa', 'id_rsa']
          .map((k) => path.join(os.homedir(), '.ssh', k))
          .find((f) => fs.existsSync(f));
      if (keyFile) {
        try {
          cfg.privateKey = fs.readFileSync(keyFile);
        } catch (err) {
          reject(new RunnerError(`cannot read the SSH key ${keyFile}: ${(err as Error).message}`, this.host));
          return;
        }
      }
      if (process.env.SSH_AUTH_SOCK) cfg.agent = process.env.SSH_AUTH_SOCK;
      if (!cfg.privateKey && !cfg.agent) {
        reject(
          new RunnerError(
            `${this.host}: no SSH key: start an SSH agent (SSH_AUTH_SOCK) or name a key file (--identity)`,
            this.host,
          ),
        );
        return;
      }
      // Loaded here: a remote worker runs this bundle without ssh2 installed.
      const { Client: SshClient } = require('ssh2') as typeof import('ssh2');
      const c = new SshClient();
      c.once('ready', () => resolve(c));
      c.once('error', (err) => {
        this.conn = undefined;
        const why = refusal ? `host key not accepted: ${refusal}` : err.message;
        reject(new RunnerError(`cannot connect to ${this.host}: ${why}`, this.host));
      });
      c.on('close', () => {
        this.conn = undefined;
        this.sftpP = undefined;
        this.remote = undefined;
      });
      c.connect(cfg);
    });
    return this.conn;
  }

  private async sftp(): Promise<SFTPWrapper> {
    const c = await this.connect();
    this.sftpP ??= new Promise((resolve, reject) => c.sftp((err, s) => (err ? reject(err) : resolve(s))));
    return this.sftpP;
  }

  /** Run a shell command on the host; resolves with its exit code and output (never rejects on a non-zero exit). */
  async exec(
    cmd: string,
    on?: { stdout?: (b: Buffer) => void; stderr?: (b: Buffer) => void; channel?: (ch: ClientChannel) => void },
  ): Promise<{ code: number | null; signal?: string; stdout: string; stderr: string }> {
    const c = await this.connect();
    return new Promise((resolve, reject) => {
      c.exec(cmd, (err, ch) => {
        if (err) return reject(new RunnerError(`${this.host}: ${err.message}`, this.host));
        on?.channel?.(ch);
        let stdout = '';
        let stderr = '';
        ch.on('data', (b: Buffer) => (on?.stdout ? on.stdout(b) : (stdout = (stdout + b.toString()).slice(-1 << 20))));
        ch.stderr.on('data', (b: Buffer) =>
          on?.stderr ? on.stderr(b) : (stderr = (stderr + b.toString()).slice(-1 << 16)),
        );
        ch.on('close', (code: number | null, signal?: string) => resolve({ code, signal, stdout, stderr }));
      });
    });
  }

  private async check(cmd: string, what: string): Promise<string> {
    const r = await this.exec(cmd);
    if (r.code !== 0)
      throw new RunnerError(`${this.host}: ${what} failed (exit ${r.code}): ${r.stderr.trim().slice(-400)}`, this.host);
    return r.stdout;
  }

  // ---------------------------------------------------------------- the host: profile, worker

  async profile(): Promise<HardwareFingerprint> {
    return (await this.ensure()).hardware;
  }

  private ensure(): Promise<Remote> {
    this.remote ??= this.prepare().catch((err) => {
      this.remote = undefined;
      throw err;
    });
    return this.remote;
  }

  private async prepare(): Promise<Remote> {
    const want = this.config.remoteDir ?? '.cache/haqa';
    const dir = (await this.check(`mkdir -p ${shq(want)} && cd ${shq(want)} && pwd`, `creating ${want}`)).trim();
    const p = parseProfile(await this.check(PROFILE_SCRIPT, 'profiling the hardware'));
    if (!p.node)
      throw new RunnerError(
        `${this.host}: Node.js is not installed there (no \`node\` on the PATH ` +
          `of a non-interactive shell); install Node ${MIN_NODE_MAJOR} or later`,
        this.host,
      );
    if (p.nodeMajor < MIN_NODE_MAJOR)
      throw new RunnerError(
        `${this.host}: Node ${p.node} is too old; the worker needs Node ${MIN_NODE_MAJOR} or later`,
        this.host,
      );
    const { dist, version } = localWorker();
    const files = ['cli.js', 'worker.js'];
    const hash = sha256(files.map((f) => fs.readFileSync(path.join(dist, f)).toString('base64')).join('\0')).slice(
      0,
      12,
    );
    const wdir = `${dir}/haqa/${version}-${hash}`;
    const have = await this.exec(`test -f ${shq(`${wdir}/dist/cli.js`)} && test -f ${shq(`${wdir}/dist/worker.js`)}`);
    if (have.code !== 0) {
      await this.check(`mkdir -p ${shq(`${wdir}/dist`)}`, 'creating the worker folder');
      const sftp = await this.sftp();
      for (const f of files) {
        const tmp = `${wdir}/dist/.${f}.${process.pid}.tmp`;
        await new Promise<void>((res, rej) => sftp.fastPut(path.join(dist, f), tmp, (e) => (e ? rej(e) : res())));
        await this.check(`mv -f ${shq(tmp)} ${shq(`${wdir}/dist/${f}`)}`, `installing ${f}`);
      }
      await new Promise<void>((res, rej) =>
        sftp.writeFile(
          `${wdir}/package.json`,
          JSON.stringify({ name: 'haqa-worker', version, private: true }) + '\n',
          (e) => (e ? rej(e) : res()),
        ),
      );
    }
    const ort = await this.exec(
      `cd ${shq(wdir)} && node -e ${shq("process.stdout.write(require('onnxruntime-node/package.json').version)")}`,
    );
    if (ort.code !== 0 || !ort.stdout.trim()) {
      const local = require('onnxruntime-node/package.json').version as string;
      throw new RunnerError(
        `${this.host}: onnxruntime-node is not installed where the worker can load it: ` +
          `run \`npm install onnxruntime-node@${local}\` in ${dir} there ` +
          `(the worker in ${wdir} resolves it from ${dir}/node_modules)`,
        this.host,
      );
    }
    const { nodeMajor: _n, ...hardware } = p;
    return { dir, cli: `${wdir}/dist/cli.js`, hardware: { ...hardware, onnxruntime: ort.stdout.trim() } };
  }

  // ---------------------------------------------------------------- files

  /** One file into the host's cache, once: skipped when there, resumed from a partial upload, verified. */
  private async send(f: BundleFile, cache: string): Promise<void> {
    const sftp = await this.sftp();
    const dst = `${cache}/${f.sha256}`;
    const part = `${dst}.part`;
    const size = (p: string) =>
      new Promise<number | undefined>((res) => sftp.stat(p, (e, st) => res(e ? undefined : st.size)));
    if ((await size(dst)) === f.bytes) return;
    let offset = (await size(part)) ?? 0;
    if (offset > f.bytes) offset = 0;
    await new Promise<void>((res, rej) => {
      const out = sftp.createWriteStream(part, { flags: offset ? 'r+' : 'w', start: offset });
      const inp = fs.createReadStream(f.local, { start: offset });
      out.on('error', rej);
      inp.on('error', rej);
      out.on('close', () => res());
      inp.pipe(out);
    });
    const sum = (await this.check(`sha256sum ${shq(part)}`, `checking ${f.name}`)).split(/\s/)[0];
    if (sum !== f.sha256) {
      await this.exec(`rm -f ${shq(part)}`);
      throw new RunnerError(
        `${this.host}: ${f.name} arrived with sha256 ${sum}, not ${f.sha256} (changed while being sent?)`,
        this.host,
      );
    }
    await this.check(`mv -f ${shq(part)} ${shq(dst)}`, `caching ${f.name}`);
    this.transfers.push({
      name: f.name,
      sha256: f.sha256,
      bytes: f.bytes,
      sent: f.bytes - offset,
      resumedFrom: offset,
    });
  }

  // ---------------------------------------------------------------- a trial

  async run(job: TrialJob, opts: RunnerOptions = {}): Promise<RunRecord> {
    const started = new Date();
    let record: RunRecord;
    try {
      record = await this.runRemote(job, opts);
    } catch (err) {
      const hw = await this.remote?.then(
        (r) => r.hardware,
        () => undefined,
      );
      record = emptyRecord(
        job,
        hw ?? {
          cpu: 'unknown',
          arch: 'unknown',
          isa: [],
          cores: 0,
          memory_bytes: 0,
          os: 'unknown',
          node: '',
          onnxruntime: '',
        },
        started,
      );
      const status: RunStatus = opts.signal?.aborted ? 'cancelled' : 'error';
      record.status = status;
      record.error = { message: (err as Error).message, stage: 'setup', where: this.host };
      record.device = deviceOf(this.kind, this.host, record.hardware);
    }
    if (opts.noStore) return record;
    return storeRecord(opts.storeDir ?? path.dirname(job.recipe.file), record);
  }

  private async runRemote(job: TrialJob, opts: RunnerOptions): Promise<RunRecord> {
    const progress = (stage: string, message: string) => opts.onProgress?.({ stage, message });
    if (opts.signal?.aborted) throw new RunnerError('cancelled before the run started', this.host);
    progress('setup', `connecting to ${this.host}`);
    const remote = await this.ensure();
    const bundle = await recipeBundle(job.recipe);
    const cache = `${remote.dir}/cache`;
    const tdir = `${remote.dir}/trials/${bundle.key}`;
    // Sends are serialized: two trials of one search share the model, which goes once.
    const sent = this.sending.then(async () => {
      await this.check(`mkdir -p ${shq(cache)}`, 'creating the cache');
      for (const f of bundle.files) {
        progress('setup', `sending ${f.name} (${f.bytes} bytes) unless cached`);
        await this.send(f, cache);
      }
      const dirs = [...new Set(bundle.files.map((f) => path.posix.dirname(`${tdir}/${f.name}`)))];
      const links = bundle.files.map((f) => `ln -f ${shq(`${cache}/${f.sha256}`)} ${shq(`${tdir}/${f.name}`)}`);
      await this.check([`mkdir -p ${dirs.map(shq).join(' ')}`, ...links].join(' && '), 'linking the trial files');
    });
    this.sending = sent.catch(() => undefined);
    await sent;
    const text = JSON.stringify(bundle.doc, null, 1) + '\n';
    const name = `recipe-${sha256(text).slice(0, 16)}.haqa.yaml`;
    const sftp = await this.sftp();
    await new Promise<void>((res, rej) => sftp.writeFile(`${tdir}/${name}`, text, (e) => (e ? rej(e) : res())));

    const args = ['bench', name, '--json', '--progress-json', '--store', `${remote.dir}/store`];
    if (job.quick) args.push('--quick');
    if (!job.baseline) args.push('--no-baseline');
    if (job.timeoutMs !== undefined) args.push('--timeout', String(Math.max(1, Math.ceil(job.timeoutMs / 1000))));
    if (job.measure?.latency === false) args.push('--measure', 'accuracy');
    else if (job.measure?.accuracy === false) args.push('--measure', 'latency');
    if (job.debug?.hangAt) args.push('--debug-hang', job.debug.hangAt);
    const inner = `echo "haqa-pgid $$" >&2; exec node ${shq(remote.cli)} ${args.map(shq).join(' ')}`;
    const cmd = `cd ${shq(tdir)} && exec setsid sh -c ${shq(inner)}`;

    let pgid: number | undefined;
    let cancelled = false;
    let timedOut = false;
    let stdout = '';
    let errTail = '';
    let buf = '';
    const kill = () => {
      if (pgid === undefined) return;
      const g = pgid;
      // TERM the group (the CLI cancels, its worker goes with it); KILL whatever is left after the grace.
      const script =
        `kill -TERM -- -${g} 2>/dev/null; i=0; ` +
        `while kill -0 -- -${g} 2>/dev/null && [ $i -lt ${KILL_GRACE_S * 10} ]; do sleep 0.1; i=$((i+1)); done; ` +
        `kill -KILL -- -${g} 2>/dev/null; true`;
      this.exec(script).catch(() => undefined);
    };
    const onAbort = () => {
      cancelled = true;
      kill();
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const guard =
      job.timeoutMs !== undefined
        ? setTimeout(() => {
            timedOut = true;
            kill();
          }, job.timeoutMs + 30_000)
        : undefined;
    try {
      progress('setup', `running on ${this.host}`);
      const r = await this.exec(cmd, {
        stdout: (b) => {
          stdout += b.toString();
          if (stdout.length > 64 << 20) stdout = stdout.slice(-(64 << 20));
        },
        stderr: (b) => {
          buf += b.toString();
          let i: number;
          while ((i = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, i);
            buf = buf.slice(i + 1);
            const m = /^haqa-pgid (\d+)$/.exec(line);
            if (m) {
              pgid = Number(m[1]);
              if (cancelled) kill();
              continue;
            }
            try {
              const p = JSON.parse(line) as { stage?: unknown; message?: unknown; fraction?: unknown };
              if (typeof p.stage === 'string' && typeof p.message === 'string') {
                opts.onProgress?.({
                  stage: p.stage,
                  message: p.message,
                  fraction: typeof p.fraction === 'number' ? p.fraction : undefined,
                });
                continue;
              }
            } catch {
              /* not a progress line */
            }
            errTail = (errTail + line + '\n').slice(-2000);
          }
        },
      });
      let rec: RunRecord | undefined;
      try {
        rec = JSON.parse(stdout) as RunRecord;
      } catch {
        rec = undefined;
      }
      if (!rec || typeof rec !== 'object' || !rec.status) {
        const how = cancelled
          ? 'cancelled by the caller'
          : timedOut
            ? 'no result in time'
            : `the remote bench exited ${r.code ?? r.signal}`;
        throw new RunnerError(
          `${this.host}: ${how}${errTail.trim() ? `: ${errTail.trim().split('\n').slice(-3).join(' | ')}` : ''}`,
          this.host,
        );
      }
      return adoptRecord(rec, job, deviceOf(this.kind, this.host, rec.hardware), `${this.host}`);
    } finally {
      clearTimeout(guard);
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const c = await this.conn?.catch(() => undefined);
    c?.end();
  }
}
