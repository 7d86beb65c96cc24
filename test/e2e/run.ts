// End-to-end tests in a real VS Code: `npm run test:e2e`.
// Builds and packages the .vsix, brings up code-server offline (scripts/e2e/setup.sh), installs the
// .vsix into a fresh extensions folder, opens a COPY of examples/tiny-llama and drives the workbench
// with Debian's chromium. Screenshots go to test-results/e2e/. Prints `N passed, M failed`.
//
// Env: E2E_SKIP_BUILD=1 reuses dist-vsix/haqa-<platform>-<arch>-<version>.vsix;
// E2E_ONLY=<substring> runs matching scenarios.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { command, editorText, open, openFile, ROOT, SHOTS, waitFor, webviewFrame, type Session } from './harness';

// The host's platform package, as scripts/package.mjs names it (code-server runs on this machine).
const HOST_TARGET = `${process.platform}-${process.arch}`;
const VERSION = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const VSIX = path.join(ROOT, 'dist-vsix', `haqa-${HOST_TARGET}-${VERSION}.vsix`);
const EXAMPLE = path.join(ROOT, 'examples/tiny-llama');

interface Scenario {
  name: string;
  trust: boolean;
  /** Change the copy before VS Code opens it. */
  prepare?(folder: string): void;
  steps: { name: string; run(s: Session): Promise<void> }[];
}

function sh(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { cwd: ROOT, stdio: 'inherit' });
}

/** A copy of the example the test may change: model, tokenizer, data; no .haqa store from earlier runs. */
function copyExample(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'haqa-e2e-ws-'));
  fs.cpSync(EXAMPLE, dir, { recursive: true, filter: (src) => !src.includes(`${path.sep}.haqa`) });
  return dir;
}

async function problemsText(s: Session): Promise<string> {
  return s.page.evaluate(() => (document.querySelector('.markers-panel') as HTMLElement | null)?.innerText ?? '');
}

async function codeLenses(s: Session): Promise<string[]> {
  return s.page.evaluate(() =>
    Array.from(document.querySelectorAll('.editor-instance .codelens-decoration')).map(
      (e) => (e as HTMLElement).innerText,
    ),
  );
}

async function notifications(s: Session): Promise<string> {
  return s.page.evaluate(() =>
    Array.from(
      document.querySelectorAll(
        '.notifications-toasts .notification-toast, .notifications-center .notification-list-item',
      ),
    )
      .map((e) => (e as HTMLElement).innerText)
      .join('\n'),
  );
}

const TYPO = 'symetric: true';

/** Misspell a key in the copy: the unknown-key diagnostic and its quick fix are the known answer. */
function misspell(folder: string): void {
  const f = path.join(folder, 'haqa.yaml');
  const text = fs.readFileSync(f, 'utf8');
  if (!text.includes('  symmetric: true'))
    throw new Error('the example recipe no longer has `symmetric: true` to misspell');
  fs.writeFileSync(f, text.replace('  symmetric: true', `  ${TYPO}`));
}

const trusted: Scenario = {
  name: 'trusted',
  trust: false, // Workspace Trust off = everything trusted
  prepare: misspell,
  steps: [
    {
      name: 'the extension activates and the recipe opens',
      async run(s) {
        await openFile(s.page, 'haqa.yaml');
        await waitFor(
          () =>
            /HAQA .* in VS Code 1\.\d+/.test(s.logs(/HAQA\.log$/)) &&
            /language server started/.test(s.logs(/HAQA\.log$/)),
          60_000,
          () => `no activation in the HAQA log:\n${s.logs(/exthost\.log$|HAQA\.log$/).slice(-3000)}`,
        );
        await s.shot('01-recipe-open');
      },
    },
    {
      name: 'the recipe diagnostics appear in the Problems panel',
      async run(s) {
        await command(s.page, 'View: Focus Problems');
        await waitFor(
          async () => /unknown key 'symetric'/.test(await problemsText(s)),
          60_000,
          () => 'no unknown-key problem in the Problems panel',
        );
        await s.shot('02-problems');
      },
    },
    {
      name: 'a quick fix changes the text',
      async run(s) {
        // Put the cursor on the misspelt key, ask for quick fixes, take the one that renames it.
        await openFile(s.page, 'haqa.yaml');
        await command(s.page, 'Go to Line/Column...');
        const lineNo =
          fs
            .readFileSync(path.join(s.folder, 'haqa.yaml'), 'utf8')
            .split('\n')
            .findIndex((l) => l.includes(TYPO)) + 1;
        await s.page.keyboard.type(`${lineNo}:4`);
        await s.page.keyboard.press('Enter');
        await s.page.keyboard.press('Control+.');
        // The menu sits under a pointer-blocking overlay: choose with the keyboard, as users do.
        const focused = s.page.locator('.action-widget .monaco-list-row.focused');
        await focused.waitFor({ timeout: 20_000 });
        await s.shot('03-quick-fix-menu');
        for (let i = 0; i < 5 && !/to 'symmetric'/.test((await focused.getAttribute('aria-label')) ?? ''); i++)
          await s.page.keyboard.press('ArrowDown');
        await s.page.keyboard.press('Enter');
        await waitFor(
          async () => {
            const t = await editorText(s.page);
            return t.includes('symmetric: true') && !t.includes(TYPO);
          },
          10_000,
          () => 'the editor text still has the typo',
        );
        await waitFor(
          async () => !/unknown key 'symetric'/.test(await problemsText(s)),
          30_000,
          () => 'the problem did not go away after the fix',
        );
        await command(s.page, 'File: Save');
        await s.shot('04-quick-fix-applied');
      },
    },
    {
      name: 'a benchmark run completes and a code lens shows a measured figure',
      async run(s) {
        // Monaco renders only the lines on screen: show the top, where the lenses are.
        await openFile(s.page, 'haqa.yaml');
        await s.page.keyboard.press('Control+Home');
        await waitFor(
          async () => (await codeLenses(s)).some((t) => /Benchmark/.test(t)),
          30_000,
          async () => `no Benchmark code lens on the recipe; lenses: ${JSON.stringify(await codeLenses(s))}`,
        );
        await command(s.page, 'HAQA: Benchmark Recipe');
        await s.page.waitForTimeout(1500);
        await s.shot('05-benchmark-running');
        await waitFor(
          async () => (await codeLenses(s)).some((t) => /ms\/token|ms\b/.test(t) && /fp32/.test(t)),
          240_000,
          async () =>
            'no measured code lens; lenses: ' +
            `${JSON.stringify(await codeLenses(s))}\n${s.logs(/HAQA\.log$/).slice(-3000)}`,
          1000,
        );
        await s.shot('06-benchmark-lens');
      },
    },
    {
      name: 'the results view renders the runs',
      async run(s) {
        await command(s.page, 'HAQA: Show Results');
        const frame = await webviewFrame(s.page, 'body[data-rendered]', 30_000);
        const n = Number(await frame.evaluate(() => document.body.dataset.rendered));
        if (!(n >= 1)) throw new Error(`the results view shows ${n} runs`);
        const rows = await frame.locator('table.runs tbody tr').count();
        if (rows < 1) throw new Error('the results table is empty');
        await s.shot('07-results-view');
      },
    },
    {
      name: 'editing the recipe marks the measured lens stale',
      async run(s) {
        await openFile(s.page, 'haqa.yaml');
        const lines = fs.readFileSync(path.join(s.folder, 'haqa.yaml'), 'utf8').split('\n');
        const i = lines.findIndex((l) => l === '  bits: 4');
        if (i < 0) throw new Error('no `  bits: 4` line in the recipe');
        await command(s.page, 'Go to Line/Column...');
        await s.page.keyboard.type(`${i + 1}:${lines[i].length + 1}`);
        await s.page.keyboard.press('Enter');
        await s.page.keyboard.press('Backspace');
        await s.page.keyboard.type('8');
        await waitFor(
          async () => (await codeLenses(s)).some((t) => /stale/.test(t)),
          30_000,
          async () => `no stale lens; lenses: ${JSON.stringify(await codeLenses(s))}`,
        );
        await s.shot('08-lens-stale');
      },
    },
  ],
};

