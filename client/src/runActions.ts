// Quick fixes on run diagnostics (accuracy budget exceeded, slower than fp32, regression, memory): the
// best trial of the last tuning session, as one WorkspaceEdit the server computes with the
// comment-keeping recipe edits, so Undo takes it back in one step. The recipe's own quick fixes
// (typos, block sizes…) come from the server's code actions; these complement them.
import * as vscode from 'vscode';
import type { LanguageClient, WorkspaceEdit } from 'vscode-languageclient/node';
import { Requests } from '../../server/src/lsp/protocol';

export class RunQuickFixes implements vscode.CodeActionProvider {
  static readonly kinds = [vscode.CodeActionKind.QuickFix];

  constructor(private readonly client: () => LanguageClient | undefined) {}

  async provideCodeActions(
    doc: vscode.TextDocument,
    _range: vscode.Range,
    ctx: vscode.CodeActionContext,
    token: vscode.CancellationToken,
  ): Promise<vscode.CodeAction[]> {
    const runDiags = ctx.diagnostics.filter(
      (d) => d.source === 'haqa' && typeof d.code === 'string' && d.code.startsWith('run-'),
    );
    const client = this.client();
    if (runDiags.length === 0 || !client) return [];
    const out: vscode.CodeAction[] = [];
    const r = await client
      .sendRequest(Requests.bestTrialEdit, { uri: doc.uri.toString() }, token)
      .catch(() => undefined);
    if (r?.edit) {
      const a = new vscode.CodeAction(`HAQA: ${r.message}`, vscode.CodeActionKind.QuickFix);
      a.edit = await client.protocol2CodeConverter.asWorkspaceEdit(r.edit as WorkspaceEdit);
      a.diagnostics = runDiags;
      a.isPreferred = true;
      out.push(a);
    }
    const tune = new vscode.CodeAction(
      'HAQA: tune this recipe (search for a setting within the budget)',
      vscode.CodeActionKind.QuickFix,
    );
    tune.command = { command: 'haqa.tune', title: 'Tune', arguments: [doc.uri] };
    tune.diagnostics = runDiags;
    out.push(tune);
    return out;
  }
}
