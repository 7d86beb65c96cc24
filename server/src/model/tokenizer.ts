// Byte-level BPE tokenizers read from a Hugging Face `tokenizer.json` (the GPT-2 / Llama-3 / Qwen2
// family): text -> pre-tokens (a regex) -> UTF-8 bytes mapped to printable characters -> BPE merges.
//
// Supported: model.type "BPE"; normalizer null or NFC/NFKC/NFD/NFKD (or a Sequence of those);
// pre_tokenizer ByteLevel (its own GPT-2 regex when use_regex is true) or a Sequence of Split (a regex,
// behavior "Isolated") and ByteLevel; decoder ByteLevel; added tokens matched literally before
// pre-tokenization. Anything else throws an Error that names what is not supported, rather than
// tokenizing differently from the model's own tokenizer.
import { readRegularTextSync, READ_CAPS } from '../util/paths';

/** The pre-tokenization regex of GPT-2, the default of the ByteLevel pre-tokenizer. */
export const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

type Json = Record<string, unknown>;

/** GPT-2's reversible map from the 256 byte values to printable characters. */
function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const map: string[] = new Array(256);
  for (const b of bs) map[b] = String.fromCodePoint(b);
  let n = 0;
  for (let b = 0; b < 256; b++) if (map[b] === undefined) map[b] = String.fromCodePoint(256 + n++);
  return map;
}
const BYTE_TO_CHAR = bytesToUnicode();
const CHAR_TO_BYTE = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));

/**
 * Makes a tokenizers (Oniguruma-style) pattern usable as a JavaScript `u` RegExp. The one construct
 * these patterns use that Node 20 lacks is a case-insensitive group `(?i:...)` (Llama-3, Qwen2): it is
 * rewritten with explicit [xX] alternatives.
 */
export function toJsRegExp(pattern: string): RegExp {
  let out = '';
  let i = 0;
  while (i < pattern.length) {
    if (pattern.startsWith('(?i:', i)) {
      out += '(?:';
      i += 4;
      let depth = 1;
      let inClass = false;
      while (i < pattern.length && depth > 0) {
        const c = pattern[i];
        if (c === '\\') {
          out += pattern.slice(i, i + 2);
          i += 2;
          continue;
        }
        if (inClass) {
          if (c === ']') inClass = false;
          out += /[a-z]/i.test(c) ? c.toLowerCase() + c.toUpperCase() : c;
        } else if (c === '[') {
          inClass = true;
          out += c;
        } else {
          if (c === '(') depth++;
          if (c === ')') depth--;
          out += /[a-z]/i.test(c) ? `[${c.toLowerCase()}${c.toUpperCase()}]` : c;
        }
        i++;
      }
      continue;
    }
    if (pattern[i] === '\\') {
      out += pattern.slice(i, i + 2);
      i += 2;
      continue;
    }
    out += pattern[i++];
  }
  try {
    return new RegExp(out, 'gu');
  } catch (e) {
    throw new Error(
      `tokenizer: pre-tokenizer regex ${JSON.stringify(pattern)} ` +
        `is not supported in JavaScript: ${(e as Error).message}`,
    );
  }
}

function unsupported(what: string, type: unknown): never {
  throw new Error(
    `tokenizer: unsupported ${what} type ${JSON.stringify(type)} ` +
      '(supported: byte-level BPE as in GPT-2, Llama-3 and Qwen2)',
  );
}

export class Tokenizer {
  private readonly vocab: Map<string, number>;
  private readonly idToToken: string[] = [];
  private readonly ranks = new Map<string, number>();
  private readonly added: { content: string; id: number }[];
  private readonly addedIds = new Set<number>();
  private readonly splitters: RegExp[] = [];
  private readonly addPrefixSpace: boolean;
  private readonly ignoreMerges: boolean;
  private readonly normalize: (s: string) => string;
  private readonly cache = new Map<string, number[]>();