const restricted: Scenario = {
  name: 'restricted',
  trust: true,
  prepare: misspell,
  steps: [
    {
      name: 'restricted mode: diagnostics still work, a benchmark is refused',
      async run(s) {
        // The trust dialog comes up on a new folder: answer "No" to stay in Restricted Mode.
        const no = s.page.getByRole('button', { name: /No, I don't trust/ });
        await no.waitFor({ timeout: 30_000 });
        await s.shot('10-trust-dialog');
        await no.click();
        await openFile(s.page, 'haqa.yaml');
        await command(s.page, 'View: Focus Problems');
        await waitFor(
          async () => /unknown key 'symetric'/.test(await problemsText(s)),
          60_000,
          () => 'no diagnostics in Restricted Mode',
        );
        await command(s.page, 'HAQA: Benchmark Recipe');
        await waitFor(
          async () => /Restricted Mode/.test(await notifications(s)),
          20_000,
          () => 'no Restricted Mode message',
        );
        if (fs.existsSync(path.join(s.folder, '.haqa/runs/runs.jsonl')))
          throw new Error('a run was recorded in Restricted Mode');
        await s.shot('11-restricted-refused');
      },
    },
  ],
};

async function main(): Promise<void> {
  const t0 = Date.now();
  const only = process.env.E2E_ONLY;
  if (!process.env.E2E_SKIP_BUILD || !fs.existsSync(VSIX)) sh('node', ['scripts/package.mjs', '--target', HOST_TARGET]);
  sh('bash', ['scripts/e2e/setup.sh']);
  fs.rmSync(SHOTS, { recursive: true, force: true });
  let passed = 0;
  let failed = 0;
  for (const sc of [trusted, restricted]) {
    if (only && !sc.name.includes(only)) continue;
    const folder = copyExample();
    let s: Session | undefined;
    try {
      sc.prepare?.(folder);
      s = await open({ vsix: VSIX, folder, trust: sc.trust });
      for (const step of sc.steps) {
        const t = Date.now();
        try {
          await step.run(s);
          passed++;
          console.log(`ok   ${sc.name}: ${step.name} (${((Date.now() - t) / 1000).toFixed(1)} s)`);
        } catch (err) {
          failed++;
          console.log(`FAIL ${sc.name}: ${step.name}\n     ${(err as Error).message.split('\n').join('\n     ')}`);
          await s.shot(`FAIL-${sc.name}-${step.name.replace(/\W+/g, '-')}`).catch(() => {});
        }
      }
      if (failed) console.log(s.logs(/HAQA\.log$|exthost\.log$/).slice(-4000));
    } catch (err) {
      failed++;
      console.log(`FAIL ${sc.name}: setup\n     ${(err as Error).stack}`);
    } finally {
      await s?.close();
      fs.rmSync(folder, { recursive: true, force: true });
    }
  }
  console.log(`e2e: ${((Date.now() - t0) / 1000).toFixed(0)} s, screenshots in ${path.relative(ROOT, SHOTS)}/`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

void main();
