// "Did you mean" for a layer pattern that matches nothing: the nearest patterns that do match, by edit
// distance over the model's layer names, compared dot-segment by dot-segment. A wildcard segment of the
// pattern that matches the layer's segment costs nothing and is kept, so `model.layers.*.mlp.down_prj`
// becomes `model.layers.*.mlp.down_proj` (still a glob), not one concrete layer. Pure; used by check.ts.
import { editDistance } from './diagnostics';
import { globMatcher } from './plan';

const WILD = /[*?[\]{}]/;
/** Above this many layers, compare with a sample: the check must stay fast on big models. */
const MAX_NAMES = 20_000;

/** Up to `max` patterns near `pattern` that match some layer, nearest first (ties: the order of the model). */
export function nearestPatterns(pattern: string, names: readonly string[], max = 3): string[] {
  if (pattern.length > 500) return [];
  const segs = pattern.split('.');
  const scored = new Map<string, number>();
  for (const name of names.length > MAX_NAMES ? names.slice(0, MAX_NAMES) : names) {
    const parts = name.split('.');
    let cost = 0,
      changed = 0,
      out: string[] = [];
    if (parts.length === segs.length) {
      segs.forEach((s, i) => {
        if (WILD.test(s) && globMatcher(s)(parts[i])) out.push(s);
        else {
          const d = editDistance(s.toLowerCase(), parts[i].toLowerCase());
          cost += d;
          if (d) changed += Math.max(s.length, parts[i].length);
          out.push(parts[i]);
        }
      });
    } else {
      // Another depth: compare the literal text with the whole name (a missing or extra segment).
      cost = editDistance(pattern.replace(/[*?]/g, '').toLowerCase(), name.toLowerCase());
      changed = Math.max(pattern.length, name.length);
      out = [name];
    }
    // As closest() in diagnostics.ts: at most a third of the text that differs.
    if (cost === 0 || cost > Math.max(1, Math.floor(changed / 3))) continue;
    const p = out.join('.');
    if (!scored.has(p) || scored.get(p)! > cost) scored.set(p, cost);
  }
  return [...scored.entries()]
    .sort((a, b) => a[1] - b[1])
    .slice(0, max)
    .map(([p]) => p);
}
