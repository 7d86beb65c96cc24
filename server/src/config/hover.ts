// Hover for recipes: what a layer pattern matches (shapes, parameters, bytes at the planned
// precision), model totals, and the schema's description of a key.
import * as path from 'node:path';
import type { Hover, Position } from 'vscode-languageserver-types';
import { humanBytes, humanCount } from '../util/format';
import type { RecipeAnalysis } from './check';
import type { PlannedLayer } from './layers';
import { plannedBytes } from './layers';
import { ruleLabels } from './planner';
import { JsonPath, pathAt } from './parse';
import { knobSchema, schemaAt } from './schema';
import { parseKnob } from './plan';
import { globFields, sectionDecl } from './methods';

/** Where a glob is written: a skip entry, a `match`, or the scope of a search knob. */
export function globAt(p: JsonPath, onKey: boolean): 'value' | 'knob' | undefined {
  const [a, b, , d] = p;
  const section = sectionDecl(a);
  const globs = section && globFields(section);
  if (!onKey && globs && p.length === 3 && globs.lists.includes(String(b))) return 'value';
  if (!onKey && globs && p.length === 4 && d === 'match' && b === globs.matchIn) return 'value';
  if (onKey && a === 'search' && b === 'space' && p.length === 3 && String(p[2]).includes('@')) return 'knob';
  return undefined;
}

export function precisionLabel(p: PlannedLayer | undefined, dtype = 'fp32'): string {
  if (!p) return dtype;
  const parts: string[] = [];
  if (p.quant)
    parts.push(
      `int${p.quant.bits} b${p.quant.block_size}${p.quant.symmetric ? '' : ' asym'} acc${p.quant.accuracy_level}`,
    );
  parts.push(...ruleLabels(p));
  return parts.length ? parts.join(', ') : p.layer.dtype === 'FLOAT' ? 'fp32' : p.layer.dtype.toLowerCase();
}

export const HOVER_MAX_ROWS = 16;

export function layersTable(a: RecipeAnalysis, indexes: number[], title: string): string {
  const g = a.graph!;
  const plan = a.plan;
  const params = indexes.reduce((s, i) => s + g.layers[i].params, 0);
  const now = indexes.reduce((s, i) => s + g.layers[i].bytes, 0);
  const planned = plan ? indexes.reduce((s, i) => s + plannedBytes(plan[i]), 0) : now;
  const out = [
    `${title} matches **${indexes.length}** of ${g.layers.length} layers: ` +
      `${humanCount(params)} parameters, ${humanBytes(now)} now → ${humanBytes(planned)} planned`,
    '',
    '| layer | K×N | params | planned | bytes |',
    '| --- | --- | ---: | --- | ---: |',
  ];
  for (const i of indexes.slice(0, HOVER_MAX_ROWS)) {
    const l = g.layers[i];
    const p = plan?.[i];
    out.push(
      `| \`${l.name}\` | ${l.K}×${l.N} | ${humanCount(l.params)} | ` +
        `${precisionLabel(p)} | ${humanBytes(p ? plannedBytes(p) : l.bytes)} |`,
    );
  }
  if (indexes.length > HOVER_MAX_ROWS) out.push('', `… and ${indexes.length - HOVER_MAX_ROWS} more`);
  return out.join('\n');
}

export function modelSummary(a: RecipeAnalysis): string | undefined {
  const g = a.graph;
  if (!g) return undefined;
  const ops = Object.entries(g.layers.reduce<Record<string, number>>((m, l) => ((m[l.op] = (m[l.op] ?? 0) + 1), m), {}))
    .map(([op, n]) => `${n} ${op}`)
    .join(', ');
  const layersNow = g.layers.reduce((s, l) => s + l.bytes, 0);
  const planned = a.plan ? a.plan.reduce((s, p) => s + plannedBytes(p), 0) : layersNow;
  const other = Math.max(0, g.weightBytes - layersNow);
  return [
    `**${path.basename(g.path)}**: ${g.layers.length} compressible layers (${ops}), ${g.nodeCount} nodes`,
    '',
    `- parameters: ${humanCount(g.totals.params)} (${humanCount(g.totals.layerParams)} in layers)`,
    `- weights now: ${humanBytes(g.weightBytes)} (layers ${humanBytes(layersNow)})`,
    `- weights planned: ${humanBytes(other + planned)} (layers ${humanBytes(planned)})`,
    `- inputs: ${g.inputs
      .slice(0, 4)
      .map((i) => `\`${i.name}\``)
      .join(', ')}${g.inputs.length > 4 ? ` and ${g.inputs.length - 4} more` : ''}`,
  ].join('\n');
}

export function hoverRecipe(a: RecipeAnalysis, pos: Position): Hover | undefined {
  const offset = a.parsed.lines.offset(pos);
  const at = pathAt(a.parsed.doc, offset);
  if (!at || !at.node?.range) return undefined;
  const range = a.parsed.lines.range(at.node.range[0], at.node.range[1]);
  const where = globAt(at.path, at.onKey);
  if (where && a.graph && a.index) {
    const raw = where === 'knob' ? String(at.path[2]) : String((at.node as { value?: unknown }).value ?? '');
    const glob = where === 'knob' ? (parseKnob(raw).scope ?? '') : raw;
    const hits = a.index.match(glob);
    const head = where === 'knob' ? `${knobDescription(raw)}\n\n` : '';
    const body = hits.length
      ? layersTable(a, hits, `\`${glob}\``)
      : `\`${glob}\` matches no layer of ${path.basename(a.graph.path)}`;
    return { contents: { kind: 'markdown', value: head + body }, range };
  }
  if (at.path.length === 1 && at.path[0] === 'model') {
    const s = modelSummary(a);
    const desc = schemaAt(['model'])?.description;
    return { contents: { kind: 'markdown', value: s ?? desc ?? '' }, range };
  }
  if (at.onKey) {
    if (at.path[0] === 'search' && at.path[1] === 'space' && at.path.length === 3) {
      return { contents: { kind: 'markdown', value: knobDescription(String(at.path[2])) }, range };
    }
    const s = schemaAt(at.path);
    if (s?.description)
      return {
        contents: { kind: 'markdown', value: `**${at.path[at.path.length - 1]}**: ${s.description}${enumLine(s)}` },
        range,
      };
  }
  return undefined;
}

function enumLine(s: { enum?: unknown[] }): string {
  return s.enum ? `\n\nValues: ${s.enum.map((v) => `\`${v}\``).join(', ')}` : '';
}

function knobDescription(knob: string): string {
  const { path: name, scope } = parseKnob(knob);
  const s = knobSchema(name);
  return (
    `**${name}**${scope ? ` for layers \`${scope}\`` : ''}: ` +
    `${s?.description ?? 'tuner knob'}${s ? enumLine(s) : ''}`
  );
}
