// One instance per server: the model cache, the workspace roots, and the latest analysis of each open
// document (reused by hover, completion and code actions for the same version).
import * as path from 'node:path';
import { URI } from 'vscode-uri';
import type { TextDocument } from 'vscode-languageserver-textdocument';
import { ModelCache } from '../config/modelCache';
import { analyzeRecipe, RecipeAnalysis } from '../config/check';
import { analyzeHfConfig, HfConfigAnalysis } from '../config/hfCheck';

export type DocKind = 'recipe' | 'hf-config';

export function docKind(uri: string): DocKind | undefined {
  const base = path.posix.basename(uri.split('?')[0]).toLowerCase();
  if (base === 'haqa.yaml' || base === 'haqa.yml' || base.endsWith('.haqa.yaml') || base.endsWith('.haqa.yml'))
    return 'recipe';
  if (base === 'config.json') return 'hf-config';
  return undefined;
}

export function uriToPath(uri: string): string {
  try {
    const u = URI.parse(uri);
    return u.scheme === 'file' ? u.fsPath : u.path;
  } catch {
    return uri;
  }
}

interface Cached<T> {
  version: number;
  result: Promise<T>;
}

export class HaqaService {
  readonly models = new ModelCache();
  roots: string[] = [];
  private recipes = new Map<string, Cached<RecipeAnalysis>>();
  private configs = new Map<string, Cached<HfConfigAnalysis>>();
  /** Last finished recipe analysis per uri (any version): completion uses its model without waiting. */
  readonly lastRecipe = new Map<string, RecipeAnalysis>();

  recipe(doc: TextDocument): Promise<RecipeAnalysis> {
    const hit = this.recipes.get(doc.uri);
    if (hit && hit.version === doc.version) return hit.result;
    const prev = this.lastRecipe.get(doc.uri);
    const result = analyzeRecipe(
      doc.getText(),
      uriToPath(doc.uri),
      { models: this.models, workspaceRoots: this.roots },
      prev,
    ).then((a) => {
      this.lastRecipe.set(doc.uri, a);
      return a;
    });
    this.recipes.set(doc.uri, { version: doc.version, result });
    return result;
  }

  hfConfig(doc: TextDocument): Promise<HfConfigAnalysis> {
    const hit = this.configs.get(doc.uri);
    if (hit && hit.version === doc.version) return hit.result;
    const result = analyzeHfConfig(doc.getText(), uriToPath(doc.uri), { models: this.models });
    this.configs.set(doc.uri, { version: doc.version, result });
    return result;
  }

  /** A file changed on disk: drop what was read from it; returns the open documents that depend on it. */
  async fileChanged(file: string, openUris: string[]): Promise<string[]> {
    this.models.invalidate(file);
    const hits: string[] = [];
    for (const uri of openUris) {
      const deps = [
        ...((await this.recipes.get(uri)?.result)?.dependencies ?? []),
        ...((await this.configs.get(uri)?.result)?.dependencies ?? []),
      ];
      // The file itself, a model's external data (model.onnx.data), or the config.json beside it.
      const related = (d: string) =>
        d === file ||
        file.startsWith(d + '.') ||
        (path.basename(file) === 'config.json' && path.dirname(d) === path.dirname(file));
      if (deps.some(related)) {
        this.recipes.delete(uri);
        this.configs.delete(uri);
        hits.push(uri);
      }
    }
    return hits;
  }

  /** Settings changed (workspace roots): every cached analysis is stale. */
  invalidateAll(): void {
    this.recipes.clear();
    this.configs.clear();
  }

  forget(uri: string): void {
    this.recipes.delete(uri);
    this.configs.delete(uri);
    this.lastRecipe.delete(uri);
  }
}
