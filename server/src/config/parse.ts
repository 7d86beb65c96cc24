// YAML with positions: the recipe text → its JS value, plus a way back from a JSON path
// (['quantize','overrides',3,'bits']) to the exact key and value ranges in the text. Syntax errors,
// huge files and binary junk become diagnostics; nothing here throws on any input.
import {
  parse,
  parseDocument,
  isMap,
  isSeq,
  isScalar,
  isPair,
  isAlias,
  Document,
  Node,
  Pair,
  YAMLMap,
  YAMLSeq,
} from 'yaml';
import { Diagnostic, LineIndex, Range, diag } from './diagnostics';
import { MAX_NESTING, MAX_YAML_TOKENS, yamlBounds, yamlTooDeep } from './depth';

export type JsonPath = (string | number)[];

/** Above this a recipe is refused: nobody writes one this big, and parsing it would stall the editor. */
export const MAX_RECIPE_BYTES = 2 * 1024 * 1024;
/**
 * Above this many lines too: the yaml parser costs tens of µs a line, so a 50,000-line recipe held the
 * language server for seconds per check. 10,000 lines is 2,500 four-line overrides — more than one per
 * projection of a 300-layer model.
 */
export const MAX_RECIPE_LINES = 10_000;

/** YAML errors reported one by one; the rest are counted in one more diagnostic. */
const MAX_SYNTAX_DIAGNOSTICS = 100;

/** Whether `text` has more than `max` lines, counted without splitting it. */
export function linesOver(text: string, max: number): number | undefined {
  let n = 1;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
  return n > max ? n : undefined;
}

export interface ParsedYaml {
  text: string;
  lines: LineIndex;
  /** Undefined when the text was refused before parsing (too big, binary). */
  doc?: Document.Parsed;
  /** The document as plain JS (undefined when refused or unconvertible). */
  value: unknown;
  /** Syntax-level diagnostics; `fatal` when there is nothing sensible to check further. */
  diagnostics: Diagnostic[];
  fatal: boolean;
  /** Set when a later parse took over `doc` (patched it in place); it must not be patched twice. */
  consumed?: boolean;
  /** Whether this parse came from patching the previous one (for tests and benchmarks). */
  incremental?: boolean;
}

/** Why YAML text is too large or too deep to parse (cheap: no parse), or undefined when it is not. */
export function yamlBoundsError(text: string): string | undefined {
  if (text.length > MAX_RECIPE_BYTES || linesOver(text, MAX_RECIPE_LINES) !== undefined) {
    return `the recipe is too large to read (over ${MAX_RECIPE_BYTES / 1048576} MB or ${MAX_RECIPE_LINES} lines)`;
  }
  const b = yamlBounds(text);
  if (!b) return undefined;
  if (b.kind === 'depth') return `the recipe nests deeper than ${MAX_NESTING} levels`;
  return `the recipe has more than ${MAX_YAML_TOKENS} structure tokens`;
}

/**
 * The plain value of YAML text for callers that need no positions (edits, the tuner), bounded like
 * parseYaml: too large, too many lines or too deep throws an Error saying so instead of stalling.
 */
export function boundedYamlValue(text: string): unknown {
  const why = yamlBoundsError(text);
  if (why) throw new Error(why);
  try {
    return parse(text, { maxAliasCount: 100 });
  } catch (err) {
    // yaml throws a ReferenceError for an unresolved alias: still the recipe's fault, not ours.
    throw new Error(`cannot read the recipe: ${firstLine((err as Error).message)}`);
  }
}

/** Text that is not text: NUL bytes or mostly control characters in the first few KB. */
export function looksBinary(text: string): boolean {
  const head = text.slice(0, 8192);
  if (head.includes('\u0000')) return true;
  let ctrl = 0;
  for (let i = 0; i < head.length; i++) {
    const c = head.charCodeAt(i);
    if ((c < 32 && c !== 9 && c !== 10 && c !== 13) || c === 0xfffd) ctrl++;
  }
  return head.length > 0 && ctrl / head.length > 0.1;
}

/**
 * Parse a recipe. With `prev` (the parse of the previous version of the same document), an edit that
 * only changes one plain scalar value on one line — what typing a number or a name does — patches the
 * previous tree instead of re-parsing: the yaml parser costs tens of ms on a 1,000-override recipe.
 */
