// Edits to a recipe that keep the user's comments and formatting: each change is spliced into the
// original text at the YAML node's range, never by re-serialising the document. Missing parents are
// created in block style. Used by quick fixes, "apply suggestion" (the agent) and "apply best trial"
// (the tuner), which speak the knob language of plan.ts (`quantize.bits@model.layers.*.mlp.down_proj`).
import { parseDocument, stringify, isMap, isSeq, isScalar, Document, Node, Pair, YAMLMap, YAMLSeq } from 'yaml';
import type { TextEdit } from 'vscode-languageserver-types';
import { LineIndex } from './diagnostics';
import { JsonPath, locate, yamlBoundsError } from './parse';
import { parseKnob } from './plan';
import { knobDecl, removesRule, scopeError } from './methods';
import type { SearchValue } from './recipe';

export type RecipeEdit =
  { path: JsonPath; value: unknown } | { path: JsonPath; delete: true } | { path: JsonPath; append: unknown };

export class RecipeEditError extends Error {}

/**
 * Apply edits in order; each path refers to the document as the previous edits left it (so delete
 * sequence items from the highest index down).
 */
export function applyRecipeEdits(text: string, edits: RecipeEdit[]): string {
  let t = text;
  for (const e of edits) t = applyOne(t, e);
  return t;
}

/** The same change as one minimal TextEdit on the original text (empty when nothing changes). */
export function recipeTextEdits(text: string, edits: RecipeEdit[]): TextEdit[] {
  const after = applyRecipeEdits(text, edits);
  if (after === text) return [];
  let s = 0;
  while (s < text.length && s < after.length && text[s] === after[s]) s++;
  let e = 0;
  while (e < text.length - s && e < after.length - s && text[text.length - 1 - e] === after[after.length - 1 - e]) e++;
  const lines = new LineIndex(text);
  return [{ range: lines.range(s, text.length - e), newText: after.slice(s, after.length - e) }];
}

// ---------------------------------------------------------------- one edit

const STR = { lineWidth: 0, indent: 2 } as const;

function isCollectionValue(v: unknown): boolean {
  return typeof v === 'object' && v !== null && (Array.isArray(v) ? v.length > 0 : Object.keys(v).length > 0);
}
function scalarText(v: unknown): string {
  return stringify(v, { ...STR, collectionStyle: 'flow' }).trimEnd();
}
function indentLines(block: string, ind: number): string {
  const pad = ' '.repeat(ind);
  return (
    block
      .replace(/\n$/, '')
      .split('\n')
      .map((l) => (l ? pad + l : l))
      .join('\n') + '\n'
  );
}
function entryText(key: string | number, value: unknown, ind: number): string {
  return indentLines(stringify({ [key]: value }, STR), ind);
}
function seqItemText(value: unknown, dashCol: number): string {
  const body = isCollectionValue(value) ? stringify(value, STR) : scalarText(value) + '\n';
  const lines = body.replace(/\n$/, '').split('\n');
  return (
    lines.map((l, i) => (i === 0 ? ' '.repeat(dashCol) + '- ' + l : l ? ' '.repeat(dashCol + 2) + l : l)).join('\n') +
    '\n'
  );
}
function nest(rest: JsonPath, value: unknown): unknown {
  let v = value;
  for (let i = rest.length - 1; i >= 0; i--) {
    if (typeof rest[i] === 'number')
      throw new RecipeEditError(`cannot create sequence item ${rest[i]} that does not exist`);
    v = { [rest[i]]: v };
  }
  return v;
}

