// The same scenarios as test/e2e/run.ts, for @vscode/test-electron: a desktop VS Code runs the packaged
// extension and test/e2e/electron/suite.ts inside its extension host.
// `node --import tsx test/e2e/electron/launch.ts`. Needs a VS Code build: $VSCODE_EXECUTABLE, or one
// @vscode/test-electron can download. Where neither is possible (this sandbox: no network, and no
// Debian or npm package ships an Electron VS Code) it skips with a message — the code-server run
// (`npm run test:e2e`) covers the same scenarios in a real VS Code 1.100.3.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';

const ROOT = path.resolve(__dirname, '../../..');

async function canDownload(): Promise<boolean> {
  try {
    const r = await fetch('https://update.code.visualstudio.com/api/releases/stable', {
      signal: AbortSignal.timeout(5000),
    });
    return r.ok;
  } catch {
    return false;
  }
}

async function main(): Promise<void> {
  const exe = process.env.VSCODE_EXECUTABLE;
  if (!exe && !(await canDownload())) {
    console.log(
      'SKIP electron extension tests: no VS Code build can be downloaded here ' +
        '(update.code.visualstudio.com is unreachable) and $VSCODE_EXECUTABLE is not set.',
    );
    console.log('     The same scenarios run in a real VS Code 1.100.3 via code-server: npm run test:e2e');
    return;
  }
  const { runTests } = await import('@vscode/test-electron');
  execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' });
  // The suite is bundled like the extension, so the extension host needs nothing from tsx.
  execFileSync(
    process.execPath,
    [
      path.join(ROOT, 'node_modules/esbuild/bin/esbuild'),
      path.join(__dirname, 'suite.ts'),
      '--bundle',
      '--platform=node',
      '--format=cjs',
      '--external:vscode',
      `--outfile=${path.join(ROOT, 'out/e2e-electron/suite.js')}`,
    ],
    { stdio: 'inherit' },
  );
  const ws = fs.mkdtempSync(path.join(os.tmpdir(), 'haqa-electron-ws-'));
  fs.cpSync(path.join(ROOT, 'examples/tiny-llama'), ws, {
    recursive: true,
    filter: (s) => !s.includes(`${path.sep}.haqa`),
  });
  const f = path.join(ws, 'haqa.yaml');
  fs.writeFileSync(f, fs.readFileSync(f, 'utf8').replace('  symmetric: true', '  symetric: true'));
  const userData = fs.mkdtempSync(path.join(os.tmpdir(), 'haqa-electron-user-'));
  fs.mkdirSync(path.join(userData, 'User'), { recursive: true });
  fs.writeFileSync(
    path.join(userData, 'User/settings.json'),
    JSON.stringify({ 'security.workspace.trust.enabled': false }),
  );
  try {
    await runTests({
      vscodeExecutablePath: exe,
      extensionDevelopmentPath: ROOT,
      extensionTestsPath: path.join(ROOT, 'out/e2e-electron/suite.js'),
      launchArgs: [ws, '--disable-extensions', `--user-data-dir=${userData}`],
    });
  } finally {
    fs.rmSync(ws, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