  /** Reads a Hugging Face tokenizer.json. */
  static fromFile(file: string): Tokenizer {
    // Regular files only, capped: a FIFO or /dev/zero named as a tokenizer must not hang or fill memory.
    return new Tokenizer(JSON.parse(readRegularTextSync(file, 'tokenizer', READ_CAPS.tokenizer)) as Json);
  }

  constructor(json: Json) {
    const model = (json.model ?? {}) as Json;
    if (model.type !== 'BPE') unsupported('model', model.type);
    for (const key of ['continuing_subword_prefix', 'end_of_word_suffix'] as const) {
      if (model[key]) unsupported(`BPE ${key}`, model[key]);
    }
    if (model.byte_fallback) unsupported('BPE byte_fallback (SentencePiece-style BPE)', true);
    this.ignoreMerges = model.ignore_merges === true;

    this.vocab = new Map(Object.entries(model.vocab as Record<string, number>));
    for (const [t, id] of this.vocab) this.idToToken[id] = t;
    const merges = (model.merges ?? []) as (string | [string, string])[];
    merges.forEach((m, rank) => {
      const [a, b] = typeof m === 'string' ? splitMerge(m) : m;
      this.ranks.set(a + '\u0000' + b, rank);
    });

    this.added = ((json.added_tokens ?? []) as Json[]).map((t) => ({ content: String(t.content), id: Number(t.id) }));
    for (const t of this.added) {
      this.idToToken[t.id] = t.content;
      this.addedIds.add(t.id);
    }
    this.added.sort((x, y) => y.content.length - x.content.length); // longest match first

    this.normalize = normalizer(json.normalizer as Json | null | undefined);

    const pre = json.pre_tokenizer as Json | null | undefined;
    if (!pre) unsupported('pre_tokenizer', null);
    const steps = pre.type === 'Sequence' ? (pre.pretokenizers as Json[]) : [pre];
    let byteLevel: Json | undefined;
    for (const s of steps) {
      if (s.type === 'Split') {
        if (byteLevel) unsupported('pre_tokenizer Split after ByteLevel', 'Split');
        if (s.behavior !== 'Isolated' || s.invert)
          unsupported('Split behavior', `${String(s.behavior)}${s.invert ? ' (inverted)' : ''}`);
        const p = s.pattern as Json;
        if (typeof p.Regex === 'string') this.splitters.push(toJsRegExp(p.Regex));
        else if (typeof p.String === 'string') this.splitters.push(new RegExp(escapeRegExp(p.String), 'gu'));
        else unsupported('Split pattern', p);
      } else if (s.type === 'ByteLevel') {
        byteLevel = s;
      } else {
        unsupported('pre_tokenizer', s.type);
      }
    }
    if (!byteLevel) unsupported('pre_tokenizer (no ByteLevel step)', pre.type);
    if (byteLevel.use_regex !== false) this.splitters.push(toJsRegExp(GPT2_PATTERN));
    this.addPrefixSpace = byteLevel.add_prefix_space === true;

    const dec = json.decoder as Json | null | undefined;
    if (dec && dec.type !== 'ByteLevel') unsupported('decoder', dec.type);
  }

  get vocabSize(): number {
    return this.idToToken.length;
  }

  encode(text: string): number[] {
    const ids: number[] = [];
    for (const [piece, addedId] of this.splitAdded(text)) {
      if (addedId !== undefined) {
        ids.push(addedId);
        continue;
      }
      let s = this.normalize(piece);
      if (this.addPrefixSpace && !s.startsWith(' ')) s = ' ' + s;
      for (const word of this.pretokenize(s)) ids.push(...this.bpe(word));
    }
    return ids;
  }