class Text {
  constructor(public t: string) {}
  lineStart(o: number): number {
    return this.t.lastIndexOf('\n', o - 1) + 1;
  }
  /** Offset just past the end of the line holding `o` (after its newline). */
  lineEndIncl(o: number): number {
    const n = this.t.indexOf('\n', o);
    return n < 0 ? this.t.length : n + 1;
  }
  /** Index just past the last non-whitespace character in [from, to). */
  contentEnd(from: number, to: number): number {
    let i = Math.min(to, this.t.length);
    while (i > from && /\s/.test(this.t[i - 1])) i--;
    return i;
  }
  column(o: number): number {
    return o - this.lineStart(o);
  }
  splice(a: number, b: number, s: string): string {
    return this.t.slice(0, a) + s + this.t.slice(b);
  }
  /** Insert whole lines at a line boundary, adding the missing newline at end of file. */
  insertLines(at: number, lines: string): string {
    const needNl = at === this.t.length && this.t.length > 0 && !this.t.endsWith('\n');
    return this.splice(at, at, (needNl ? '\n' : '') + lines);
  }
}

function applyOne(text: string, e: RecipeEdit): string {
  const tooBig = yamlBoundsError(text); // size and depth bounded before the position-keeping parse
  if (tooBig) throw new RecipeEditError(`cannot edit this recipe: ${tooBig}`);
  const doc = parseDocument(text);
  if (doc.errors.length)
    throw new RecipeEditError(`cannot edit a recipe with YAML errors: ${doc.errors[0].message.split('\n')[0]}`);
  const T = new Text(text);
  if ('delete' in e) return deleteAt(doc, T, e.path);
  if ('append' in e) return appendAt(doc, T, e.path, e.append);
  return setAt(doc, T, e.path, e.value);
}

/** `key:` or `key: null` / `key: ~`: a value the edit fills in rather than replaces. */
function isEmpty(n: Node | undefined | null): boolean {
  return !n || (isScalar(n) && (n.value === null || n.value === undefined));
}

function setAt(doc: Document, T: Text, path: JsonPath, value: unknown): string {
  const loc = locate(doc, path);
  if (loc?.pair && isEmpty(loc.node)) return fillEmpty(T, loc.pair, value);
  if (loc?.node && path.length > 0) {
    const r = loc.node.range!;
    const flowOrScalar = isScalar(loc.node) || (loc.node as YAMLMap | YAMLSeq).flow;
    if (flowOrScalar || !isCollectionValue(value)) {
      if (!flowOrScalar && loc.pair) {
        // A block collection replaced by a scalar: `key: value` on the key's line.
        const keyEnd = (loc.pair.key as Node).range![1];
        return T.splice(keyEnd, T.contentEnd(r[0], r[1]), `: ${scalarText(value)}`);
      }
      return T.splice(r[0], r[1], scalarText(value));
    }
    // A block collection replaced by another: rewrite the entry in block style at its indentation.
    if (loc.pair) {
      const keyNode = loc.pair.key as Node;
      const start = T.lineStart(keyNode.range![0]);
      const end = T.lineEndIncl(T.contentEnd(r[0], r[1]));
      return T.splice(start, end, entryText(String(path[path.length - 1]), value, T.column(keyNode.range![0])));
    }
    return T.splice(r[0], r[1], scalarText(value));
  }
  // Find the deepest existing ancestor and create what is missing below it.
  for (let n = path.length - 1; n >= 0; n--) {
    const anc = locate(doc, path.slice(0, n));
    if (!anc) continue;
    const v = nest(path.slice(n + 1), value);
    const key = path[n];
    if (typeof key === 'number') {
      throw new RecipeEditError(`no item ${key} in ${path.slice(0, n).join('.') || 'the recipe'}`);
    }
    if (anc.pair && isEmpty(anc.node)) return fillEmpty(T, anc.pair, { [key]: v });
    const node = anc.node;
    if (
      node === undefined ||
      node === null ||
      (isScalar(node) && (node.value === null || node.value === undefined) && n === 0)
    ) {
      return T.insertLines(T.t.length, entryText(key, v, 0)); // empty document
    }
    if (isMap(node)) return insertIntoMap(T, node, key, v);
    throw new RecipeEditError(`${path.slice(0, n).join('.') || 'the recipe'} is not a mapping`);
  }
  throw new RecipeEditError('empty path');
}

