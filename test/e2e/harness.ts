// Drives a real VS Code (code-server 4.100.3 = VS Code 1.100.3) through Debian's chromium with
// playwright-core: install the packaged .vsix into a fresh extensions folder, open a folder, and offer
// the few workbench gestures the scenarios need (command palette, quick open, panels, webview frames).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium, type Browser, type Frame, type Locator, type Page } from 'playwright-core';

export const ROOT = path.resolve(__dirname, '../..');
export const CODE_SERVER = path.join(ROOT, '.cache/e2e/code-server/node_modules/code-server/out/node/entry.js');
export const SHOTS = path.join(ROOT, 'test-results/e2e');

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Session {
  page: Page;
  folder: string;
  userData: string;
  close(): Promise<void>;
  shot(name: string): Promise<string>;
  /** Text of the files under userData/logs whose path matches (extension host, our output channel). */
  logs(match: RegExp): string;
}

export interface SessionOptions {
  vsix: string;
  /** Folder to open (a copy the scenario may change). */
  folder: string;
  /** Workspace Trust on: a new folder starts in Restricted Mode until trusted. */
  trust: boolean;
  settings?: Record<string, unknown>;
}

function walk(dir: string, out: string[] = []): string[] {
  for (const e of fs.existsSync(dir) ? fs.readdirSync(dir, { withFileTypes: true }) : []) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else out.push(p);
  }
  return out;
}

