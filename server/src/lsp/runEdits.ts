// The run feature's edit requests: haqa/suggestionEdit (an advisor's suggestion) and haqa/bestTrialEdit
// (the last tuning session's best plan, from this server's memory or, after a restart, from the run store
// ranked by the loop's rule). Each answers one WorkspaceEdit on the document's current text, written by the
// comment-keeping edit module (config/edit.ts), or a message saying why there is none.
import * as fs from 'node:fs';
import type { WorkspaceEdit } from 'vscode-languageserver/node';
import { boundedYamlValue as parseYamlValue } from '../config/parse';
import { knobEdits, RecipeEditError, recipeTextEdits } from '../config/edit';
import { isObj } from './params';
import { onTypedRequest, Requests, type EditResult } from './protocol';
import { fileOf, storeFor, type RunsContext } from './runContext';
import { bestOfNewestSession } from './runViews';
import { objectiveOf } from '../agent/objective';
import type { Config } from '../agent/types';

export function registerRunEdits(rc: RunsContext): void {
  const { connection, documents } = rc.ctx;

  /** Knob assignment → one WorkspaceEdit on the document's current text (comments kept). */
  function knobsEdit(uri: string, knobs: Record<string, unknown>, what: string): EditResult {
    const doc = documents.get(uri);
    const text = doc ? doc.getText() : fs.readFileSync(fileOf(uri), 'utf8');
    try {
      const edits = recipeTextEdits(text, knobEdits(knobs as Config, parseYamlValue(text)));
      if (edits.length === 0) return { message: `${what}: the recipe already says so` };
      const edit: WorkspaceEdit = { changes: { [uri]: edits } };
      return {
        edit,
        message: `${what}: ${Object.entries(knobs)
          .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
          .join(', ')}`,
      };
    } catch (err) {
      if (err instanceof RecipeEditError)
        return { message: `${what} cannot be written into this recipe: ${err.message}` };
      throw err;
    }
  }

  onTypedRequest(connection, Requests.suggestionEdit, (p) =>
    knobsEdit(
      rc.uriParam(p),
      isObj(p.knobs) ? p.knobs : {},
      `apply suggestion${typeof p.title === 'string' && p.title ? ` “${p.title}”` : ''}`,
    ),
  );

  onTypedRequest(connection, Requests.bestTrialEdit, async (p): Promise<EditResult> => {
    const uri = rc.uriParam(p);
    const file = fileOf(uri);
    // After a restart: the newest tuning session's best plan, from the store.
    const best =
      rc.state.bestByUri.get(uri) ??
      bestOfNewestSession(storeFor(file).recordsOf(file), objectiveOf((await rc.recipeOf(uri)).recipe));
    if (!best) return { message: 'no tuning result for this recipe yet: run HAQA: Tune first' };
    return knobsEdit(uri, best.config, 'apply best trial');
  });
}
