// Runs inside VS Code's extension host (see launch.ts): a tiny runner, no mocha. The scenarios match
// test/e2e/run.ts, asserted through the API instead of the DOM: diagnostics, a quick fix, a benchmark
// whose code lens shows a measured figure, and the results view opening.
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';

async function until<T>(
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  ms: number,
  what: string,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const steps: [string, (doc: vscode.TextDocument) => Promise<void>][] = [
  [
    'the recipe diagnostics appear',
    async (doc) => {
      await until(
        () => vscode.languages.getDiagnostics(doc.uri).some((d) => /unknown key 'symetric'/.test(d.message)),
        60_000,
        'unknown-key diagnostic',
      );
    },
  ],
  [
    'a quick fix changes the text',
    async (doc) => {
      const d = vscode.languages.getDiagnostics(doc.uri).find((x) => /symetric/.test(x.message))!;
      const actions = await vscode.commands.executeCommand<vscode.CodeAction[]>(
        'vscode.executeCodeActionProvider',
        doc.uri,
        d.range,
        vscode.CodeActionKind.QuickFix.value,
      );
      const fix = actions.find((a) => /symmetric/.test(a.title));
      assert.ok(fix?.edit, `a fix among ${actions.map((a) => a.title).join(', ')}`);
      assert.ok(await vscode.workspace.applyEdit(fix.edit));
      assert.match(doc.getText(), /\n  symmetric: true/);
      await doc.save();
    },
  ],
  [
    'a benchmark completes and a code lens shows a measured figure',
    async (doc) => {
      await vscode.commands.executeCommand('haqa.benchmark', doc.uri);
      await until(
        async () => {
          const lenses = await vscode.commands.executeCommand<vscode.CodeLens[]>(
            'vscode.executeCodeLensProvider',
            doc.uri,
          );
          return lenses.some((l) => /ms\/token/.test(l.command?.title ?? '') && !/stale/.test(l.command?.title ?? ''));
        },
        300_000,
        'a measured code lens',
      );
    },
  ],
  [
    'the results view opens',
    async (doc) => {
      await vscode.commands.executeCommand('haqa.showResults', doc.uri);
      await until(
        () => vscode.window.tabGroups.all.some((g) => g.tabs.some((t) => /HAQA Results/.test(t.label))),
        20_000,
        'the results tab',
      );
    },
  ],
];

export async function run(): Promise<void> {
  const [file] = await vscode.workspace.findFiles('haqa.yaml');
  const doc = await vscode.workspace.openTextDocument(file);
  await vscode.window.showTextDocument(doc);
  let failed = 0;
  for (const [name, fn] of steps) {
    try {
      await fn(doc);
      console.log(`ok   ${name}`);
    } catch (err) {
      failed++;
      console.log(`FAIL ${name}: ${(err as Error).message}`);
    }
  }
  console.log(`${steps.length - failed} passed, ${failed} failed`);
  if (failed) throw new Error(`${failed} failed`);
}
