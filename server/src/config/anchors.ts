// Where the editor's run results attach in a recipe: the compression sections (the method table's
// per-layer sections, methods.ts), each override or rule under them (by its `match`), and the line of each
// top-level key and its direct children (`target.memory_limit`). Read from the positions-aware parse
// (parse.ts), the one the recipe's analysis already made, so lenses and run diagnostics land on the
// nodes the checker sees, comments and odd indentation included.
import { isMap, isScalar, isSeq, type Node } from 'yaml';
import { parseYaml, type ParsedYaml } from './parse';
import { COMPRESSION_SECTIONS } from './methods';

/** Sections whose results are shown in place: the compression methods (not `runtime`'s settings). */
const COMPRESSION: ReadonlySet<string> = new Set(COMPRESSION_SECTIONS);

export interface RecipeAnchors {
  /** 0-based lines of the compression sections' keys. */
  sections: { key: string; line: number }[];
  /** 0-based lines of the overrides / rules (the item's first line) under them, with their match. */
  overrides: { line: number; match: string }[];
  /** 0-based line of `key` and `key.child` (maps only). */
  keys: Map<string, number>;
}

/** The anchors of a recipe (its text, or the parse the analysis already holds). */
export function recipeAnchors(src: string | ParsedYaml): RecipeAnchors {
  const p = typeof src === 'string' ? parseYaml(src) : src;
  const out: RecipeAnchors = { sections: [], overrides: [], keys: new Map() };
  const root = p.doc?.contents;
  if (!isMap(root)) return out;
  const lineOf = (n: unknown) => {
    const r = (n as Node | null | undefined)?.range;
    return r ? p.lines.position(r[0]).line : undefined;
  };
  const setKey = (key: string, n: unknown) => {
    const line = lineOf(n);
    if (line !== undefined && !out.keys.has(key)) out.keys.set(key, line);
  };
  const overridesIn = (n: unknown): void => {
    if (isSeq(n)) {
      for (const item of n.items) {
        const m = isMap(item) ? item.get('match', true) : undefined;
        const line = lineOf(item);
        if (isScalar(m) && typeof m.value === 'string' && line !== undefined)
          out.overrides.push({ line, match: m.value.trim() });
        overridesIn(item);
      }
    } else if (isMap(n)) {
      for (const pair of n.items) overridesIn(pair.value);
    }
  };
  for (const pair of root.items) {
    if (!isScalar(pair.key)) continue;
    const key = String(pair.key.value);
    setKey(key, pair.key);
    if (isMap(pair.value))
      for (const child of pair.value.items)
        if (isScalar(child.key)) setKey(`${key}.${String(child.key.value)}`, child.key);
    if (COMPRESSION.has(key)) {
      const line = lineOf(pair.key);
      if (line !== undefined) out.sections.push({ key, line });
      overridesIn(pair.value);
    }
  }
  return out;
}