/** `key:` with no value gets one: inline for scalars and empty collections, else a block below. */
function fillEmpty(T: Text, pair: Pair, value: unknown): string {
  const keyNode = pair.key as Node;
  const colon = T.t.indexOf(':', keyNode.range![1]);
  const old = (pair.value as Node | null)?.range;
  // An explicit `null` / `~` is replaced; an empty value is filled in after the colon.
  const oldEnd = old && old[1] > old[0] ? old[1] : colon + 1;
  if (!isCollectionValue(value)) return T.splice(colon + 1, oldEnd, ' ' + scalarText(value));
  const ind = T.column(keyNode.range![0]) + 2;
  const body = indentLines(stringify(value, STR), ind);
  const tail = T.t.slice(oldEnd, T.lineEndIncl(oldEnd)); // a comment after the colon stays on the key's line
  const nl = tail.endsWith('\n') ? '' : '\n';
  return T.t.slice(0, colon + 1) + tail.replace(/^[ \t]*(?=\S)/, ' ') + nl + body + T.t.slice(T.lineEndIncl(oldEnd));
}

function insertIntoMap(T: Text, map: YAMLMap, key: string | number, value: unknown): string {
  const r = map.range!;
  if (map.flow || map.items.length === 0) {
    const close = T.t.lastIndexOf('}', r[1]);
    if (close < r[0]) throw new RecipeEditError('cannot find the end of a flow mapping');
    const sep = map.items.length ? ', ' : '';
    return T.splice(close, close, `${sep}${scalarText({ [key]: value }).replace(/^\{\s*|\s*\}$/g, '')}`);
  }
  const first = map.items[0].key as Node;
  const ind = T.column(first.range![0]);
  const last = map.items[map.items.length - 1];
  const lastEnd = (last.value as Node | null)?.range ?? (last.key as Node).range!;
  const at = T.lineEndIncl(T.contentEnd(r[0], Math.max(lastEnd[1], (last.key as Node).range![1])));
  return T.insertLines(at, entryText(key, value, ind));
}

function deleteAt(doc: Document, T: Text, path: JsonPath): string {
  const loc = locate(doc, path);
  if (!loc || !loc.parent) return T.t;
  const parent = loc.parent;
  const parentPath = path.slice(0, -1);
  const ppair = parentPath.length ? locate(doc, parentPath)?.pair : undefined;
  if (parent.items.length === 1 && !parent.flow && ppair) {
    // Removing the last entry: leave an empty collection, not a null that the schema would refuse.
    const keyEnd = (ppair.key as Node).range![1];
    const r = parent.range!;
    return T.splice(keyEnd, T.contentEnd(r[0], r[1]), `: ${isSeq(parent) ? '[]' : '{}'}`);
  }
  const item = isSeq(parent) ? (loc.node as Node) : loc.pair!;
  const start = isSeq(parent) ? (loc.node as Node).range![0] : ((item as Pair).key as Node).range![0];
  const endNode = isSeq(parent)
    ? (loc.node as Node)
    : (((item as Pair).value as Node | null) ?? ((item as Pair).key as Node));
  const end = endNode.range![1];
  if (parent.flow) {
    let a = start,
      b = end;
    const after = /^\s*,\s*/.exec(T.t.slice(b));
    if (after) b += after[0].length;
    else {
      const before = /,\s*$/.exec(T.t.slice(parent.range![0], a));
      if (before) a -= before[0].length;
    }
    return T.splice(a, b, '');
  }
  return T.splice(T.lineStart(start), T.lineEndIncl(T.contentEnd(start, end)), '');
}