export function parseYaml(text: string, prev?: ParsedYaml): ParsedYaml {
  const tooManyLines = text.length <= MAX_RECIPE_BYTES ? linesOver(text, MAX_RECIPE_LINES) : undefined;
  // Bounds before any parse, on every version: an incremental patch must not grow a document past them.
  const bound = text.length <= MAX_RECIPE_BYTES && tooManyLines === undefined ? yamlBounds(text) : undefined;
  if (prev && tooManyLines === undefined && !bound) {
    const patched = patchScalarEdit(prev, text) ?? patchSeqItemEdit(prev, text);
    if (patched) return patched;
  }
  const lines = new LineIndex(text.length > MAX_RECIPE_BYTES ? '' : text);
  const out: ParsedYaml = { text, lines, value: undefined, diagnostics: [], fatal: true };
  const top: Range = { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } };
  if (text.length > MAX_RECIPE_BYTES) {
    out.diagnostics.push(
      diag(
        top,
        'error',
        'file-too-large',
        `file is ${(text.length / 1048576).toFixed(1)} MB; recipes ` +
          `over ${MAX_RECIPE_BYTES / 1048576} MB are not checked`,
      ),
    );
    return out;
  }
  if (tooManyLines !== undefined) {
    const why = `file has ${tooManyLines} lines; recipes over ${MAX_RECIPE_LINES} lines are not checked`;
    out.diagnostics.push(diag(top, 'error', 'file-too-large', why));
    return out;
  }
  if (looksBinary(text)) {
    out.diagnostics.push(
      diag(top, 'error', 'binary-file', 'file looks binary (NUL or control characters), not YAML text'),
    );
    return out;
  }
  if (bound) {
    const at = lines.range(bound.offset, bound.offset + 1);
    out.diagnostics.push(
      bound.kind === 'depth'
        ? diag(
            at,
            'error',
            'yaml-too-deep',
            `nesting deeper than ${MAX_NESTING} levels here; a recipe needs a handful, so it is not parsed`,
          )
        : diag(
            at,
            'error',
            'yaml-too-complex',
            `more than ${MAX_YAML_TOKENS} YAML structure tokens (':', '- ` +
              `', flow brackets and commas) by here; the file is not parsed`,
          ),
    );
    return out;
  }
  let doc: Document.Parsed;
  try {
    doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, strict: true });
  } catch (err) {
    out.diagnostics.push(diag(top, 'error', 'yaml-syntax', `YAML parser failed: ${(err as Error).message}`));
    return out;
  }
  out.doc = doc;
  // Junk can make thousands of errors: the first few are what a reader can use.
  for (const e of doc.errors.slice(0, MAX_SYNTAX_DIAGNOSTICS)) {
    const [a, b] = e.pos;
    out.diagnostics.push(diag(lines.range(a, Math.max(b, a + 1)), 'error', 'yaml-syntax', firstLine(e.message)));
  }
  if (doc.errors.length > MAX_SYNTAX_DIAGNOSTICS) {
    const [a] = doc.errors[MAX_SYNTAX_DIAGNOSTICS].pos;
    const rest = doc.errors.length - MAX_SYNTAX_DIAGNOSTICS;
    out.diagnostics.push(diag(lines.range(a, a + 1), 'error', 'yaml-syntax', `and ${rest} more YAML errors`));
  }
  for (const w of doc.warnings) {
    const [a, b] = w.pos;
    out.diagnostics.push(diag(lines.range(a, Math.max(b, a + 1)), 'warning', 'yaml-syntax', firstLine(w.message)));
  }
  const badKey = collectionKey(doc);
  if (badKey) {
    // toJS would stringify it (and warn on stderr); no recipe key is a list or a mapping.
    out.diagnostics.push(
      diag(
        lines.range(badKey[0], Math.max(badKey[1], badKey[0] + 1)),
        'error',
        'yaml-unsupported-value',
        'a key that is a list or a mapping is not plain data; recipe keys are names',
      ),
    );
    return out;
  }
  try {
    // maxAliasCount guards against alias bombs ("billion laughs").
    out.value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    out.diagnostics.push(diag(top, 'error', 'yaml-syntax', `cannot read the document: ${(err as Error).message}`));
    return out;
  }
  const odd = notPlainData(out.value);
  if (odd) {
    out.diagnostics.push(
      diag(
        rangeOf(out, odd.path),
        'error',
        'yaml-unsupported-value',
        `${odd.what} is not plain data (YAML tags such as !!merge, !!set or !!binary are not part of a recipe)`,
      ),
    );
    out.value = undefined;
    return out;
  }
  out.fatal = doc.errors.length > 0;
  return out;
}