export async function open(opts: SessionOptions): Promise<Session> {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'haqa-e2e-'));
  const userData = path.join(base, 'user');
  const extensions = path.join(base, 'extensions');
  fs.mkdirSync(path.join(userData, 'User'), { recursive: true });
  const settings = {
    'security.workspace.trust.enabled': opts.trust,
    'security.workspace.trust.startupPrompt': 'always',
    'workbench.startupEditor': 'none',
    'workbench.welcomePage.walkthroughs.openOnInstall': false,
    'workbench.tips.enabled': false,
    'telemetry.telemetryLevel': 'off',
    'extensions.autoCheckUpdates': false,
    'extensions.autoUpdate': false,
    'update.mode': 'none',
    'window.commandCenter': false,
    'editor.codeLens': true,
    'editor.minimap.enabled': false,
    'files.autoSave': 'off',
    ...opts.settings,
  };
  fs.writeFileSync(path.join(userData, 'User/settings.json'), JSON.stringify(settings, null, 2));
  const common = ['--user-data-dir', userData, '--extensions-dir', extensions];
  const inst = spawnSync(process.execPath, [CODE_SERVER, ...common, '--install-extension', opts.vsix], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (inst.status !== 0 || !fs.readdirSync(extensions).some((d) => d.startsWith('haqa.haqa'))) {
    throw new Error(`installing ${opts.vsix} failed (${inst.status}):\n${inst.stdout}\n${inst.stderr}`);
  }

  const port = await freePort();
  const server: ChildProcess = spawn(
    process.execPath,
    [
      CODE_SERVER,
      '--bind-addr',
      `127.0.0.1:${port}`,
      '--auth',
      'none',
      ...common,
      '--disable-telemetry',
      '--disable-update-check',
      opts.folder,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HAQA_E2E: '1' } },
  );
  let serverOut = '';
  server.stdout!.on('data', (d) => (serverOut += d));
  server.stderr!.on('data', (d) => (serverOut += d));
  await waitFor(
    async () => {
      try {
        const r = await fetch(`http://127.0.0.1:${port}/healthz`);
        return r.ok;
      } catch {
        return false;
      }
    },
    60_000,
    () => `code-server did not come up:\n${serverOut}`,
  );

  const browser: Browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(opts.folder)}`);
  await page.waitForSelector('.monaco-workbench', { timeout: 60_000 });
  fs.mkdirSync(SHOTS, { recursive: true });
  return {
    page,
    folder: opts.folder,
    userData,
    async close() {
      await browser.close().catch(() => {});
      server.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 300));
      if (server.exitCode === null) server.kill('SIGKILL');
      fs.rmSync(base, { recursive: true, force: true });
    },
    async shot(name) {
      const file = path.join(SHOTS, `${name}.png`);
      await page.screenshot({ path: file });
      return file;
    },
    logs(match) {
      return walk(path.join(userData, 'logs'))
        .filter((f) => match.test(f))
        .map((f) => `--- ${path.relative(userData, f)}\n${fs.readFileSync(f, 'utf8')}`)
        .join('\n');
    },
  };
}

export async function waitFor<T>(
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  ms: number,
  why: () => string | Promise<string>,
  every = 250,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms: ${await why()}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** Whether `locator` shows up within `ms`. */
async function shows(locator: Locator, ms: number): Promise<boolean> {
  return locator.waitFor({ state: 'visible', timeout: ms }).then(
    () => true,
    () => false,
  );
}

/** Give keyboard focus back to the workbench when a webview's iframe holds it, as a click on the title bar does. */
async function focusWorkbench(page: Page): Promise<void> {
  const bar = await page.locator('.part.titlebar').first().boundingBox();
  if (bar) await page.mouse.click(bar.x + bar.width / 2, bar.y + bar.height / 2);
}

/** Opens the quick input with `key` (F1, Control+P) and types `text`; a webview holding the keys is handled. */
async function quickInput(page: Page, key: string, text: string): Promise<void> {
  const input = page.locator('.quick-input-widget input');
  // The widget can close again between showing and typing (focus taken by a webview or a notification
  // as a run ends): then it is opened again, up to three times, rather than waiting 30 s on a hidden input.
  for (let attempt = 1; ; attempt++) {
    await page.keyboard.press('Escape');
    await page.keyboard.press(key);
    if (!(await shows(input, 3000))) {
      await focusWorkbench(page);
      await page.keyboard.press(key);
      await input.waitFor({ state: 'visible', timeout: 10_000 });
    }
    try {
      await input.fill(text, { timeout: 5000 });
      return;
    } catch (err) {
      if (attempt >= 3) throw err;
      await focusWorkbench(page);
    }
  }
}

/** Run a command by its palette title (F1, type, Enter). */
export async function command(page: Page, title: string): Promise<void> {
  await quickInput(page, 'F1', `>${title}`);
  const row = page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first();
  await row.waitFor({ timeout: 10_000 });
  await row.click();
}

/** Open a workspace file by name with Quick Open, and wait until its editor is the active, visible one. */
export async function openFile(page: Page, name: string): Promise<void> {
  await quickInput(page, 'Control+P', name);
  const row = page.locator('.quick-input-list .monaco-list-row', { hasText: name }).first();
  await row.waitFor({ timeout: 15_000 });
  await row.click();
  // A tab of that name may be open but behind a webview in its group: the active tab must be the file's
  // (its label starts with the name; the results view's "HAQA Results: haqa.yaml" only contains it).
  const active = page.locator(`.tab.active[aria-label^="${name}"]`).first();
  if (!(await shows(active, 5000))) {
    await page.locator(`.tab[aria-label^="${name}"]`).first().click();
    await active.waitFor({ timeout: 10_000 });
  }
  // The tab can be active in its group while focus stays in a webview of another group (then "Go to Line"
  // answers "Open a text editor first"): clicking the tab focuses its editor; the window title follows focus.
  await active.click();
  await page.waitForFunction((n) => document.title.replace(/^● /, '').startsWith(n), name, { timeout: 10_000 });
  await page.locator('.editor-instance .monaco-editor .view-lines').filter({ visible: true }).first().waitFor();
}

/** The visible text of the active editor (Monaco renders only the lines on screen). */
export async function editorText(page: Page): Promise<string> {
  return page.evaluate(() => {
    const lines = Array.from(
      document.querySelectorAll('.editor-instance .monaco-editor .view-lines .view-line'),
    ) as HTMLElement[];
    return lines
      .map((l) => ({ top: parseFloat(l.style.top || '0'), text: (l.textContent ?? '').replace(/\u00a0/g, ' ') }))
      .sort((a, b) => a.top - b.top)
      .map((l) => l.text)
      .join('\n');
  });
}

/** The webview frame whose document matches `selector` (webviews are nested iframes). */
export async function webviewFrame(page: Page, selector: string, ms = 30_000): Promise<Frame> {
  return waitFor(
    async () => {
      for (const f of page.frames()) {
        try {
          if (await f.$(selector)) return f;
        } catch {
          /* frame navigating */
        }
      }
      return undefined;
    },
    ms,
    () => `no webview frame with ${selector}`,
  );
}
