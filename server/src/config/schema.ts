// JSON Schema validation of a recipe (the schema ./recipeSchema builds, ajv with allErrors), with every
// error mapped back to a precise range: unknown keys on the key itself, wrong values on the value.
import Ajv, { ErrorObject } from 'ajv';
import { Diagnostic, closest, diag } from './diagnostics';
import { JsonPath, ParsedYaml, rangeOf } from './parse';
import { KNOB_NAMES, knobDecl, knobSchemaPath, removesRule } from './methods';
import { buildRecipeSchema } from './recipeSchema';

/* eslint-disable @typescript-eslint/no-explicit-any */
export const recipeSchema: any = buildRecipeSchema();

const ajv = new Ajv({ allErrors: true, strict: false, verbose: true });
// Compiled on first use: compiling is a few ms that server start-up need not pay.
let compiled: ReturnType<typeof ajv.compile> | undefined;
const validateRecipe = (v: unknown) => (compiled ??= ajv.compile(recipeSchema))(v);
const lastErrors = () => compiled?.errors;

/** Resolve a local `$ref` (`#/definitions/x`) and merge sibling keywords (a $ref with a description). */
export function deref(s: any): any {
  if (!s || typeof s !== 'object' || typeof s.$ref !== 'string') return s;
  const target = s.$ref
    .replace(/^#\//, '')
    .split('/')
    .reduce((o: any, k: string) => o?.[k], recipeSchema);
  const { $ref: _ignored, ...rest } = s;
  return { ...deref(target), ...rest };
}

/** The schema that applies at a path (array indexes as numbers or '*'); undefined outside the schema. */
export function schemaAt(path: readonly (string | number)[]): any {
  let s = deref(recipeSchema);
  for (const seg of path) {
    if (!s) return undefined;
    if (typeof seg === 'number' || seg === '*') s = deref(s.items);
    else if (s.properties && seg in s.properties) s = deref(s.properties[seg]);
    else if (s.additionalProperties && typeof s.additionalProperties === 'object') s = deref(s.additionalProperties);
    else return undefined;
  }
  return s;
}

/** `/quantize/overrides/3/bits` → ['quantize','overrides',3,'bits'] (numbers where the data has arrays). */
function pointerToPath(pointer: string, data: unknown): JsonPath {
  const path: JsonPath = [];
  let cur: any = data;
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    const key: string | number = Array.isArray(cur) && /^\d+$/.test(seg) ? Number(seg) : seg;
    path.push(key);
    cur = cur?.[key];
  }
  return path;
}

const show = (v: unknown) => (typeof v === 'string' ? `'${v}'` : JSON.stringify(v));
const typeName = (v: unknown) =>
  v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'a mapping' : typeof v;
const where = (path: JsonPath) => (path.length ? path.join('.') : 'the recipe');

export interface SchemaResult {
  diagnostics: Diagnostic[];
  /** JSON paths of the offending values / keys, for pruning before the semantic stage. */
  paths: { path: JsonPath; keyword: string }[];
}

export function validateSchema(p: ParsedYaml, value: unknown = p.value): SchemaResult {
  const out: SchemaResult = { diagnostics: [], paths: [] };
  if (validateRecipe(value)) return out;
  const errors = (lastErrors() ?? []) as ErrorObject[];
  // anyOf failures come with one error per branch at the same place: keep only the summary.
  const anyOfAt = new Set(errors.filter((e) => e.keyword === 'anyOf').map((e) => e.instancePath));
  const seen = new Set<string>();
  for (const e of errors) {
    if (e.keyword !== 'anyOf' && anyOfAt.has(e.instancePath)) continue;
    if (e.keyword === 'if') continue;
    const d = toDiagnostic(e, p, value, out);
    if (!d) continue;
    const k = `${d.code}|${JSON.stringify(d.range)}`;
    if (seen.has(k)) continue;
    seen.add(k);
    out.diagnostics.push(d);
  }
  return out;
}

