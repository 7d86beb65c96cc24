// The HAQA language server: `node dist/server.js --stdio`. Wiring only — the checks, hover, completion
// and fixes live in server/src/config, the LSP handlers in server/src/lsp. Add a feature (code lenses,
// custom requests, run-derived diagnostics) by appending it to `features`.
import {
  createConnection,
  ProposedFeatures,
  TextDocuments,
  TextDocumentSyncKind,
  InitializeParams,
  InitializeResult,
  ServerCapabilities,
} from 'vscode-languageserver/node';
import { DiagnosticsHub } from './lsp/diagnosticsHub';
import { HaqaService, docKind, uriToPath } from './lsp/service';
import type { ServerContext, ServerFeature } from './lsp/features';
import { recipeFeature } from './lsp/recipeFeature';
import { createRunsFeature } from './lsp/runs';
import { layerAdviceFeature } from './lsp/layerHover';
import { SafeTextDocument } from './lsp/params';

const features: ServerFeature[] = [recipeFeature, createRunsFeature(), layerAdviceFeature];

export interface InitOptions {
  /** Folders recipes may reference files in (besides the workspace folders). */
  workspaceRoots?: string[];
  /** Minimum spacing of diagnostics runs per document, ms (default 150). */
  diagnosticsDelayMs?: number;
}

export function startServer(): void {
  const connection = createConnection(ProposedFeatures.all);
  const documents = new TextDocuments(SafeTextDocument); // didOpen params are untrusted too
  const service = new HaqaService();
  const diagnostics = new DiagnosticsHub(connection, documents);
  const log = (m: string) => {
    try {
      connection.console.error(m);
    } catch {
      process.stderr.write(m + '\n');
    }
  };
  const ctx: ServerContext = {
    connection,
    documents,
    service,
    diagnostics,
    clientCapabilities: {},
    async safe(name, fn, fallback) {
      try {
        return await fn();
      } catch (err) {
        log(`haqa: ${name} failed: ${(err as Error).stack ?? err}`);
        return fallback;
      }
    },
  };

  connection.onInitialize((params: InitializeParams): InitializeResult => {
    ctx.clientCapabilities = params.capabilities;
    const opts = (params.initializationOptions ?? {}) as InitOptions;
    const roots = [
      ...(params.workspaceFolders ?? []).map((f) => uriToPath(f.uri)),
      ...(params.workspaceFolders?.length ? [] : params.rootUri ? [uriToPath(params.rootUri)] : []),
      ...(opts.workspaceRoots ?? []),
    ];
    service.roots = roots;
    if (typeof opts.diagnosticsDelayMs === 'number' && opts.diagnosticsDelayMs >= 0)
      diagnostics.delayMs = opts.diagnosticsDelayMs;
    let capabilities: ServerCapabilities = {
      textDocumentSync: TextDocumentSyncKind.Incremental,
      workspace: { workspaceFolders: { supported: true, changeNotifications: true } },
    };
    for (const f of features) capabilities = { ...capabilities, ...(f.capabilities?.(params) ?? {}) };
    return { capabilities, serverInfo: { name: 'haqa', version: '0.1.0' } };
  });

  connection.onInitialized(() => {
    if (ctx.clientCapabilities.workspace?.workspaceFolders) {
      connection.workspace.onDidChangeWorkspaceFolders((e) => {
        const removed = new Set(e.removed.map((f) => uriToPath(f.uri)));
        service.roots = [...service.roots.filter((r) => !removed.has(r)), ...e.added.map((f) => uriToPath(f.uri))];
        service.invalidateAll();
        diagnostics.refresh((d) => docKind(d.uri) !== undefined);
      });
    }
    for (const f of features) void ctx.safe(`${f.name}.initialized`, () => f.initialized?.(ctx), undefined);
  });

  for (const f of features) f.register(ctx);

  documents.onDidOpen((e) => docKind(e.document.uri) && diagnostics.schedule(e.document.uri));
  documents.onDidChangeContent((e) => docKind(e.document.uri) && diagnostics.schedule(e.document.uri));
  documents.onDidClose((e) => {
    service.forget(e.document.uri);
    if (docKind(e.document.uri)) diagnostics.close(e.document.uri);
  });

  // Never die on a stray exception: log it and keep serving.
  process.on('uncaughtException', (err) => log(`haqa: uncaught ${err.stack ?? err}`));
  process.on('unhandledRejection', (err) => log(`haqa: unhandled rejection ${(err as Error)?.stack ?? err}`));

  documents.listen(connection);
  connection.listen();
}

if (require.main === module) startServer();
