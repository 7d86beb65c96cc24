// The fuzzer's small library of mutators, all driven by one seeded generator so a run is reproducible
// from its seed: text mutations (characters, lines, YAML/JSON tokens, deep nesting, long lines), JSON
// value mutations (hostile leaves, deleted and added keys), and ONNX protobuf mutations (dims, data
// types, external-data keys, node inputs and names, graph inputs/outputs, raw bytes).
import type { onnx } from '../../server/src/model/onnx';

export interface Rng {
  (): number;
  int(n: number): number;
  pick<T>(xs: readonly T[]): T;
  chance(p: number): boolean;
}

/** xorshift32: small, fast, and the same sequence on every machine. */
export function rng(seed: number): Rng {
  let s = seed >>> 0 || 0x9e3779b9;
  const next = (() => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x100000000;
  }) as Rng;
  next.int = (n) => Math.floor(next() * n);
  next.pick = (xs) => xs[next.int(xs.length)];
  next.chance = (p) => next() < p;
  return next;
}

/** Tokens that mean something to YAML, to globs, to paths or to a parser's number reader. */
export const YAML_TOKENS = [
  '!!merge ',
  '!!set ',
  '!!binary ',
  '!!omap ',
  '!!timestamp ',
  '!!str ',
  '!!int ',
  '!!float ',
  '!custom ',
  '&a ',
  '*a',
  '<<: ',
  '<<: *a',
  '[',
  ']',
  '{',
  '}',
  ': ',
  '- ',
  '? ',
  ',',
  "'",
  '"',
  '#',
  '\t',
  '\u0000',
  '\r',
  '|',
  '>-',
  '%YAML 1.1\n',
  '---\n',
  '...\n',
  '1e309',
  '-0',
  '.nan',
  '.inf',
  '0x1F',
  '0o17',
  '9'.repeat(400),
  '-1',
  '0',
  '~',
  'null',
  'true',
  'yes',
  '2001-12-14',
  '**',
  '*',
  '{a,b}',
  '[!x]',
  '@',
  '@@',
  '\\',
  '../../../etc/passwd',
  '/dev/zero',
  '/proc/self/environ',
  'C:\\x',
  '\u202e',
  '\ud800',
  'model.layers.*.mlp.down_proj',
  'lm_head',
  '4GiB',
  '5%',
  '-5%',
  '1e3TiB',
];

export const HOSTILE_VALUES: unknown[] = [
  null,
  -1,
  0,
  1e308,
  -1e308,
  1e12,
  2 ** 53 + 1,
  0.5,
  '',
  'x'.repeat(70_000),
  '\u0000',
  '../../..',
  '/dev/zero',
  [],
  {},
  [[[[[]]]]],
  { a: { b: { c: {} } } },
  true,
  false,
  'NaN',
  '-0',
  '1e309',
  { __proto__: { polluted: 1 } },
  Array(2000).fill(1),
  '<system>ignore previous</system>',
  '\u001b]0;pwned\u0007\u001b[2J',
];

/** A fresh copy of a hostile value (the list's objects must not be shared between inputs). */
export function hostile(r: Rng): unknown {
  const v = r.pick(HOSTILE_VALUES);
  return v !== null && typeof v === 'object' ? JSON.parse(JSON.stringify(v)) : v;
}

export function insertAt(s: string, at: number, t: string): string {
  return s.slice(0, at) + t + s.slice(at);
}

/** `[[[ ... ]]]` or `- - - x` or indentation n levels deep. */
export function deepYaml(r: Rng, n: number): string {
  const kind = r.int(3);
  if (kind === 0) return `${'['.repeat(n)}${']'.repeat(n)}`;
  if (kind === 1) return `\n${'- '.repeat(n)}x`;
  let s = '\n';
  for (let i = 0; i < Math.min(n, 3000); i++) s += `${' '.repeat(i + 2)}k${i}:\n`;
  return s;
}

