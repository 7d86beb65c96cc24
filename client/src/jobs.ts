// Long server jobs (benchmark, tune, advise) as the user sees them: a cancellable notification with
// the server's work-done progress, a status bar item while anything runs, and a line in the log.
import * as vscode from 'vscode';
import {
  WorkDoneProgress,
  type LanguageClient,
  type WorkDoneProgressBegin,
  type WorkDoneProgressReport,
} from 'vscode-languageclient/node';
import type { RequestParam, RequestType } from 'vscode-languageserver-protocol';
import type { RecipeParams } from '../../server/src/lsp/protocol';

let counter = 0;

export class Jobs implements vscode.Disposable {
  private readonly status: vscode.StatusBarItem;
  private running = new Map<number, string>();

  constructor(private readonly log: vscode.LogOutputChannel) {
    this.status = vscode.window.createStatusBarItem('haqa.job', vscode.StatusBarAlignment.Left, 10);
    this.status.name = 'HAQA job';
    this.status.command = 'haqa.showLog';
  }

  /**
   * Send a job request with a fresh workDoneToken; progress on that token feeds the notification, and
   * pressing Cancel sends $/cancelRequest (the server aborts the run and its worker).
   */
  async run<P extends RecipeParams, R>(
    client: LanguageClient,
    title: string,
    type: RequestType<P, R, void>,
    params: Omit<P, 'workDoneToken'>,
  ): Promise<R | undefined> {
    const id = ++counter;
    const token = `haqa-${process.pid}-${id}`;
    this.running.set(id, title);
    this.update();
    this.log.info(`${title}: started`);
    const t0 = Date.now();
    try {
      return await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `HAQA: ${title}`, cancellable: true },
        async (progress, cancel) => {
          let last = 0;
          const sub = client.onProgress(WorkDoneProgress.type, token, (v) => {
            if (v.kind === 'end') return;
            const p = v as WorkDoneProgressBegin | WorkDoneProgressReport;
            const pct = typeof p.percentage === 'number' ? p.percentage : undefined;
            const increment = pct !== undefined && pct > last ? pct - last : undefined;
            if (pct !== undefined) last = Math.max(last, pct);
            if (p.message) {
              this.log.info(`${title}: ${p.message}`);
              this.running.set(id, `${title}: ${p.message}`);
              this.update();
            }
            progress.report({ message: p.message, increment });
          });
          try {
            return await client.sendRequest(type, { ...params, workDoneToken: token } as RequestParam<P>, cancel);
          } finally {
            sub.dispose();
          }
        },
      );
    } catch (err) {
      const msg = (err as Error).message ?? String(err);
      const cancelled = /cancel/i.test(msg);
      this.log[cancelled ? 'warn' : 'error'](`${title}: ${cancelled ? 'cancelled' : 'failed'}: ${msg}`);
      if (cancelled) void vscode.window.showInformationMessage(`HAQA: ${title} cancelled.`);
      else
        void vscode.window
          .showErrorMessage(`HAQA: ${title} failed: ${msg}`, 'Show Log')
          .then((a) => a && this.log.show());
      return undefined;
    } finally {
      this.log.info(`${title}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      this.running.delete(id);
      this.update();
    }
  }

  private update(): void {
    const titles = [...this.running.values()];
    if (titles.length === 0) {
      this.status.hide();
      return;
    }
    const more = titles.length > 1 ? ` (+${titles.length - 1})` : '';
    this.status.text = `$(sync~spin) HAQA: ${titles[titles.length - 1]}${more}`;
    this.status.tooltip = titles.join('\n') + '\nClick for the log';
    this.status.show();
  }

  dispose(): void {
    this.status.dispose();
  }
}
