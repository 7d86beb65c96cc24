// The results view: one webview panel showing the runs of a recipe (scatter with the Pareto front, a
// table, a per-layer map). The page is static HTML/JS/CSS from media/results/ under a strict CSP with a
// nonce; the data comes from the server (`haqa/runs`) and is posted in as a message — never inlined.
import * as crypto from 'node:crypto';
import * as vscode from 'vscode';
import type { RunsResult } from '../../server/src/lsp/protocol';

type Fetch = (uri: vscode.Uri | undefined) => Promise<RunsResult>;

export class ResultsPanel {
  private panel: vscode.WebviewPanel | undefined;
  private recipe: vscode.Uri | undefined;

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly log: vscode.LogOutputChannel,
    private readonly fetch: Fetch,
  ) {}

  async show(recipe: vscode.Uri | undefined): Promise<void> {
    this.recipe = recipe ?? this.recipe;
    if (!this.panel) {
      const media = vscode.Uri.joinPath(this.context.extensionUri, 'media', 'results');
      this.panel = vscode.window.createWebviewPanel('haqa.results', 'HAQA Results', vscode.ViewColumn.Beside, {
        enableScripts: true,
        localResourceRoots: [media],
        retainContextWhenHidden: false,
      });
      this.panel.iconPath = vscode.Uri.joinPath(this.context.extensionUri, 'media', 'icon.png');
      this.panel.webview.html = this.html(this.panel.webview, media);
      this.panel.onDidDispose(() => (this.panel = undefined));
      this.panel.webview.onDidReceiveMessage((m: { type: string; id?: string }) => {
        if (m.type === 'ready' || m.type === 'refresh') void this.post();
        else if (m.type === 'applyBest' && this.recipe)
          void vscode.commands.executeCommand('haqa.applyBestTrial', this.recipe);
      });
    } else {
      this.panel.reveal(undefined, true);
      await this.post();
    }
  }

  /** New runs were stored: redraw if the view is open. */
  refresh(): void {
    if (this.panel) void this.post();
  }

  private async post(): Promise<void> {
    if (!this.panel) return;
    try {
      const data = await this.fetch(this.recipe);
      this.panel.title = this.recipe ? `HAQA Results: ${vscode.workspace.asRelativePath(this.recipe)}` : 'HAQA Results';
      await this.panel.webview.postMessage({
        type: 'runs',
        recipe: this.recipe ? vscode.workspace.asRelativePath(this.recipe) : undefined,
        ...data,
      });
    } catch (err) {
      this.log.error(`results view: ${(err as Error).message}`);
      await this.panel.webview.postMessage({ type: 'error', message: (err as Error).message });
    }
  }

  private html(webview: vscode.Webview, media: vscode.Uri): string {
    const nonce = crypto.randomBytes(16).toString('base64');
    const asset = (f: string) => webview.asWebviewUri(vscode.Uri.joinPath(media, f)).toString();
    // No remote resources: scripts only with the nonce, styles and images from the extension only.
    const csp = [
      "default-src 'none'",
      `style-src ${webview.cspSource}`,
      `img-src ${webview.cspSource} data:`,
      `script-src 'nonce-${nonce}'`,
    ].join('; ');
    const chartLabel = 'decode latency against perplexity increase';
    return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${asset('results.css')}">
<title>HAQA Results</title>
</head>
<body>
<header><h1 id="title">HAQA results</h1><span id="summary"></span>
<button id="refresh" type="button">Refresh</button><button id="apply" type="button">Apply best trial</button></header>
<p id="empty" hidden>No runs yet. Run <b>HAQA: Benchmark</b> or <b>HAQA: Tune</b> on the recipe.</p>
<section><h2>Latency vs accuracy</h2><div id="chart" role="img" aria-label="${chartLabel}"></div></section>
<section><h2>Per-layer plan of the selected run</h2><div id="layers"></div></section>
<section><h2>Runs</h2><div id="table"></div></section>
<script nonce="${nonce}" src="${asset('results.js')}"></script>
</body>
</html>`;
  }
}
