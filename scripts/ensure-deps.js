#!/usr/bin/env node
// Runs before `npm run demo` and `npm test` (npm's pre-scripts): on a fresh clone, install the locked
// dependencies first, so both commands work with nothing before them. Plain Node, no dependencies.
const fs = require('node:fs');
const path = require('node:path');
const { execSync } = require('node:child_process');

const root = path.join(__dirname, '..');
const lock = path.join(root, 'node_modules', '.package-lock.json');
const needed = ['esbuild', 'tsx', 'onnxruntime-node', 'typescript'];
const missing =
  !fs.existsSync(lock) || needed.some((p) => !fs.existsSync(path.join(root, 'node_modules', p, 'package.json')));
if (missing) {
  process.stderr.write('haqa: installing dependencies (npm ci) — first run on this clone\n');
  execSync('npm ci --no-audit --no-fund', { cwd: root, stdio: 'inherit' });
}

// The runner tests start Debian's OpenSSH server and redis-server on loopback (test/helpers/services.ts).
// Install them where apt can (CI runs as root); where it cannot, those tests skip and say why.
const have = (cmd) =>
  ['/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin', ...(process.env.PATH || '').split(':')].some(
    (d) => d && fs.existsSync(path.join(d, cmd)),
  );
const apt = ['openssh-server', 'redis-server'].filter(
  (pkg) => !have(pkg === 'openssh-server' ? 'sshd' : 'redis-server'),
);
if (apt.length && have('apt-get') && process.getuid && process.getuid() === 0) {
  process.stderr.write(`haqa: installing ${apt.join(', ')} (apt-get) for the runner tests\n`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const run = (cmd) => execSync(cmd, { stdio: 'inherit', env });
  try {
    try {
      run(`apt-get install -y -qq --no-install-recommends ${apt.join(' ')}`);
    } catch {
      run('apt-get update -qq');
      run(`apt-get install -y -qq --no-install-recommends ${apt.join(' ')}`);
    }
  } catch (err) {
    process.stderr.write(
      `haqa: could not install ${apt.join(', ')}: ${err.message}; the SSH and fleet tests will skip\n`,
    );
  }
}