function toDiagnostic(e: ErrorObject, p: ParsedYaml, root: unknown, out: SchemaResult): Diagnostic | undefined {
  const path = pointerToPath(e.instancePath, root);
  const parent: any = e.parentSchema ?? {};
  const desc: string | undefined = parent.description;
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = (e.params as any).additionalProperty as string;
      const allowed = Object.keys(parent.properties ?? {});
      const guess = closest(key, allowed);
      const keyPath = [...path, key];
      out.paths.push({ path: keyPath, keyword: e.keyword });
      return diag(
        rangeOf(p, keyPath, 'key'),
        'error',
        'unknown-key',
        `unknown key '${key}' in ${where(path)}${guess ? `; did you mean '${guess}'?` : ''} ` +
          `Allowed: ${allowed.join(', ')}`,
        guess ? { fix: 'rename-key', path: keyPath, to: guess } : { fix: 'remove', path: keyPath },
      );
    }
    case 'propertyNames':
      return undefined; // reported by the inner error, which names the property
    case 'required': {
      const missing = (e.params as any).missingProperty as string;
      out.paths.push({ path, keyword: e.keyword });
      return diag(rangeOf(p, path, 'key'), 'error', 'missing-key', `${where(path)} needs '${missing}'`);
    }
    case 'type': {
      out.paths.push({ path, keyword: e.keyword });
      const want = (e.params as any).type;
      return diag(
        rangeOf(p, path),
        'error',
        'wrong-type',
        `${where(path)} must be ${Array.isArray(want) ? want.join(' or ') : want}, ` +
          `got ${typeName(e.data)}${desc ? ` — ${desc}` : ''}`,
      );
    }
    case 'enum':
    case 'const': {
      out.paths.push({ path, keyword: e.keyword });
      const allowed: unknown[] =
        e.keyword === 'enum' ? (e.params as any).allowedValues : [(e.params as any).allowedValue];
      const values = nearestFirst(e.data, allowed);
      return diag(
        rangeOf(p, path),
        'error',
        'invalid-value',
        `${where(path)}: ${show(e.data)} is not allowed; use one of ${allowed.map(show).join(', ')}`,
        { fix: 'replace', path, values },
      );
    }
    case 'pattern': {
      const propertyName = (e as any).propertyName ?? (e.params as any).propertyName;
      if (propertyName !== undefined) {
        const keyPath = [...path, propertyName];
        out.paths.push({ path: keyPath, keyword: 'additionalProperties' });
        const at = String(propertyName).indexOf('@');
        const name = at < 0 ? String(propertyName) : String(propertyName).slice(0, at);
        const guess = closest(name, KNOB_NAMES);
        const to = guess && guess + (at < 0 ? '' : String(propertyName).slice(at));
        return diag(
          rangeOf(p, keyPath, 'key'),
          'error',
          'unknown-knob',
          `'${propertyName}' is not a knob${guess ? `; did you mean '${to}'?` : ''} ` +
            `Knobs: ${KNOB_NAMES.join(', ')}, optionally scoped to layers with @glob`,
          to ? { fix: 'rename-key', path: keyPath, to } : undefined,
        );
      }
      out.paths.push({ path, keyword: e.keyword });
      return diag(
        rangeOf(p, path),
        'error',
        'invalid-value',
        `${where(path)}: ${show(e.data)} is not valid${desc ? ` — ${desc}` : ` (pattern ${e.schema})`}`,
      );
    }
    case 'anyOf': {
      out.paths.push({ path, keyword: e.keyword });
      return diag(
        rangeOf(p, path),
        'error',
        'invalid-value',
        `${where(path)}: ${show(e.data)} is not valid${desc ? ` — ${desc}` : ''}`,
      );
    }
    default: {
      const pn = (e as any).propertyName;
      if (pn !== undefined) {
        const keyPath = [...path, pn];
        out.paths.push({ path: keyPath, keyword: 'additionalProperties' });
        const msg = `a key in ${where(path)} is ${String(pn).length} characters long: ${e.message ?? 'not valid'}`;
        return diag(rangeOf(p, keyPath, 'key'), 'error', 'out-of-range', msg);
      }
      out.paths.push({ path, keyword: e.keyword });
      const code = /^(minimum|maximum|exclusiveMinimum|exclusiveMaximum|minLength|maxLength|minItems|maxItems)$/.test(
        e.keyword,
      )
        ? 'out-of-range'
        : 'invalid-value';
      return diag(
        rangeOf(p, path),
        'error',
        code,
        `${where(path)} ${e.message ?? 'is not valid'}${desc ? ` — ${desc}` : ''}`,
      );
    }
  }
}

/** Allowed values ordered by closeness to the wrong one (numbers by distance, strings by edit distance). */
function nearestFirst(v: unknown, allowed: unknown[]): unknown[] {
  if (typeof v === 'number') return [...allowed].sort((a, b) => Math.abs(Number(a) - v) - Math.abs(Number(b) - v));
  if (typeof v === 'string') {
    const best = closest(v, allowed.map(String));
    if (best !== undefined)
      return [allowed.find((a) => String(a) === best), ...allowed.filter((a) => String(a) !== best)];
  }
  return allowed;
}

// ---------------------------------------------------------------- knobs of search.space

/** Knob names (without the @glob scope), from the method table; a unit test holds the schema's pattern to it. */
export { KNOB_NAMES } from './methods';

/** The recipe schema for the value a knob sets (`quantize.bits` → the bits enum); undefined for no knob. */
export function knobSchema(knob: string): any {
  const decl = knobDecl(knob.split('@')[0]);
  if (!decl) return undefined;
  const at = knobSchemaPath(decl);
  return at ? schemaAt(at) : decl.knob.schema;
}

const knobValidators = new Map<string, ReturnType<typeof ajv.compile>>();
/** Whether a search.space value is one the knob can take (null/'none'/0 remove sparsity and low-rank rules). */
export function knobValueError(knob: string, value: unknown): string | undefined {
  const name = knob.split('@')[0];
  const decl = knobDecl(name);
  if (decl && removesRule(decl, value)) return undefined;
  const s = knobSchema(name);
  if (!s) return undefined;
  let v = knobValidators.get(name);
  if (!v) {
    v = ajv.compile(s);
    knobValidators.set(name, v);
  }
  if (v(value)) return undefined;
  if (s.enum) return `${show(value)} is not a value of ${name}; allowed: ${s.enum.map(show).join(', ')}`;
  const e = v.errors?.[0];
  return (
    `${show(value)} is not a value of ${name}: ` +
    `${e?.message ?? 'invalid'}${s.description ? ` — ${s.description}` : ''}`
  );
}
/* eslint-enable @typescript-eslint/no-explicit-any */