/** The range of the first mapping key that is itself a collection (`? [a, b]`), if any. Iterative. */
function collectionKey(doc: Document.Parsed): [number, number] | undefined {
  const stack: unknown[] = [doc.contents];
  while (stack.length) {
    const n = stack.pop();
    if (isMap(n)) {
      for (const it of n.items) {
        if (isMap(it.key) || isSeq(it.key)) return [(it.key as Node).range?.[0] ?? 0, (it.key as Node).range?.[1] ?? 0];
        stack.push(it.value);
      }
    } else if (isSeq(n)) stack.push(...n.items);
  }
  return undefined;
}

/**
 * The first value that is not JSON-like data (a Symbol from `!!merge`, a Map, Set, Date, Uint8Array
 * from other YAML 1.1 tags), with its path. Iterative: the depth is bounded already, but cheaply so.
 */
export function notPlainData(value: unknown): { path: JsonPath; what: string } | undefined {
  const stack: { v: unknown; path: JsonPath }[] = [{ v: value, path: [] }];
  while (stack.length) {
    const { v, path } = stack.pop()!;
    const t = typeof v;
    if (v === null || t === 'string' || t === 'number' || t === 'boolean' || t === 'undefined') continue;
    const where = path.length ? `the value at ${path.join('.')}` : 'the document';
    if (t !== 'object') return { path, what: `${where} (${t === 'symbol' ? String(v) : t})` };
    if (Array.isArray(v)) {
      v.forEach((x, i) => stack.push({ v: x, path: [...path, i] }));
      continue;
    }
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null)
      return { path, what: `${where} (${proto?.constructor?.name ?? 'object'})` };
    if (Object.getOwnPropertySymbols(v).length) return { path, what: `a key in ${where}` };
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) stack.push({ v: x, path: [...path, k] });
  }
  return undefined;
}

