// What the run feature's modules share (runJobs, runEdits, runHistory, runLenses, runDiagnostics): the
// workspace trust, the last tuning session's best per recipe, and the helpers every run request uses —
// refusals, the checked recipe of a document, the run store beside it, work-done progress tied to
// cancellation, the refresh after a run, and the line range lenses and run diagnostics underline. No handlers here.
import * as path from 'node:path';
import {
  DiagnosticSeverity,
  ResponseError,
  WorkDoneProgress,
  type CancellationToken,
  type Range,
} from 'vscode-languageserver/node';
import type { ServerContext } from './features';
import { uriToPath } from './service';
import { plainUri } from './params';
import { UNTRUSTED_MESSAGE } from './protocol';
import type { Recipe } from '../config/recipe';
import type { Layer } from '../model/graph';
import { RunStore } from '../bench/store';
import type { Config } from '../agent/types';
import { lineText } from '../util/sanitize';

/** The run engine, loaded on the first run request (see runEngine.ts). */
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const engine = async (): Promise<typeof import('./runEngine')> => require('./runEngine');

/** Error code of refused runs (untrusted workspace, broken recipe): the client shows the message. */
export const REFUSED = -32001;

export interface BestTrial {
  config: Config;
  headline: string;
}

/** State of the run feature, shared by its modules. */
export interface RunsState {
  /** Runs execute the workspace's model and may call an LLM: refused unless the client says it is trusted. */
  trusted: boolean;
  /** The best plan of the last tuning session of each recipe in this server's life. */
  bestByUri: Map<string, BestTrial>;
}

export const fileOf = (uri: string): string => uriToPath(uri);
export const storeFor = (file: string): RunStore => new RunStore(path.dirname(file));

/** A line's range without its indentation (what a lens or a run diagnostic underlines). */
export function lineRange(text: string, line: number): Range {
  const l = text.split(/\r?\n/)[line] ?? '';
  const start = l.length - l.trimStart().length;
  return { start: { line, character: start }, end: { line, character: l.length } };
}

/** A handle on a long request: its AbortSignal and $/progress on the client's token. */
export interface Job {
  signal: AbortSignal;
  report(message: string, fraction?: number): void;
  end(message: string): void;
}

export interface RunsContext {
  /** The server's context (not copied: its client capabilities arrive with initialize). */
  ctx: ServerContext;
  state: RunsState;
  refuseUntrusted(): void;
  /** The request's `uri`, or a refusal for params without one (they come from the client, unchecked). */
  uriParam(p: unknown): string;
  /** The checked recipe for the document's current text (open document) or the file on disk. */
  recipeOf(uri: string): Promise<{ recipe: Recipe; layers?: readonly Layer[] }>;
  /** Progress on the client's token, and an AbortSignal tied to the request's cancellation. */
  job(token: string | number | undefined, cancel: CancellationToken, title: string): Job;
  /** After a run: new run diagnostics and lenses. */
  afterRun(uri: string): void;
}

export function runsContext(ctx: ServerContext, state: RunsState): RunsContext {
  const { connection, documents, service, diagnostics } = ctx;

  async function recipeOf(uri: string): Promise<{ recipe: Recipe; layers?: readonly Layer[] }> {
    const doc = documents.get(uri);
    const { loadSetting } = await engine();
    const a = doc
      ? await service.recipe(doc)
      : (
          await loadSetting(fileOf(uri)).catch((e) => {
            throw new ResponseError(REFUSED, (e as Error).message);
          })
        ).analysis;
    const errors = a.diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
    if (errors.length || !a.recipe) {
      const e = errors[0];
      const fix = e ? `line ${e.range.start.line + 1}: ${e.message}` : 'it';
      throw new ResponseError(
        REFUSED,
        `the recipe has ${errors.length} error${errors.length === 1 ? '' : 's'}; fix ${fix} first`,
      );
    }
    return { recipe: a.recipe, layers: a.graph?.layers };
  }

  function job(token: string | number | undefined, cancel: CancellationToken, title: string): Job {
    const ac = new AbortController();
    const sub = cancel.onCancellationRequested(() => ac.abort());
    if (token !== undefined)
      void connection.sendProgress(WorkDoneProgress.type, token, {
        kind: 'begin',
        title,
        cancellable: true,
        percentage: 0,
      });
    return {
      signal: ac.signal,
      report(message, fraction) {
        const percentage = fraction !== undefined ? Math.round(Math.min(1, Math.max(0, fraction)) * 100) : undefined;
        if (token !== undefined)
          void connection.sendProgress(WorkDoneProgress.type, token, {
            kind: 'report',
            message: lineText(message),
            percentage,
          });
      },
      end(message) {
        sub.dispose();
        if (token !== undefined)
          void connection.sendProgress(WorkDoneProgress.type, token, { kind: 'end', message: lineText(message) });
      },
    };
  }

  return {
    ctx,
    state,
    refuseUntrusted() {
      if (!state.trusted) throw new ResponseError(REFUSED, UNTRUSTED_MESSAGE);
    },
    uriParam(p) {
      const uri = plainUri(p);
      if (uri === undefined) throw new ResponseError(REFUSED, 'the request needs a uri (a string)');
      return uri;
    },
    recipeOf,
    job,
    afterRun(uri) {
      diagnostics.schedule(uri);
      if (ctx.clientCapabilities.workspace?.codeLens?.refreshSupport)
        void connection.sendRequest('workspace/codeLens/refresh').catch(() => {});
    },
  };
}
