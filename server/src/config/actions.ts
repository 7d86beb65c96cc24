// Quick fixes for the mechanical errors, computed from the diagnostics' `data` (so they work on the
// diagnostics the client sends back): nearest valid block size, drop a pattern that matches nothing,
// fix a typo'd key, replace an invalid value. Edits are minimal and keep comments (edit.ts).
import type { CodeAction, Diagnostic, TextEdit } from 'vscode-languageserver-types';
import type { FixData } from './diagnostics';
import { knobEdits, recipeTextEdits, RecipeEdit } from './edit';
import { boundedYamlValue } from './parse';

const show = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));

/**
 * What a "remove" of a pattern drops, said plainly: a skip entry, or
 * a whole override or rule (match is required there).
 */
function removeTitle(p: (string | number)[]): string {
  if (p[p.length - 1] === 'match' || p[p.length - 2] === 'skip') return 'Remove the pattern that matches no layer';
  return `Remove this ${p[1] === 'overrides' ? 'override' : 'rule'} (its pattern matches no layer)`;
}

export function recipeCodeActions(text: string, uri: string, diagnostics: Diagnostic[]): CodeAction[] {
  const out: CodeAction[] = [];
  for (const d of diagnostics) {
    if (d.source !== 'haqa' || !d.data) continue;
    const fix = d.data as FixData;
    const make = (title: string, edits: TextEdit[], preferred = false) => {
      if (!edits.length) return;
      out.push({
        title,
        kind: 'quickfix',
        diagnostics: [d],
        isPreferred: preferred || undefined,
        edit: { changes: { [uri]: edits } },
      });
    };
    const viaRecipe = (title: string, e: RecipeEdit[], preferred = false) => {
      try {
        make(title, recipeTextEdits(text, e), preferred);
      } catch {
        /* the document changed shape since the diagnostic (or has syntax errors): no fix offered */
      }
    };
    switch (fix.fix) {
      case 'rename-key':
        // The diagnostic's range is exactly the key: replace its text and nothing else.
        make(`Change '${fix.path[fix.path.length - 1]}' to '${fix.to}'`, [{ range: d.range, newText: fix.to }], true);
        break;
      case 'replace':
        // Only the value's text changes: an override keeps its other keys and its comment.
        fix.values
          .slice(0, 3)
          .forEach((v, i) => viaRecipe(`Change to ${show(v)}`, [{ path: fix.path, value: v }], i === 0));
        break;
      case 'remove':
        viaRecipe(d.code === 'pattern-no-match' ? removeTitle(fix.path) : `Remove '${fix.path[fix.path.length - 1]}'`, [
          { path: fix.path, delete: true },
        ]);
        break;
      case 'set':
        viaRecipe(fix.title, [{ path: fix.path, value: fix.value }], true);
        break;
      case 'knobs':
        try {
          viaRecipe(fix.title, knobEdits(fix.assignment, boundedYamlValue(text)));
        } catch {
          /* a document the bounded parser refuses: no fix */
        }
        break;
    }
    // A pattern that matches nothing can also just go (besides "did you mean").
    if (d.code === 'pattern-no-match' && fix.fix === 'replace') {
      const item = fix.remove ?? fix.path;
      viaRecipe(removeTitle(item), [{ path: item, delete: true }]);
    }
  }
  return out;
}