// A `key: value` line whose value is a plain scalar that cannot change the structure when edited.
const SIMPLE_LINE = /^(\s*(?:-\s+)?[A-Za-z_][\w.@*/-]*:[ \t]+)([A-Za-z0-9_./+~-][A-Za-z0-9_./+:%~-]*)([ \t]+#.*)?\r?$/;

function patchScalarEdit(prev: ParsedYaml, text: string): ParsedYaml | undefined {
  if (prev.consumed || prev.fatal || !prev.doc || prev.diagnostics.length || text.length > MAX_RECIPE_BYTES)
    return undefined;
  const old = prev.text;
  const min = Math.min(old.length, text.length);
  let p = 0;
  while (p < min && old.charCodeAt(p) === text.charCodeAt(p)) p++;
  if (p === old.length && p === text.length) {
    // Same text (a new version that changed nothing): the same tree, under new ownership.
    prev.consumed = true;
    return { ...prev, consumed: false, incremental: true };
  }
  let sfx = 0;
  while (sfx < min - p && old.charCodeAt(old.length - 1 - sfx) === text.charCodeAt(text.length - 1 - sfx)) sfx++;
  const oldMid = old.slice(p, old.length - sfx);
  const newMid = text.slice(p, text.length - sfx);
  if (/[\r\n]/.test(oldMid) || /[\r\n]/.test(newMid)) return undefined;
  const ls = old.lastIndexOf('\n', p - 1) + 1;
  const oldEndNl = old.indexOf('\n', p);
  const oldLe = oldEndNl < 0 ? old.length : oldEndNl;
  const delta = text.length - old.length;
  const a = SIMPLE_LINE.exec(old.slice(ls, oldLe));
  const b = SIMPLE_LINE.exec(text.slice(ls, oldLe + delta));
  if (!a || !b || a[1] !== b[1] || (a[3] ?? '') !== (b[3] ?? '')) return undefined;
  const vs = ls + a[1].length;
  const at = pathAt(prev.doc, vs);
  const node = at?.node;
  if (
    !at ||
    at.onKey ||
    !isScalar(node) ||
    node.type !== 'PLAIN' ||
    !node.range ||
    node.range[0] !== vs ||
    node.range[1] !== vs + a[2].length
  )
    return undefined;
  let fresh: Document.Parsed;
  try {
    fresh = parseDocument(b[2], { strict: true });
  } catch {
    return undefined;
  }
  const sc = fresh.contents;
  if (fresh.errors.length || fresh.warnings.length || !isScalar(sc) || sc.type !== 'PLAIN') return undefined;
  // Patch the tree in place: the scalar's value, then every offset after the edit.
  node.value = sc.value;
  (node as { source?: string }).source = b[2];
  const shift = (r: [number, number, number] | null | undefined) => {
    if (!r) return;
    for (let k = 0; k < 3; k++) if (r[k] > vs) r[k] += delta;
  };
  // Only nodes that end after the edit move; a sorted block collection lets us skip the ones before.
  const walk = (n: unknown): void => {
    if (!n || typeof n !== 'object') return;
    const r = (n as Node).range;
    if (r && r[2] <= vs && r[1] <= vs) return; // wholly before the edit: nothing inside moves
    shift(r);
    if (isMap(n)) for (const it of n.items) (walk(it.key), walk(it.value));
    else if (isSeq(n)) for (const it of n.items) walk(it);
  };
  walk(prev.doc.contents);
  shift(prev.doc.range);
  prev.consumed = true;
  const out: ParsedYaml = {
    text,
    lines: new LineIndex(text),
    doc: prev.doc,
    value: undefined,
    diagnostics: [],
    fatal: false,
    incremental: true,
  };
  out.value = prev.doc.toJS({ maxAliasCount: 100 });
  return out;
}

/**
 * Shift every offset at or after `from` by `delta`, in a subtree. With `swap`, a collection that ended
 * where the replaced item ended now ends where its replacement does.
 */
function shiftFrom(
  n: unknown,
  from: number,
  delta: number,
  skip?: unknown,
  swap?: { old: number[]; now: number[] },
): void {
  if (!n || typeof n !== 'object' || n === skip) return;
  const r = (n as Node).range;
  if (r) {
    const ancestorEnd = swap && (r[1] === swap.old[1] || r[2] === swap.old[2]);
    if (r[2] < from && r[1] < from && !ancestorEnd) return; // wholly before: nothing inside moves
    for (let k = 0; k < 3; k++) {
      if (swap && k > 0 && r[k] === swap.old[k]) r[k] = swap.now[k];
      else if (r[k] >= from) r[k] += delta;
    }
  }
  if (isMap(n))
    for (const it of n.items)
      (shiftFrom(it.key, from, delta, skip, swap), shiftFrom(it.value, from, delta, skip, swap));
  else if (isSeq(n)) for (const it of n.items) shiftFrom(it, from, delta, skip, swap);
}

/**
 * Whether an item's parse may depend on what surrounds it: anchors and aliases, block scalars (their
 * chomping reads trailing blank lines), or an empty value at the end (its extent runs to the next line).
 */
function contextSensitive(n: unknown): boolean {
  if (!n || typeof n !== 'object') return true;
  if (isAlias(n) || (n as { anchor?: string }).anchor) return true;
  if (isScalar(n)) return n.type === 'BLOCK_LITERAL' || n.type === 'BLOCK_FOLDED';
  if (isMap(n)) return n.items.some((it) => contextSensitive(it.key) || contextSensitive(it.value));
  if (isSeq(n)) return n.items.some(contextSensitive);
  return true;
}
function endsOpen(n: unknown): boolean {
  if (!n || typeof n !== 'object') return true;
  if (isScalar(n)) return !n.range || n.range[0] === n.range[1];
  if (isMap(n)) return !n.flow && (n.items.length === 0 || endsOpen(n.items[n.items.length - 1].value));
  if (isSeq(n)) return !n.flow && (n.items.length === 0 || endsOpen(n.items[n.items.length - 1]));
  return true;
}

/**
 * The second fast path: an edit inside one item of a block sequence (a line added to or removed from
 * an override, say) re-parses only that item's lines and splices the result into the previous tree.
 * Anything it cannot prove local — the item's extent changing, anchors, errors — takes the full parse.
 */
function patchSeqItemEdit(prev: ParsedYaml, text: string): ParsedYaml | undefined {
  if (prev.consumed || prev.fatal || !prev.doc || prev.diagnostics.length || text.length > MAX_RECIPE_BYTES)
    return undefined;
  const old = prev.text;
  const min = Math.min(old.length, text.length);
  let p = 0;
  while (p < min && old.charCodeAt(p) === text.charCodeAt(p)) p++;
  let sfx = 0;
  while (sfx < min - p && old.charCodeAt(old.length - 1 - sfx) === text.charCodeAt(text.length - 1 - sfx)) sfx++;
  let oldEnd = old.length - sfx;
  const delta = text.length - old.length;
  // A pure insertion or deletion of whole lines is found by the prefix match a few characters into
  // the next line (`    ` of `    - match`); slide it back to the line start where it belongs.
  const insertion = oldEnd === p;
  const deletion = text.length - sfx === p;
  if (insertion !== deletion) {
    const src = insertion ? text : old;
    const len = Math.abs(delta);
    while (p > 0 && old[p - 1] !== '\n' && src[p - 1] === src[p - 1 + len]) p--;
    oldEnd = insertion ? p : p + len;
  }
  const lineStart = (t: string, o: number) => t.lastIndexOf('\n', o - 1) + 1;
  const lineEndIncl = (t: string, o: number) => {
    const n = t.indexOf('\n', o);
    return n < 0 ? t.length : n + 1;
  };
  const contentEnd = (t: string, a: number, b: number) => {
    let i = b;
    while (i > a && /\s/.test(t[i - 1])) i--;
    return i;
  };
  // The deepest block-sequence item whose lines contain the change.
  let found: { seq: YAMLSeq; index: number; start: number; end: number } | undefined;
  const search = (n: unknown): void => {
    if (isMap(n)) {
      for (const it of n.items) {
        const r = (it.value as Node | null)?.range;
        if (r && r[0] <= oldEnd && p <= r[2]) search(it.value);
      }
    } else if (isSeq(n) && !n.flow) {
      for (let i = 0; i < n.items.length; i++) {
        const r = (n.items[i] as Node | null)?.range;
        if (!r) continue;
        const start = lineStart(old, r[0]);
        const end = lineEndIncl(old, Math.max(r[0], contentEnd(old, r[0], r[1]) - 1));
        if (start <= p && oldEnd <= end) {
          found = { seq: n, index: i, start, end };
          search(n.items[i]);
          return;
        }
      }
    }
  };
  search(prev.doc.contents);
  if (!found) return undefined;
  const { seq, index, start, end } = found;
  // The last item's extent decides where its ancestors end (trailing blank and comment lines): leave
  // that to the full parse. Any other item is followed by a sibling that bounds it.
  if (index === seq.items.length - 1) return undefined;
  const dash = /^( *)- /.exec(old.slice(start, end));
  if (!dash || p < start + dash[0].length || text.slice(start, start + dash[0].length) !== dash[0]) return undefined;
  const slice = text.slice(start, end + delta);
  // The item must end where the slice ends: the next content line may not be indented past the dash.
  const after = text
    .slice(end + delta)
    .split('\n')
    .find((l) => l.trim() !== '' && !l.trimStart().startsWith('#'));
  if (after !== undefined && /^ */.exec(after)![0].length > dash[1].length) return undefined;
  // deep: leave it to the full parse
  if (slice.includes('\t') || yamlTooDeep(slice, 16) !== undefined) return undefined;
  let part: Document.Parsed;
  try {
    part = parseDocument(slice, { prettyErrors: false, uniqueKeys: true, strict: true });
  } catch {
    return undefined;
  }
  const c = part.contents;
  if (part.errors.length || part.warnings.length || !isSeq(c) || c.flow || c.items.length !== 1 || collectionKey(part))
    return undefined;
  const oldItem = seq.items[index];
  const item = c.items[0] as Node;
  if (contextSensitive(item) || contextSensitive(oldItem) || endsOpen(item) || endsOpen(oldItem)) return undefined;
  shiftFrom(item, 0, start); // slice offsets → document offsets
  const swap = { old: [...(oldItem as Node).range!], now: [...item.range!] };
  shiftFrom(prev.doc.contents, end, delta, oldItem, swap);
  shiftFrom({ range: prev.doc.range }, end, delta, undefined, swap);
  seq.items[index] = item;
  prev.consumed = true;
  const out: ParsedYaml = {
    text,
    lines: new LineIndex(text),
    doc: prev.doc,
    value: undefined,
    diagnostics: [],
    fatal: false,
    incremental: true,
  };
  try {
    out.value = prev.doc.toJS({ maxAliasCount: 100 });
  } catch {
    return undefined;
  }
  if (notPlainData(out.value)) return undefined; // a tag in the new item: the full parse reports it
  return out;
}

function firstLine(s: string): string {
  return s.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
}

// ---------------------------------------------------------------- path ↔ node

export interface Located {
  /** The pair whose key is the last path element (map entries). */
  pair?: Pair;
  /** The value node (map value or sequence item). */
  node?: Node;
  /** The collection holding it. */
  parent?: YAMLMap | YAMLSeq;
}

function keyOf(p: Pair): unknown {
  return isScalar(p.key) ? p.key.value : p.key;
}

/** The YAML node at a JSON path, or undefined when the path does not exist in the text. */
export function locate(doc: Document | undefined, path: JsonPath): Located | undefined {
  let cur: unknown = doc?.contents;
  let loc: Located = { node: cur as Node };
  for (const seg of path) {
    if (isAlias(cur) && doc) cur = cur.resolve(doc);
    if (isMap(cur)) {
      const pair = cur.items.find((p) => String(keyOf(p)) === String(seg));
      if (!pair) return undefined;
      loc = { pair, node: (pair.value ?? undefined) as Node | undefined, parent: cur };
      cur = pair.value;
    } else if (isSeq(cur) && typeof seg === 'number') {
      const item = cur.items[seg];
      if (item === undefined) return undefined;
      loc = { node: item as Node, parent: cur };
      cur = item;
    } else {
      return undefined;
    }
  }
  return loc;
}

export type RangeKind = 'key' | 'value' | 'entry';

/**
 * Range of a path: 'key' (the key of a map entry; for sequence items the item), 'value' (the value,
 * falling back to the key when the value is empty), 'entry' (key through value). When the path does
 * not exist, the range of the deepest ancestor that does (its key), so a diagnostic always lands.
 */
export function rangeOf(p: ParsedYaml, path: JsonPath, kind: RangeKind = 'value'): Range {
  for (let n = path.length; n >= 0; n--) {
    const loc = locate(p.doc, path.slice(0, n));
    if (!loc) continue;
    if (n === 0) {
      // The whole document would be a useless range: point at its first key instead.
      const first = isMap(loc.node) ? (loc.node.items[0]?.key as Node | undefined) : undefined;
      const fr = first?.range;
      return fr ? p.lines.range(fr[0], fr[1]) : { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } };
    }
    const r = n < path.length ? offsetsOf(loc, 'key') : offsetsOf(loc, kind);
    if (r) return p.lines.range(r[0], r[1]);
  }
  return { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } };
}