  decode(ids: number[]): string {
    const bytes: number[] = [];
    const enc = new TextEncoder();
    for (const id of ids) {
      const tok = this.idToToken[id];
      if (tok === undefined) throw new Error(`tokenizer: id ${id} is not in the vocabulary`);
      if (this.addedIds.has(id) && !this.vocab.has(tok)) {
        bytes.push(...enc.encode(tok));
        continue;
      }
      for (const ch of tok) {
        const b = CHAR_TO_BYTE.get(ch);
        if (b === undefined) bytes.push(...enc.encode(ch));
        else bytes.push(b);
      }
    }
    return new TextDecoder('utf-8').decode(Uint8Array.from(bytes));
  }

  /** Splits on added tokens: [text, undefined] for ordinary text, ['', id] for an added token. */
  private *splitAdded(text: string): Generator<[string, number | undefined]> {
    if (this.added.length === 0) {
      if (text) yield [text, undefined];
      return;
    }
    let start = 0;
    let i = 0;
    while (i < text.length) {
      const hit = this.added.find((t) => t.content && text.startsWith(t.content, i));
      if (hit) {
        if (i > start) yield [text.slice(start, i), undefined];
        yield ['', hit.id];
        i += hit.content.length;
        start = i;
      } else {
        i++;
      }
    }
    if (start < text.length) yield [text.slice(start), undefined];
  }

  /** Applies each Split regex in turn (matches and the gaps between them are kept, "Isolated"). */
  private pretokenize(text: string): string[] {
    let pieces = [text];
    for (const re of this.splitters) {
      const next: string[] = [];
      for (const p of pieces) {
        let last = 0;
        for (const m of p.matchAll(re)) {
          if (m.index! > last) next.push(p.slice(last, m.index));
          if (m[0]) next.push(m[0]);
          last = m.index! + m[0].length;
        }
        if (last < p.length) next.push(p.slice(last));
      }
      pieces = next;
    }
    return pieces;
  }

  /** BPE of one pre-token: merge the lowest-ranked adjacent pair (every occurrence) until none is left. */
  private bpe(word: string): number[] {
    const cached = this.cache.get(word);
    if (cached) return cached;
    let syms = Array.from(new TextEncoder().encode(word), (b) => BYTE_TO_CHAR[b]);
    const whole = syms.join('');
    if (this.ignoreMerges && this.vocab.has(whole)) syms = [whole];
    while (syms.length > 1) {
      let best = Infinity;
      let bestAt = -1;
      for (let i = 0; i + 1 < syms.length; i++) {
        const r = this.ranks.get(syms[i] + '\u0000' + syms[i + 1]);
        if (r !== undefined && r < best) {
          best = r;
          bestAt = i;
        }
      }
      if (bestAt < 0) break;
      const a = syms[bestAt];
      const b = syms[bestAt + 1];
      const out: string[] = [];
      for (let i = 0; i < syms.length; i++) {
        if (i + 1 < syms.length && syms[i] === a && syms[i + 1] === b) {
          out.push(a + b);
          i++;
        } else {
          out.push(syms[i]);
        }
      }
      syms = out;
    }
    const ids = syms.map((s) => {
      const id = this.vocab.get(s);
      if (id === undefined)
        throw new Error(
          `tokenizer: symbol ${JSON.stringify(s)} is not in the vocabulary (no unk token for byte-level BPE)`,
        );
      return id;
    });
    if (this.cache.size < 100_000) this.cache.set(word, ids);
    return ids;
  }
}

function splitMerge(m: string): [string, string] {
  const i = m.indexOf(' ', 1);
  if (i < 0) throw new Error(`tokenizer: malformed merge ${JSON.stringify(m)}`);
  return [m.slice(0, i), m.slice(i + 1)];
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function normalizer(n: Json | null | undefined): (s: string) => string {
  if (!n) return (s) => s;
  if (n.type === 'Sequence') {
    const fs = (n.normalizers as Json[]).map(normalizer);
    return (s) => fs.reduce((acc, f) => f(acc), s);
  }
  if (n.type === 'NFC' || n.type === 'NFKC' || n.type === 'NFD' || n.type === 'NFKD') {
    const form = n.type;
    return (s) => s.normalize(form);
  }
  return unsupported('normalizer', n.type);
}
