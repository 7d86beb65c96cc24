#!/usr/bin/env node
// The `haqa` command: runs the bundled CLI, building it first when run from a fresh clone.
const fs = require('node:fs');
const path = require('node:path');
const root = path.join(__dirname, '..');
const cli = path.join(root, 'dist', 'cli.js');
if (!fs.existsSync(cli)) {
  require('node:child_process').execFileSync(process.execPath, [path.join(root, 'esbuild.mjs')], {
    cwd: root,
    stdio: 'inherit',
  });
}
require(cli).runCli();