export function offsetsOf(loc: Located, kind: RangeKind): [number, number] | undefined {
  const keyR = loc.pair && (loc.pair.key as Node | null)?.range;
  const valR = loc.node?.range;
  if (kind === 'key' && keyR) return [keyR[0], keyR[1]];
  if (kind === 'entry' && keyR) return [keyR[0], valR ? valR[1] : keyR[1]];
  if (valR && valR[1] > valR[0]) return [valR[0], valR[1]];
  if (keyR) return [keyR[0], keyR[1]];
  return valR ? [valR[0], valR[1]] : undefined;
}

/** The deepest node at an offset: its path and whether the offset is on a key or a value. */
export function pathAt(
  doc: Document | undefined,
  offset: number,
): { path: JsonPath; onKey: boolean; node?: Node } | undefined {
  if (!doc) return undefined;
  const path: JsonPath = [];
  let cur: unknown = doc.contents;
  const within = (n: unknown) => {
    const r = (n as Node | null)?.range;
    return !!r && offset >= r[0] && offset <= r[1];
  };
  if (!within(cur)) return undefined;
  for (;;) {
    if (isMap(cur)) {
      const pair = cur.items.find((pp) => within(pp.key) || within(pp.value));
      if (!pair) return { path, onKey: false, node: cur };
      path.push(String(keyOf(pair)));
      if (within(pair.key) && !(isScalar(pair.value) && within(pair.value) && (pair.key as Node).range![1] < offset)) {
        return { path, onKey: true, node: pair.key as Node };
      }
      cur = pair.value;
    } else if (isSeq(cur)) {
      const i = cur.items.findIndex((it) => within(it));
      if (i < 0) return { path, onKey: false, node: cur };
      path.push(i);
      cur = cur.items[i];
    } else {
      return { path, onKey: false, node: cur as Node };
    }
  }
}

export { isPair };
