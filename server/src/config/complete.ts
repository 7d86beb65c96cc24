// Completion for recipes while they are being typed (and so often not valid YAML yet): the path at
// the cursor comes from indentation, the way block YAML is written, not from a parse tree; keys and
// enum values come from the schema; layer names and patterns come from the model.
import type { CompletionItem, Position } from 'vscode-languageserver-types';
import type { Layer } from '../model/graph';
import { KNOB_NAMES, knobSchema, schemaAt } from './schema';
import type { LayerIndex } from './layers';

const CompletionKind = { Property: 10, Value: 12, EnumMember: 20, Reference: 18, Constant: 21 } as const;

export interface CompletionContext {
  layers?: readonly Layer[];
  index?: LayerIndex;
}

interface LineInfo {
  indent: number;
  dash: boolean;
  contentCol: number;
  key?: string;
  hasValue: boolean;
}

function lineInfo(line: string): LineInfo | undefined {
  const m = /^(\s*)(-\s+)?(.*)$/.exec(line)!;
  const content = m[3].replace(/\s+#.*$/, '');
  if (!content.trim() && !m[2]) return undefined; // blank or comment-only
  if (content.startsWith('#')) return undefined;
  const km = /^("[^"]*"|'[^']*'|[^:#{[][^:#]*?):(\s+|$)(.*)$/.exec(content);
  return {
    indent: m[1].length,
    dash: !!m[2],
    contentCol: m[1].length + (m[2]?.length ?? 0),
    key: km ? km[1].replace(/^["']|["']$/g, '') : undefined,
    hasValue: !!km && km[3].trim() !== '',
  };
}

/**
 * The schema path of content starting at column `col` on line `lineNo`: the keys of the lines that
 * own it, '*' for sequence items. A line with a dash at our column's owner level makes us part of
 * that item's mapping.
 */
export function pathForLine(lines: string[], lineNo: number, col: number): (string | number)[] {
  const path: (string | number)[] = [];
  let cur = col;
  let leftSeq = false; // just stepped out of a sequence: its key may sit at the same indent
  for (let l = lineNo - 1; l >= 0; l--) {
    const info = lineInfo(lines[l]);
    if (!info) continue;
    if (info.contentCol > cur) continue; // deeper: a sibling's children
    if (info.contentCol === cur) {
      if (info.dash) {
        path.push('*'); // the first key of the sequence item we are in
        cur = info.indent;
        leftSeq = true;
      } else if (leftSeq && info.key && !info.hasValue) {
        path.push(info.key); // `overrides:\n- match: x` (sequence at its key's indent)
        leftSeq = false;
      }
      continue;
    }
    leftSeq = false;
    if (info.key && !info.hasValue) {
      path.push(info.key);
      cur = info.contentCol;
      if (info.dash) {
        path.push('*');
        cur = info.indent;
        leftSeq = true;
      }
    } else if (info.dash && !info.key) {
      path.push('*');
      cur = info.indent;
      leftSeq = true;
    } else {
      break; // `key: value` with less indentation cannot own us: malformed, stop here
    }
    if (cur === 0 && !leftSeq) break;
  }
  return path.reverse();
}

export function completeRecipe(text: string, pos: Position, ctx: CompletionContext = {}): CompletionItem[] {
  const lines = text.split(/\r?\n/);
  const line = lines[pos.line] ?? '';
  const before = line.slice(0, pos.character);
  const replaceFrom = (prefix: string) => ({
    start: { line: pos.line, character: pos.character - prefix.length },
    end: pos,
  });

  // Value position: `key: <cursor>` (also `- key: <cursor>`).
  // Right after the colon (`match:|`) too: the items then bring the space YAML needs.
  const vm = /^(\s*)(-\s+)?([\w.@*?/-]+|"[^"]*"):(?:\s+(\S*))?$/.exec(before);
  if (vm) {
    const base = pathForLine(lines, pos.line, vm[1].length);
    if (vm[2]) base.push('*');
    const key = vm[3].replace(/^"|"$/g, '');
    const prefix = vm[4] ?? '';
    const full = [...base, key];
    const spaced = (items: CompletionItem[]) =>
      vm[4] !== undefined
        ? items
        : items.map((i) =>
            i.textEdit && 'newText' in i.textEdit
              ? { ...i, textEdit: { ...i.textEdit, newText: ` ${i.textEdit.newText}` } }
              : i,
          );
    if (base.length === 2 && base[0] === 'search' && base[1] === 'space')
      return spaced(knobValueItems(key, prefix, replaceFrom(prefix)));
    if (key === 'match') return spaced(globItems(ctx, prefix, replaceFrom(prefix)));
    return spaced(valueItems(schemaAt(full), prefix, replaceFrom(prefix)));
  }
  // Key or sequence-item position.
  const km = /^(\s*)(-\s+)?([^:#\s]*)$/.exec(before);
  if (!km) return [];
  const indentCol = km[1].length + (km[2]?.length ?? 0);
  const prefix = km[3];
  const path = pathForLine(lines, pos.line, km[1].length);
  if (km[2]) path.push('*');
  const range = replaceFrom(prefix);
  if (path.length === 2 && path[0] === 'search' && path[1] === 'space') return knobItems(ctx, prefix, range);
  const s = schemaAt(path);
  if (!s) return [];
  if (s.type === 'object' && s.properties) {
    const present = siblingKeys(lines, pos.line, indentCol, !!km[2]);
    return Object.entries(s.properties as Record<string, Record<string, unknown>>)
      .filter(([k]) => !present.has(k))
      .map(([k, raw]) => {
        const ps = schemaAt([...path, k]) ?? raw;
        const block =
          ps.type === 'object'
            ? `${k}:\n${' '.repeat(indentCol + 2)}`
            : ps.type === 'array'
              ? `${k}:\n${' '.repeat(indentCol + 2)}- `
              : `${k}: `;
        return {
          label: k,
          kind: CompletionKind.Property,
          detail: ps.enum ? (ps.enum as unknown[]).join(' | ') : (ps.type as string | undefined),
          documentation: ps.description ? { kind: 'markdown' as const, value: String(ps.description) } : undefined,
          textEdit: { range, newText: block },
          insertTextMode: 1,
          filterText: k,
        };
      });
  }
  // A sequence of globs (quantize.skip) or of scalars.
  if (km[2] && path[path.length - 1] === '*' && (s.description ?? '').startsWith('Glob'))
    return globItems(ctx, prefix, range);
  return valueItems(s, prefix, range);
}

/** Keys already written in the mapping the cursor is in (same column, same block). */
function siblingKeys(lines: string[], lineNo: number, col: number, startsItem: boolean): Set<string> {
  const keys = new Set<string>();
  // Upwards until the line that starts this mapping (a dash at our column) or a shallower line.
  for (let l = lineNo - 1; l >= 0 && !startsItem; l--) {
    const info = lineInfo(lines[l]);
    if (!info) continue;
    if (info.contentCol < col) break;
    if (info.contentCol === col && info.key) keys.add(info.key);
    if (info.contentCol === col && info.dash) break;
  }
  // Downwards until the next item or a shallower line.
  for (let l = lineNo + 1; l < lines.length; l++) {
    const info = lineInfo(lines[l]);
    if (!info) continue;
    if (info.contentCol < col || (info.dash && info.contentCol === col)) break;
    if (info.contentCol === col && info.key) keys.add(info.key);
  }
  return keys;
}

type Range = { start: Position; end: Position };

function valueItems(s: Record<string, unknown> | undefined, _prefix: string, range: Range): CompletionItem[] {
  if (!s) return [];
  const vals: unknown[] = Array.isArray(s.enum)
    ? s.enum
    : s.type === 'boolean'
      ? [true, false]
      : s.const !== undefined
        ? [s.const]
        : [];
  return vals.map((v, i) => ({
    label: String(v),
    kind: CompletionKind.EnumMember,
    sortText: String(i).padStart(3, '0'),
    documentation: s.description ? { kind: 'markdown' as const, value: String(s.description) } : undefined,
    textEdit: { range, newText: String(v) },
  }));
}

/** Useful patterns for a model: each `layers.<i>` generalised to `*`, each module group, the head. */
export function layerPatterns(layers: readonly Layer[]): string[] {
  const out = new Set<string>();
  for (const l of layers) {
    const generic = l.name.replace(/\.layers\.\d+\./, '.layers.*.');
    if (generic !== l.name) {
      out.add(generic);
      const parts = generic.split('.');
      if (parts.length > 4) out.add([...parts.slice(0, -1), '*'].join('.'));
    }
  }
  out.add('**');
  return [...out];
}

function globItems(ctx: CompletionContext, prefix: string, range: Range): CompletionItem[] {
  if (!ctx.layers) return [];
  const quote = prefix.startsWith('"') ? '"' : '';
  const items: CompletionItem[] = [];
  layerPatterns(ctx.layers).forEach((p, i) => {
    const n = ctx.index ? ctx.index.match(p).length : undefined;
    items.push({
      label: p,
      kind: CompletionKind.Reference,
      detail: n !== undefined ? `matches ${n} layer${n === 1 ? '' : 's'}` : 'pattern',
      sortText: `0${String(i).padStart(4, '0')}`,
      textEdit: { range, newText: p === '**' || p.startsWith('*') ? `"${p}"` : quote + p + quote },
      filterText: quote + p,
    });
  });
  ctx.layers.forEach((l, i) => {
    items.push({
      label: l.name,
      kind: CompletionKind.Value,
      detail: `${l.op} ${l.K}×${l.N}`,
      sortText: `1${String(i).padStart(5, '0')}`,
      textEdit: { range, newText: quote + l.name + quote },
      filterText: quote + l.name,
    });
  });
  return items;
}

function knobItems(ctx: CompletionContext, prefix: string, range: Range): CompletionItem[] {
  const items: CompletionItem[] = KNOB_NAMES.map((k, i) => {
    const s = knobSchema(k);
    const vals = Array.isArray(s?.enum) ? `[${(s.enum as unknown[]).join(', ')}]` : '[]';
    return {
      label: k,
      kind: CompletionKind.Property,
      detail: 'knob',
      documentation: s?.description ? { kind: 'markdown' as const, value: String(s.description) } : undefined,
      sortText: `0${String(i).padStart(3, '0')}`,
      textEdit: { range, newText: `${k}: ${vals}` },
      filterText: k,
    };
  });
  // Layer-scoped knobs once the user has typed `knob@`.
  const at = prefix.indexOf('@');
  if (at > 0 && ctx.layers) {
    const knob = prefix.slice(0, at);
    for (const p of layerPatterns(ctx.layers)) {
      items.push({
        label: `${knob}@${p}`,
        kind: CompletionKind.Reference,
        detail: `${ctx.index?.match(p).length ?? '?'} layers`,
        textEdit: { range, newText: `${knob}@${p}: ` },
        filterText: `${knob}@${p}`,
      });
    }
  }
  return items;
}

function knobValueItems(knob: string, _prefix: string, range: Range): CompletionItem[] {
  const s = knobSchema(knob.split('@')[0]);
  if (!s) return [];
  const vals: unknown[] = Array.isArray(s.enum) ? s.enum : s.type === 'boolean' ? [true, false] : [];
  if (!vals.length) return [];
  return [
    {
      label: `[${vals.join(', ')}]`,
      kind: CompletionKind.Constant,
      detail: 'all values',
      textEdit: { range, newText: `[${vals.join(', ')}]` },
    },
  ];
}
