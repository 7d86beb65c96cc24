#!/usr/bin/env node
// Runs before `npm run demo` and `npm test` (npm's pre-scripts): on a fresh clone, install the locked
// dependencies first, so both commands work with nothing before them. Plain Node, no dependencies.
const fs = require('node:fs');
const path = require('node:path');
const { execSync } = require('node:child_process');

const root = path.join(__dirname, '..');
const lock = path.join(root, 'node_modules', '.package-lock.json');
const needed = ['esbuild', 'tsx', 'onnxruntime-node', 'typescript'];
const missing = !fs.existsSync(lock) || needed.some((p) => !fs.existsSync(path.join(root, 'node_modules', p, 'package.json')));
if (missing) {
  process.stderr.write('haqa: installing dependencies (npm ci) — first run on this clone\n');
  execSync('npm ci --no-audit --no-fund', { cwd: root, stdio: 'inherit' });
}
