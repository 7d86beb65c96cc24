// How the server grows: each feature is a module that declares its capabilities and registers its
// handlers on the shared context. The recipe language features are one; code lenses, custom requests
// and run-derived diagnostics from other parts of HAQA are added to the list in server.ts.
import type {
  ClientCapabilities,
  Connection,
  ServerCapabilities,
  TextDocuments,
  InitializeParams,
} from 'vscode-languageserver/node';
import type { TextDocument } from 'vscode-languageserver-textdocument';
import type { DiagnosticsHub } from './diagnosticsHub';
import type { HaqaService } from './service';

export interface ServerContext {
  connection: Connection;
  documents: TextDocuments<TextDocument>;
  service: HaqaService;
  diagnostics: DiagnosticsHub;
  clientCapabilities: ClientCapabilities;
  /** Run a handler, logging instead of crashing on any exception; `fallback` is the reply then. */
  safe<T>(name: string, fn: () => T | Promise<T>, fallback: T): Promise<T>;
}

/**
 * A connection takes one handler per LSP method (a second `onHover` replaces the first), so a method
 * belongs to one feature; `initialized` is called from the server's single onInitialized handler.
 */
export interface ServerFeature {
  name: string;
  capabilities?(params: InitializeParams): Partial<ServerCapabilities>;
  register(ctx: ServerContext): void;
  initialized?(ctx: ServerContext): void | Promise<void>;
}
