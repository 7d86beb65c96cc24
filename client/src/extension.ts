// The HAQA extension: VS Code glue only. The language server (dist/server.js) checks recipes, runs
// benchmarks and the tuner; this file starts it, forwards commands as custom requests, keeps the API key
// in SecretStorage, tells the server whether the workspace is trusted, and shows results.
import * as path from 'node:path';
import * as vscode from 'vscode';
import { LanguageClient, TransportKind, type LanguageClientOptions, type ServerOptions, type WorkspaceEdit } from 'vscode-languageclient/node';
import { Jobs } from './jobs';
import { ApiKey } from './apiKey';
import { ResultsPanel } from './resultsView';
import { RunQuickFixes } from './runActions';
import { redactingChannel } from './redact';
import { Notifications, Requests, UNTRUSTED_MESSAGE, type EditResult } from '../../server/src/lsp/protocol';

let client: LanguageClient | undefined;

const RECIPE_SELECTOR = [
  { language: 'yaml', pattern: '**/haqa.yaml' },
  { language: 'yaml', pattern: '**/*.haqa.yaml' },
];

/** What the e2e and extension tests read back (returned from activate). */
export interface HaqaApi {
  client(): LanguageClient | undefined;
  log: vscode.LogOutputChannel;
}

export async function activate(context: vscode.ExtensionContext): Promise<HaqaApi> {
  const log = vscode.window.createOutputChannel('HAQA', { log: true });
  const jobs = new Jobs(log);
  const apiKey = new ApiKey(context.secrets);
  context.subscriptions.push(log, jobs);
  log.info(`HAQA ${context.extension.packageJSON.version} in VS Code ${vscode.version}; trusted: ${vscode.workspace.isTrusted}`);

  const serverModule = context.asAbsolutePath(path.join('dist', 'server.js'));
  const serverOptions: ServerOptions = {
    run: { module: serverModule, transport: TransportKind.stdio },
    debug: { module: serverModule, transport: TransportKind.stdio, options: { execArgv: ['--nolazy', '--inspect=6010'] } },
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [...RECIPE_SELECTOR, { language: 'json', pattern: '**/config.json' }],
    synchronize: {
      // Models, their external data, and the files beside them change under a recipe: re-check it.
      fileEvents: ['**/*.onnx', '**/*.onnx.data', '**/config.json', '**/tokenizer.json'].map((g) => vscode.workspace.createFileSystemWatcher(g)),
    },
    initializationOptions: { trusted: vscode.workspace.isTrusted },
    outputChannel: log,
    traceOutputChannel: redactingChannel(log),
  };
  client = new LanguageClient('haqa', 'HAQA Language Server', serverOptions, clientOptions);
  await client.start();
  log.info('language server started');

  context.subscriptions.push(
    vscode.workspace.onDidGrantWorkspaceTrust(() => {
      log.info('workspace trusted: runs enabled');
      void client?.sendNotification(Notifications.trust, { trusted: true });
    }),
  );

  context.subscriptions.push(
    vscode.languages.registerCodeActionsProvider(RECIPE_SELECTOR, new RunQuickFixes(() => client), { providedCodeActionKinds: RunQuickFixes.kinds }),
  );

  const results = new ResultsPanel(context, log, async (uri) => (await client?.sendRequest(Requests.runs, { uri: uri?.toString() })) ?? { runs: [], storeFile: '' });

  /** The recipe a command acts on: the argument (code lens), the active editor, or the only one in the workspace. */
  async function recipeUri(arg?: unknown): Promise<vscode.Uri | undefined> {
    if (arg instanceof vscode.Uri) return arg;
    if (typeof arg === 'string') return vscode.Uri.parse(arg);
    const active = vscode.window.activeTextEditor?.document;
    if (active && vscode.languages.match(RECIPE_SELECTOR, active)) {
      if (active.isDirty) await active.save();
      return active.uri;
    }
    const found = await vscode.workspace.findFiles('{**/haqa.yaml,**/*.haqa.yaml}', '**/node_modules/**', 20);
    if (found.length === 1) return found[0];
    if (found.length === 0) {
      void vscode.window.showWarningMessage('HAQA: no haqa.yaml in this workspace. Open a recipe first.');
      return undefined;
    }
    const pick = await vscode.window.showQuickPick(found.map((u) => ({ label: vscode.workspace.asRelativePath(u), uri: u })), { placeHolder: 'Which recipe?' });
    return pick?.uri;
  }

  /** Runs need a trusted workspace; say so instead of sending a request the server would refuse. */
  function trusted(): boolean {
    if (vscode.workspace.isTrusted) return true;
    log.warn(UNTRUSTED_MESSAGE);
    void vscode.window.showWarningMessage(UNTRUSTED_MESSAGE, 'Manage Workspace Trust').then((a) => a && vscode.commands.executeCommand('workbench.trust.manage'));
    return false;
  }

  function cfg() {
    return vscode.workspace.getConfiguration('haqa');
  }

  async function agentParams() {
    const key = await apiKey.get();
    return {
      apiKey: key,
      model: cfg().get<string>('agent.model') || undefined,
      baseUrl: cfg().get<string>('agent.baseUrl') || undefined,
    };
  }

  async function applyEdit(result: EditResult | undefined): Promise<boolean> {
    if (!result || !client) return false;
    if (!result.edit) {
      void vscode.window.showInformationMessage(`HAQA: ${result.message}`);
      return false;
    }
    const edit = await client.protocol2CodeConverter.asWorkspaceEdit(result.edit as WorkspaceEdit);
    const ok = await vscode.workspace.applyEdit(edit);
    log.info(`${result.message}${ok ? '' : ' (the edit was rejected)'}`);
    return ok;
  }

  const command = (id: string, fn: (...args: unknown[]) => unknown) => context.subscriptions.push(vscode.commands.registerCommand(id, fn));

  command('haqa.benchmark', async (arg) => {
    const uri = await recipeUri(arg);
    if (!uri || !client || !trusted()) return;
    const r = await jobs.run(client, `Benchmark ${path.basename(uri.fsPath)}`, Requests.benchmark, {
      uri: uri.toString(),
      timeoutSeconds: cfg().get<number>('bench.timeoutSeconds'),
    });
    if (!r) return;
    log.info(`benchmark: ${r.headline}`);
    const a = await vscode.window.showInformationMessage(`HAQA: ${r.headline}`, 'Show Results');
    if (a) await results.show(uri);
    else results.refresh();
  });

  command('haqa.tune', async (arg) => {
    const uri = await recipeUri(arg);
    if (!uri || !client || !trusted()) return;
    const r = await jobs.run(client, `Tune ${path.basename(uri.fsPath)}`, Requests.tune, {
      uri: uri.toString(),
      trials: cfg().get<number>('tune.trials'),
      timeoutSeconds: cfg().get<number>('bench.timeoutSeconds'),
      ...(await agentParams()),
    });
    if (!r) return;
    log.info(`tune: ${r.outcome}, ${r.trials} trials; ${r.headline}`);
    const a = await vscode.window.showInformationMessage(`HAQA: tuning ${r.outcome} after ${r.trials} trials. ${r.headline}`, 'Apply Best Trial', 'Show Results');
    if (a === 'Apply Best Trial') await vscode.commands.executeCommand('haqa.applyBestTrial', uri);
    else if (a === 'Show Results') await results.show(uri);
  });

  command('haqa.advise', async (arg) => {
    const uri = await recipeUri(arg);
    if (!uri || !client || !trusted()) return;
    const r = await jobs.run(client, `Advise ${path.basename(uri.fsPath)}`, Requests.advise, { uri: uri.toString(), ...(await agentParams()) });
    if (!r) return;
    if (r.suggestions.length === 0) {
      void vscode.window.showInformationMessage('HAQA: no suggestions for this recipe.');
      return;
    }
    for (const s of r.suggestions) log.info(`advise (${r.source}): ${s.title} — ${s.rationale} ${JSON.stringify(s.knobs)}`);
    const pick = await vscode.window.showQuickPick(
      r.suggestions.map((s, i) => ({ label: s.title, detail: s.rationale, description: Object.entries(s.knobs).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' '), i })),
      { placeHolder: `Suggestions (${r.source}) — pick one to apply to the recipe`, matchOnDetail: true },
    );
    if (!pick) return;
    await applyEdit(await client.sendRequest(Requests.suggestionEdit, { uri: uri.toString(), knobs: r.suggestions[pick.i].knobs, title: r.suggestions[pick.i].title }));
  });

  command('haqa.applyBestTrial', async (arg) => {
    const uri = await recipeUri(arg);
    if (!uri || !client) return;
    await applyEdit(await client.sendRequest(Requests.bestTrialEdit, { uri: uri.toString() }));
  });

  command('haqa.applySuggestion', async (uriArg, knobs, title) => {
    const uri = await recipeUri(uriArg);
    if (!uri || !client) return;
    await applyEdit(await client.sendRequest(Requests.suggestionEdit, { uri: uri.toString(), knobs: knobs as Record<string, unknown>, title: title as string | undefined }));
  });

  command('haqa.showResults', async (arg) => {
    const uri = await recipeUri(arg);
    await results.show(uri);
  });

  command('haqa.pruneRuns', async (arg) => {
    const uri = await recipeUri(arg);
    if (!uri || !client) return;
    const keep = await vscode.window.showInputBox({ prompt: 'Keep the built models of how many newest runs? Older ones are deleted from .haqa/artifacts (the run records stay).', value: '20', validateInput: (v) => (/^\d+$/.test(v) ? undefined : 'a whole number') });
    if (keep === undefined) return;
    const r = await client.sendRequest(Requests.pruneRuns, { uri: uri.toString(), keep: Number(keep) });
    log.info(`prune: removed ${r.removed} artifacts, kept ${r.kept}`);
    void vscode.window.showInformationMessage(`HAQA: removed ${r.removed} built models, kept ${r.kept}.`);
    results.refresh();
  });

  command('haqa.setApiKey', async () => {
    const key = await vscode.window.showInputBox({
      prompt: 'Anthropic API key for the tuning agent (kept in VS Code SecretStorage, never in settings)',
      password: true,
      ignoreFocusOut: true,
      validateInput: (v) => (v.trim().length < 8 ? 'that does not look like a key' : undefined),
    });
    if (key === undefined) return;
    await apiKey.set(key.trim());
    log.info('API key stored in SecretStorage');
    void vscode.window.showInformationMessage('HAQA: API key stored.');
  });

  command('haqa.clearApiKey', async () => {
    await apiKey.clear();
    log.info('API key removed from SecretStorage');
    void vscode.window.showInformationMessage('HAQA: API key removed; the agent uses the offline optimizer.');
  });

  command('haqa.showLog', () => log.show());

  return { client: () => client, log };
}

export async function deactivate(): Promise<void> {
  await client?.stop();
  client = undefined;
}
