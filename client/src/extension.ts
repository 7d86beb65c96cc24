// The HAQA extension: VS Code glue only. The language server (dist/server.js) checks recipes, runs
// benchmarks and the tuner; this file starts it, forwards commands as custom requests, keeps the API key
// in SecretStorage, tells the server whether the workspace is trusted, and shows results.
import * as path from 'node:path';
import * as vscode from 'vscode';
import {
  LanguageClient,
  TransportKind,
  type LanguageClientOptions,
  type ServerOptions,
  type WorkspaceEdit,
} from 'vscode-languageclient/node';
import { Jobs } from './jobs';
import { ApiKey } from './apiKey';
import { keyFor, trustedBaseUrl } from './keyHost';
import { checkApiKey, KEYS_PAGE } from './keyCheck';
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
  log.info(
    `HAQA ${context.extension.packageJSON.version} in VS Code ` +
      `${vscode.version}; trusted: ${vscode.workspace.isTrusted}`,
  );

  const serverModule = context.asAbsolutePath(path.join('dist', 'server.js'));
  const serverOptions: ServerOptions = {
    run: { module: serverModule, transport: TransportKind.stdio },
    debug: {
      module: serverModule,
      transport: TransportKind.stdio,
      options: { execArgv: ['--nolazy', '--inspect=6010'] },
    },
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [...RECIPE_SELECTOR, { language: 'json', pattern: '**/config.json' }],
    synchronize: {
      // Models, their external data, and the files beside them change under a recipe: re-check it.
      fileEvents: ['**/*.onnx', '**/*.onnx.data', '**/config.json', '**/tokenizer.json'].map((g) =>
        vscode.workspace.createFileSystemWatcher(g),
      ),
    },
    initializationOptions: { trusted: vscode.workspace.isTrusted },
    outputChannel: log,
    traceOutputChannel: redactingChannel(log),
  };
  client = new LanguageClient('haqa', 'HAQA Language Server', serverOptions, clientOptions);
  await client.start();
  log.info('language server started');

  // The walkthrough's "Open a recipe" step ticks on this key. VS Code 1.100 knows no `onLanguage:` completion
  // event, and evaluates `onContext:` against the window's context, where the editor-scoped resourceFilename
  // is not set: a key of our own, true while a recipe is the active editor, is what it can see change.
  const recipeActive = (e: vscode.TextEditor | undefined) =>
    void vscode.commands.executeCommand(
      'setContext',
      'haqa.recipeActive',
      !!e && vscode.languages.match(RECIPE_SELECTOR, e.document) > 0,
    );
  recipeActive(vscode.window.activeTextEditor);
  context.subscriptions.push(vscode.window.onDidChangeActiveTextEditor(recipeActive));

  context.subscriptions.push(
    vscode.workspace.onDidGrantWorkspaceTrust(() => {
      log.info('workspace trusted: runs enabled');
      void client?.sendNotification(Notifications.trust, { trusted: true });
    }),
  );

  context.subscriptions.push(
    vscode.languages.registerCodeActionsProvider(RECIPE_SELECTOR, new RunQuickFixes(() => client), {
      providedCodeActionKinds: RunQuickFixes.kinds,
    }),
  );

  const results = new ResultsPanel(
    context,
    log,
    async (uri) => (await client?.sendRequest(Requests.runs, { uri: uri?.toString() })) ?? { runs: [], storeFile: '' },
  );

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
    const pick = await vscode.window.showQuickPick(
      found.map((u) => ({ label: vscode.workspace.asRelativePath(u), uri: u })),
      { placeHolder: 'Which recipe?' },
    );
    return pick?.uri;
  }

  /** Runs need a trusted workspace; say so instead of sending a request the server would refuse. */
  function trusted(): boolean {
    if (vscode.workspace.isTrusted) return true;
    log.warn(UNTRUSTED_MESSAGE);
    void vscode.window
      .showWarningMessage(UNTRUSTED_MESSAGE, 'Manage Workspace Trust')
      .then((a) => a && vscode.commands.executeCommand('workbench.trust.manage'));
    return false;
  }

  function cfg() {
    return vscode.workspace.getConfiguration('haqa');
  }

  /** Key, model and base URL for the agent; undefined when the user declined to send the key to a non-default host. */
  async function agentParams(key?: string) {
    // The SDK falls back to ANTHROPIC_BASE_URL: that is where the key would go, so it is confirmed too.
    const baseUrl =
      trustedBaseUrl(cfg().inspect<string>('agent.baseUrl')) ?? (process.env.ANTHROPIC_BASE_URL || undefined);
    const sent = await keyFor(key ?? (await apiKey.get()), baseUrl, context.globalState, async (host) => {
      const yes = 'Send Key to ' + host;
      const a = await vscode.window.showWarningMessage(
        `HAQA: send your Anthropic API key to ${host}?`,
        {
          modal: true,
          detail:
            `The API base URL is ${baseUrl}, not api.anthropic.com. Only continue if you run or trust that server; ` +
            'the answer is remembered for this host.',
        },
        yes,
      );
      return a === yes;
    });
    if (sent.refused) {
      log.warn(sent.refused);
      void vscode.window.showWarningMessage(`HAQA: ${sent.refused}.`);
      return undefined;
    }
    return { apiKey: sent.key, model: cfg().get<string>('agent.model') || undefined, baseUrl };
  }

  /**
   * Applies a server edit; `confirm`: first a modal that shows what changes (the lines the edit writes) with
   * Apply / Cancel. Not VS Code's refactor preview: that starts `needsConfirmation` edits unticked, so its
   * Apply applied nothing unless each edit was ticked first (found by the code-server e2e). Undo reverts it.
   */
  async function applyEdit(result: EditResult | undefined, confirm = false): Promise<boolean> {
    if (!result || !client) return false;
    if (!result.edit) {
      void vscode.window.showInformationMessage(`HAQA: ${result.message}`);
      return false;
    }
    const edit = await client.protocol2CodeConverter.asWorkspaceEdit(result.edit as WorkspaceEdit);
    if (confirm) {
      const yes = 'Apply';
      const answer = await vscode.window.showInformationMessage(
        `HAQA: ${result.message}`,
        { modal: true, detail: editSummary(edit) },
        yes,
      );
      if (answer !== yes) return false;
    }
    const ok = await vscode.workspace.applyEdit(edit);
    log.info(`${result.message}${ok ? '' : ' (the edit was rejected)'}`);
    return ok;
  }

  const command = (id: string, fn: (...args: unknown[]) => unknown) =>
    context.subscriptions.push(vscode.commands.registerCommand(id, fn));

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
    // Budget and agent for this run. The recipe's search.trials wins over the
    // haqa.tune.trials setting unless a number is picked here.
    const setting = cfg().get<number>('tune.trials') ?? 12;
    const budget = await vscode.window.showQuickPick(
      [
        {
          label: 'As the recipe says',
          description: `search.trials, else ${setting} (setting haqa.tune.trials)`,
          n: undefined,
        },
        ...[5, 12, 25, 50].map((n) => ({
          label: `${n} trials`,
          description: 'for this run, over the recipe’s search.trials',
          n,
        })),
      ],
      { title: 'HAQA: Tune — trial budget', placeHolder: 'Each trial compresses and benchmarks the model' },
    );
    if (!budget) return;
    const hasKey = !!(await apiKey.get());
    const who = hasKey
      ? await vscode.window.showQuickPick(
          [
            { label: 'As the recipe says', description: 'search.agent', agent: undefined },
            {
              label: 'Claude',
              description: 'the LLM agent (sends the recipe and layer names to the API)',
              agent: 'claude' as const,
            },
            { label: 'Offline optimizer', description: 'nothing leaves this machine', agent: 'offline' as const },
          ],
          { title: 'HAQA: Tune — who proposes the trials' },
        )
      : { agent: 'offline' as const };
    if (!who) return;
    const agent = who.agent === 'offline' ? { apiKey: undefined } : await agentParams();
    if (!agent) return;
    const r = await jobs.run(client, `Tune ${path.basename(uri.fsPath)}`, Requests.tune, {
      uri: uri.toString(),
      trials: budget.n ?? setting,
      trialsChosen: budget.n !== undefined,
      agent: who.agent,
      timeoutSeconds: cfg().get<number>('bench.timeoutSeconds'),
      ...agent,
    });
    if (!r) return;
    log.info(`tune: ${r.outcome}, ${r.trials} trials; ${r.headline}`);
    // Modal: a toast hid itself before it could be clicked; this stays until answered.
    const a = await vscode.window.showInformationMessage(
      `HAQA: tuning ${r.outcome} after ${r.trials} trials`,
      { modal: true, detail: r.headline },
      'Apply Best Trial',
      'Show Results',
    );
    if (a === 'Apply Best Trial') await vscode.commands.executeCommand('haqa.applyBestTrial', uri);
    else if (a === 'Show Results') await results.show(uri);
  });

  command('haqa.advise', async (arg) => {
    const uri = await recipeUri(arg);
    if (!uri || !client || !trusted()) return;
    const agent = await agentParams();
    if (!agent) return;
    const r = await jobs.run(client, `Advise ${path.basename(uri.fsPath)}`, Requests.advise, {
      uri: uri.toString(),
      ...agent,
    });
    if (!r) return;
    if (r.suggestions.length === 0) {
      void vscode.window.showInformationMessage('HAQA: no suggestions for this recipe.');
      return;
    }
    for (const s of r.suggestions)
      log.info(`advise (${r.source}): ${s.title} — ${s.rationale} ${JSON.stringify(s.knobs)}`);
    const rules = r.source === 'rules';
    const items: (vscode.QuickPickItem & { i: number })[] = r.suggestions.map((s, i) => ({
      label: s.title,
      detail: s.rationale,
      description: Object.entries(s.knobs)
        .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
        .join(' '),
      i,
    }));
    // Without a key the advice comes from HAQA's built-in rules (the model's
    // layers and this machine), not Claude: say so, offer a key.
    if (rules) {
      items.push({
        label: '$(key) Set an Anthropic API key for Claude’s advice…',
        i: -1,
        detail:
          'These suggestions come from HAQA’s built-in rules; with a key, ' +
          'Claude reads the recipe and the model’s layers and suggests more.',
      });
    }
    const pick = await vscode.window.showQuickPick(items, {
      placeHolder: rules
        ? 'Suggestions from HAQA’s built-in rules (no API key set) — pick one to apply'
        : `Suggestions from ${r.source === 'claude' ? 'Claude' : r.source} — pick one to apply to the recipe`,
      matchOnDetail: true,
    });
    if (!pick) return;
    if (pick.i < 0) {
      await vscode.commands.executeCommand('haqa.setApiKey');
      return;
    }
    await applyEdit(
      await client.sendRequest(Requests.suggestionEdit, {
        uri: uri.toString(),
        knobs: r.suggestions[pick.i].knobs,
        title: r.suggestions[pick.i].title,
      }),
    );
  });

  command('haqa.applyBestTrial', async (arg) => {
    const uri = await recipeUri(arg);
    if (!uri || !client) return;
    await applyEdit(await client.sendRequest(Requests.bestTrialEdit, { uri: uri.toString() }), true);
  });

  command('haqa.applySuggestion', async (uriArg, knobs, title) => {
    const uri = await recipeUri(uriArg);
    if (!uri || !client) return;
    await applyEdit(
      await client.sendRequest(Requests.suggestionEdit, {
        uri: uri.toString(),
        knobs: knobs as Record<string, unknown>,
        title: title as string | undefined,
      }),
    );
  });

  command('haqa.showResults', async (arg) => {
    const uri = await recipeUri(arg);
    await results.show(uri);
  });

  command('haqa.pruneRuns', async (arg) => {
    const uri = await recipeUri(arg);
    if (!uri || !client) return;
    const keep = await vscode.window.showInputBox({
      prompt:
        'Keep the built models of how many newest runs? Older ones ' +
        'are deleted from .haqa/artifacts (the run records stay).',
      value: '20',
      validateInput: (v) => (/^\d+$/.test(v) ? undefined : 'a whole number'),
    });
    if (keep === undefined) return;
    const r = await client.sendRequest(Requests.pruneRuns, { uri: uri.toString(), keep: Number(keep) });
    log.info(`prune: removed ${r.removed} artifacts, kept ${r.kept}`);
    void vscode.window.showInformationMessage(`HAQA: removed ${r.removed} built models, kept ${r.kept}.`);
    results.refresh();
  });

  command('haqa.setApiKey', async () => {
    const input = await vscode.window.showInputBox({
      title: 'HAQA: Anthropic API key',
      prompt:
        `For the tuning agent and Advise. Create one at ${KEYS_PAGE}. ` +
        'Kept in VS Code SecretStorage, never in settings.',
      placeHolder: 'sk-ant-…',
      password: true,
      ignoreFocusOut: true,
      validateInput: (v) =>
        v.trim().length < 8 ? 'that does not look like a key (they start with sk-ant-)' : undefined,
    });
    if (input === undefined) return;
    const key = input.trim();
    // Check it with one cheap request (count_tokens) to the configured host, after the host is confirmed.
    const agent = await agentParams(key);
    if (!agent) return;
    const check = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: 'HAQA: checking the API key…' },
      () => checkApiKey(key, { baseUrl: agent.baseUrl, model: agent.model ?? 'claude-sonnet-4-6' }),
    );
    if (!check.ok) {
      log.warn(`API key check: ${check.message}`);
      const store = 'Store Anyway',
        open = 'Open Anthropic Console';
      const a = await vscode.window.showWarningMessage(`HAQA: ${check.message}. Store the key anyway?`, store, open);
      if (a === open) void vscode.env.openExternal(vscode.Uri.parse(KEYS_PAGE));
      if (a !== store) return;
    }
    await apiKey.set(key);
    log.info(
      'API key stored in SecretStorage' +
        `${check.ok ? ` (checked${check.note ? `; ${check.note}` : ''})` : ' (unchecked)'}`,
    );
    void vscode.window.showInformationMessage(
      `HAQA: API key stored${check.ok ? ' and working' : ''}. Tune and Advise now use Claude.`,
    );
  });

  command('haqa.clearApiKey', async () => {
    const had = await apiKey.clear();
    log.info(had ? 'API key removed from SecretStorage' : 'clear API key: no key was stored');
    const env = process.env.ANTHROPIC_API_KEY ? ' ANTHROPIC_API_KEY is set in the environment and is still used.' : '';
    void vscode.window.showInformationMessage(
      had
        ? `HAQA: API key removed.${env || ' Tune uses the offline optimizer, Advise the built-in rules.'}`
        : `HAQA: no key was stored.${env}`,
    );
  });

  command('haqa.showLog', () => log.show());

  return { client: () => client, log };
}

export async function deactivate(): Promise<void> {
  await client?.stop();
  client = undefined;
}

/** What an edit writes, for a confirmation: per file, the first lines of each replacement (at most 12 lines). */
function editSummary(edit: vscode.WorkspaceEdit): string {
  const out: string[] = [];
  for (const [uri, edits] of edit.entries()) {
    out.push(`${vscode.workspace.asRelativePath(uri)}:`);
    for (const e of edits) {
      const text = e.newText.split('\n').filter((l) => l.trim() !== '');
      out.push(
        `  line ${e.range.start.line + 1}${text.length ? ':' : ': (removed)'}`,
        ...text.slice(0, 4).map((l) => `    ${l.trim()}`),
      );
      if (text.length > 4) out.push(`    … ${text.length - 4} more lines`);
    }
  }
  return out.length > 12 ? [...out.slice(0, 12), `… ${out.length - 12} more lines`].join('\n') : out.join('\n');
}
