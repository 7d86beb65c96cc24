// The recipe and config.json language features: thin handlers over server/src/config.
import { CodeActionKind, DidChangeWatchedFilesNotification } from 'vscode-languageserver/node';
import type { ServerFeature } from './features';
import { docKind, uriToPath } from './service';
import { hoverRecipe } from '../config/hover';
import { completeRecipe } from '../config/complete';
import { recipeCodeActions } from '../config/actions';
import { knobEdits, recipeTextEdits } from '../config/edit';
import type { SearchValue } from '../config/recipe';
import type { RecipeAnalysis } from '../config/check';
import { Requests, onTypedRequest, type KnobEditsParams, type KnobEditsResult } from './protocol';
import { displayText, lineText } from '../util/sanitize';
import { boundedYamlValue } from '../config/parse';
import { layerHover } from './layerHover';
import { contextDiagnostics, documentUri, isObj, isPosition, plainUri } from './params';

export const recipeFeature: ServerFeature = {
  name: 'recipe',
  capabilities: () => ({
    hoverProvider: true,
    completionProvider: { triggerCharacters: [':', ' ', '-', '.', '@', '*'], resolveProvider: false },
    codeActionProvider: { codeActionKinds: [CodeActionKind.QuickFix] },
  }),
  register(ctx) {
    const { connection, documents, service, diagnostics, safe } = ctx;
    const lastModel = new Map<
      string,
      { layers: NonNullable<RecipeAnalysis['graph']>['layers']; index: RecipeAnalysis['index'] }
    >();
    documents.onDidClose((e) => lastModel.delete(e.document.uri));

    diagnostics.register({
      id: 'haqa.recipe',
      appliesTo: (doc) => docKind(doc.uri) !== undefined,
      async compute(doc) {
        if (docKind(doc.uri) === 'recipe') {
          const a = await service.recipe(doc);
          if (a.graph) lastModel.set(doc.uri, { layers: a.graph.layers, index: a.index });
          return a.diagnostics;
        }
        return (await service.hfConfig(doc)).diagnostics;
      },
    });

    connection.onHover((p) =>
      safe(
        'hover',
        async () => {
          const uri = documentUri(p);
          const doc = uri === undefined || !isPosition(p.position) ? undefined : documents.get(uri);
          if (!doc || docKind(doc.uri) !== 'recipe') return null;
          const a = await service.recipe(doc);
          const h = hoverRecipe(a, p.position);
          const extra = h ? layerHover(a, p.position) : undefined; // measured time share and sensitivity
          if (h && extra && typeof h.contents === 'object' && 'value' in h.contents)
            h.contents = { ...h.contents, value: `${h.contents.value}\n\n${extra}` };
          // Hover text quotes layer names from the model file: shown without raw control characters.
          if (h && typeof h.contents === 'object' && 'value' in h.contents) {
            h.contents = { ...h.contents, value: displayText(h.contents.value) };
          }
          return h ?? null;
        },
        null,
      ),
    );

    connection.onCompletion((p) =>
      safe(
        'completion',
        async () => {
          const uri = documentUri(p);
          const doc = uri === undefined || !isPosition(p.position) ? undefined : documents.get(uri);
          if (!doc || docKind(doc.uri) !== 'recipe') return [];
          // The model of the last finished analysis is good enough for names; wait only the first time.
          const a = service.lastRecipe.get(doc.uri) ?? (await service.recipe(doc));
          // A half-typed line (an empty `match:`) makes the recipe invalid and
          // unresolved: the layers of its last good state serve.
          if (a.graph) lastModel.set(doc.uri, { layers: a.graph.layers, index: a.index });
          const m = a.graph ? { layers: a.graph.layers, index: a.index } : lastModel.get(doc.uri);
          return completeRecipe(doc.getText(), p.position, { layers: m?.layers, index: m?.index });
        },
        [],
      ),
    );

    connection.onCodeAction((p) =>
      safe(
        'codeAction',
        () => {
          const uri = documentUri(p);
          const doc = uri === undefined ? undefined : documents.get(uri);
          if (!doc || !docKind(doc.uri)) return [];
          // Titles may quote layer names; the edits themselves keep the names as the model spells them.
          return recipeCodeActions(doc.getText(), doc.uri, contextDiagnostics(p)).map((a) => ({
            ...a,
            title: lineText(a.title),
          }));
        },
        [],
      ),
    );

    // "Apply suggestion" / "apply best trial": a tuner knob assignment → minimal edits of the open
    // recipe (comments kept). The client applies them with workspace.applyEdit.
    onTypedRequest(connection, Requests.knobEdits, (p: KnobEditsParams) =>
      safe<KnobEditsResult>(
        'haqa/knobEdits',
        () => {
          const uri = plainUri(p);
          const doc = uri === undefined ? undefined : documents.get(uri);
          if (!doc) throw new Error(`document not open: ${uri}`);
          if (!isObj(p.assignment)) throw new Error('assignment must be an object of knob → value');
          const text = doc.getText();
          return { edits: recipeTextEdits(text, knobEdits(p.assignment, boundedYamlValue(text))) };
        },
        { edits: [] },
      ),
    );

    connection.onDidChangeWatchedFiles((p) =>
      safe(
        'didChangeWatchedFiles',
        async () => {
          const open = documents.all().map((d) => d.uri);
          for (const c of Array.isArray(p?.changes) ? p.changes : []) {
            if (!isObj(c) || typeof c.uri !== 'string') continue;
            const file = uriToPath(c.uri);
            const hits = await service.fileChanged(file, open);
            for (const uri of hits) diagnostics.schedule(uri);
          }
        },
        undefined,
      ),
    );
  },
  async initialized(ctx) {
    // Watch what recipes read, when the client lets us register watchers ourselves.
    if (!ctx.clientCapabilities.workspace?.didChangeWatchedFiles?.dynamicRegistration) return;
    await ctx.connection.client.register(DidChangeWatchedFilesNotification.type, {
      watchers: [
        '**/*.onnx',
        '**/*.onnx.data',
        '**/*.onnx_data',
        '**/config.json',
        '**/tokenizer.json',
        '**/*.txt',
      ].map((globPattern) => ({ globPattern })),
    });
  },
};