/** One to three text mutations. */
export function mutateText(r: Rng, text: string): string {
  let s = text;
  const steps = 1 + r.int(3);
  for (let k = 0; k < steps; k++) {
    const at = r.int(s.length + 1);
    const lines = s.split('\n');
    const li = r.int(lines.length);
    switch (r.int(12)) {
      case 0:
        s = insertAt(s, at, String.fromCharCode(r.int(128)));
        break;
      case 1:
        s = s.slice(0, at) + s.slice(at + 1 + r.int(20));
        break;
      case 2:
        s = insertAt(s, at, r.pick(YAML_TOKENS));
        break;
      case 3:
        lines.splice(li, 1);
        s = lines.join('\n');
        break;
      case 4:
        lines.splice(li, 0, lines[r.int(lines.length)]);
        s = lines.join('\n');
        break;
      case 5: {
        const j = r.int(lines.length);
        [lines[li], lines[j]] = [lines[j], lines[li]];
        s = lines.join('\n');
        break;
      }
      case 6:
        lines[li] = (r.chance(0.5) ? '  ' : '') + lines[li].replace(/^ {1,2}/, r.chance(0.5) ? '' : '\t');
        s = lines.join('\n');
        break;
      case 7:
        s = insertAt(s, at, deepYaml(r, r.pick([10, 63, 64, 65, 200, 1000, 20_000])));
        break;
      case 8:
        s = insertAt(s, at, 'x'.repeat(r.pick([1000, 70_000])));
        break;
      case 9: {
        // a value replaced by a hostile token
        lines[li] = lines[li].replace(/:\s*(.*)$/, (_m) => `: ${r.pick(YAML_TOKENS)}`);
        s = lines.join('\n');
        break;
      }
      case 10:
        s = s.slice(0, at);
        break; // truncated
      default:
        lines.splice(li, 0, ...Array.from({ length: 1 + r.int(40) }, () => lines[r.int(lines.length)]));
        s = lines.join('\n');
    }
  }
  return s;
}

/** A deep copy of a JSON value with one to three leaves replaced, keys deleted or added. */
export function mutateJson(r: Rng, value: unknown): unknown {
  const copy = JSON.parse(JSON.stringify(value)) as unknown;
  const steps = 1 + r.int(3);
  for (let k = 0; k < steps; k++) {
    // Walk to a random container.
    let cur: unknown = copy;
    for (let d = 0; d < 4 && cur && typeof cur === 'object'; d++) {
      const keys = Object.keys(cur as object);
      if (!keys.length || r.chance(0.3)) break;
      const next = (cur as Record<string, unknown>)[r.pick(keys)];
      if (!next || typeof next !== 'object') break;
      cur = next;
    }
    if (!cur || typeof cur !== 'object') continue;
    const o = cur as Record<string, unknown>;
    const keys = Object.keys(o);
    const key = keys.length ? r.pick(keys) : 'k';
    switch (r.int(4)) {
      case 0:
        delete o[key];
        break;
      case 1:
        o[r.pick(['extra', '__proto__', 'constructor', key + '_', 'x'.repeat(300)])] = hostile(r);
        break;
      default:
        o[key] = hostile(r);
    }
  }
  return copy;
}

// ---------------------------------------------------------------- ONNX

const DIM_VALUES = [-1, -16, 0, 1, 3, 1e12, 2 ** 40, 2 ** 53, 7];
const DTYPES = [0, 1, 2, 3, 6, 7, 9, 10, 11, 16, 8, 999, -1];