function appendAt(doc: Document, T: Text, path: JsonPath, item: unknown): string {
  const loc = locate(doc, path);
  if (!loc || !loc.node) return setAt(doc, T, path, [item]);
  const seq = loc.node;
  if (!isSeq(seq)) throw new RecipeEditError(`${path.join('.')} is not a sequence`);
  const r = seq.range!;
  if (seq.flow || seq.items.length === 0) {
    const close = T.t.lastIndexOf(']', r[1]);
    return T.splice(close, close, `${seq.items.length ? ', ' : ''}${scalarText(item)}`);
  }
  const firstStart = (seq.items[0] as Node).range![0];
  const dash = T.t.lastIndexOf('-', firstStart);
  const at = T.lineEndIncl(T.contentEnd(r[0], r[1]));
  return T.insertLines(at, seqItemText(item, T.column(dash)));
}

// ---------------------------------------------------------------- knobs → edits

/* eslint-disable @typescript-eslint/no-explicit-any */
/**
 * The edits that make a recipe document say what a tuner assignment says (plan.ts's knob language,
 * each knob as its section's kind in methods.ts says):
 * `quantize.bits` sets the default; `quantize.bits@glob` sets the field on the override whose match is
 * exactly `glob`, else appends `{match: glob, bits}`; `sparsity.pattern@glob` / `low_rank.rank@glob`
 * edit or append a rule (no scope means `**`); null ('none', 0 for rules) removes.
 */
export function knobEdits(assignment: Record<string, SearchValue>, currentDoc: unknown): RecipeEdit[] {
  const doc: any = currentDoc ?? {};
  const edits: RecipeEdit[] = [];
  const removals: { path: JsonPath; index: number }[] = [];
  const findLast = (arr: any, match: string) => {
    if (!Array.isArray(arr)) return -1;
    for (let i = arr.length - 1; i >= 0; i--) if (arr[i]?.match === match) return i;
    return -1;
  };
  for (const [key, value] of Object.entries(assignment)) {
    const { path: knob, scope } = parseKnob(key);
    const decl = knobDecl(knob);
    if (!decl) throw new RecipeEditError(knob.includes('.') ? `unknown knob ${key}` : `not a knob: ${key}`);
    const section = decl.section.name;
    const field = decl.knob.field;
    const kind = decl.section.kind;
    if (kind === 'settings' || (kind === 'overrides' && scope === undefined)) {
      if (decl.knob.scope === 'required' && scope === undefined) throw new RecipeEditError(scopeError(decl, scope)!);
      if (value === null) {
        if (doc[section]?.[field] !== undefined) edits.push({ path: [section, field], delete: true });
      } else edits.push({ path: [section, field], value });
    } else if (kind === 'overrides') {
      const i = findLast(doc[section]?.overrides, scope!);
      if (i >= 0) {
        if (value === null) {
          if (doc[section].overrides[i][field] !== undefined)
            edits.push({ path: [section, 'overrides', i, field], delete: true });
        } else edits.push({ path: [section, 'overrides', i, field], value });
      } else if (value !== null) {
        edits.push({ path: [section, 'overrides'], append: { match: scope, [field]: value } });
      }
    } else {
      const match = scope ?? '**';
      const i = findLast(doc[section]?.rules, match);
      if (removesRule(decl, value)) {
        if (i >= 0) removals.push({ path: [section, 'rules'], index: i });
      } else if (i >= 0) {
        edits.push({ path: [section, 'rules', i, field], value });
        // A rule holds either an N:M pattern or a ratio; setting one drops the other (as applyKnobs does).
        for (const other of decl.knob.excludes ?? []) {
          if (doc[section].rules[i][other] !== undefined)
            edits.push({ path: [section, 'rules', i, other], delete: true });
        }
      } else {
        edits.push({ path: [section, 'rules'], append: { match, [field]: value } });
      }
    }
  }
  // Sequence items go last, highest index first, so earlier paths stay valid.
  removals.sort((a, b) => b.index - a.index);
  for (const r of removals) edits.push({ path: [...r.path, r.index], delete: true });
  return edits;
}
/* eslint-enable @typescript-eslint/no-explicit-any */