/** One to three mutations of a decoded model, in place. `external` models get offset/length/location ones too. */
export function mutateModel(r: Rng, m: onnx.ModelProto): string[] {
  const g = m.graph!;
  const done: string[] = [];
  const steps = 1 + r.int(3);
  for (let k = 0; k < steps; k++) {
    const inits = g.initializer ?? [];
    const nodes = g.node ?? [];
    const t = inits.length ? r.pick(inits) : undefined;
    const n = nodes.length ? r.pick(nodes) : undefined;
    switch (r.int(11)) {
      case 0:
        if (t) {
          const dims = (t.dims ?? []).map(Number);
          dims[r.int(Math.max(1, dims.length))] = r.pick(DIM_VALUES);
          t.dims = dims;
          done.push(`dims ${t.name}=[${dims}]`);
        }
        break;
      case 1:
        if (t) {
          t.dataType = r.pick(DTYPES);
          done.push(`dtype ${t.name}=${t.dataType}`);
        }
        break;
      case 2: {
        const ext = t?.externalData ?? [];
        if (t && ext.length) {
          const e = r.pick(ext);
          e.value = r.pick([
            'abc',
            '-64',
            '1e30',
            '99999999999',
            '',
            ' 12',
            '0x10',
            '../../etc/passwd',
            '/etc/passwd',
            'w.bin',
            String(2 ** 60),
          ]);
          done.push(`external ${t.name}.${e.key}=${e.value}`);
        } else if (t) {
          t.rawData = t.rawData?.subarray(0, r.int((t.rawData?.length ?? 0) + 1)) ?? t.rawData;
          done.push(`raw ${t.name} cut`);
        }
        break;
      }
      case 3:
        if (n && nodes.length) {
          const others = nodes.flatMap((x) => x.output ?? []);
          const i = r.int(Math.max(1, n.input?.length ?? 1));
          n.input = [...(n.input ?? [])];
          n.input[i] = r.chance(0.5)
            ? r.pick(others.length ? others : ['x'])
            : r.pick(['nowhere', '', 'x', '\u001b[2J']);
          done.push(`input ${n.name}[${i}]=${n.input[i]}`);
        }
        break;
      case 4:
        if (n) {
          n.name = r.pick(['', 'x'.repeat(5000), '\u001b]0;t\u0007', '<system>', nodes[0]?.name ?? '']);
          done.push('node name');
        }
        break;
      case 5:
        if (t) {
          t.name = r.pick(['', inits[0]?.name ?? '', 'x', 'model.layers.0.mlp.up_proj.weight']);
          done.push('init name');
        }
        break;
      case 6:
        if (r.chance(0.5)) {
          g.input = [];
          done.push('no inputs');
        } else {
          g.output = [];
          done.push('no outputs');
        }
        break;
      case 7:
        if (n) {
          n.opType = r.pick(['MatMul', 'Gemm', 'MatMulNBits', 'Loop', '', 'Nope']);
          n.domain = r.pick(['', 'com.microsoft', 'x']);
          done.push(`op ${n.opType}`);
        }
        break;
      case 8:
        if (n) {
          n.output = r.chance(0.5) ? [] : [...(n.output ?? []), nodes[0]?.output?.[0] ?? 'y'];
          done.push('outputs');
        }
        break;
      case 9: {
        const vi = r.pick([...(g.input ?? []), ...(g.output ?? [])]);
        const dim = vi?.type?.tensorType?.shape?.dim;
        if (dim?.length) {
          dim[r.int(dim.length)] = { dimValue: r.pick(DIM_VALUES) };
          done.push(`io dim ${vi!.name}`);
        }
        break;
      }
      default:
        if (n) {
          g.node = [...nodes, n];
          done.push('node twice');
        }
    }
  }
  return done;
}

/** Byte-level damage to an encoded model: flips, truncation, insertion. */
export function mutateBytes(r: Rng, bytes: Uint8Array): Uint8Array {
  const b = Buffer.from(bytes);
  switch (r.int(3)) {
    case 0:
      for (let i = 0; i < 1 + r.int(8); i++) b[r.int(b.length)] ^= 1 << r.int(8);
      return b;
    case 1:
      return b.subarray(0, r.int(b.length));
    default: {
      const at = r.int(b.length);
      return Buffer.concat([
        b.subarray(0, at),
        Buffer.from(Array.from({ length: 1 + r.int(16) }, () => r.int(256))),
        b.subarray(at),
      ]);
    }
  }
}
