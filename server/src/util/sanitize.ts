// Untrusted text — what the LLM says (explanations, rationales, advice) and strings read from model
// files and recipes (layer and node names, op types, config.json fields, tokenizer strings) — made safe
// for where it goes. Three sinks, one module:
// - a terminal or the editor (displayText): C0/C1 control characters, DEL, bidi overrides and
//   line/paragraph separators become visible `\u001b`-style escapes, so an ESC sequence cannot clear the
//   screen, set the title or reorder text; newlines and tabs stay (prose is multi-line). The escapes are
//   also JSON escapes, so `--json` output stays valid and means the same.
// - a prompt or tool result sent to the LLM (promptText, promptJson): the same escapes, newlines too,
//   and `<`/`>` as \u003c/\u003e, so no string from a file can open or close a tag-delimited block.
// - a name quoted to the LLM (promptName): kept when it is a plausible identifier, else a placeholder
//   with its index — nothing that reads as an instruction survives.

/**
 * Control characters past C0 (DEL, C1), bidi marks, embeddings, overrides and isolates, line/paragraph separators, BOM.
 */
const INVISIBLE = '\\u007f-\\u009f\\u061c\\u200e\\u200f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069\\ufeff';
const DISPLAY_UNSAFE = new RegExp(`\\r\\n|[\\u0000-\\u0008\\u000b-\\u001f${INVISIBLE}]`, 'g');
const PROMPT_UNSAFE = new RegExp(`[\\u0000-\\u001f${INVISIBLE}<>]`, 'g');
const PROMPT_UNSAFE_KEEP_NL = new RegExp(`[\\u0000-\\u0009\\u000b-\\u001f${INVISIBLE}<>]`, 'g');
const FLAT_UNSAFE = new RegExp(`[\\u0000-\\u001f${INVISIBLE}]`, 'g');

const escape = (c: string): string => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/** Text for a terminal or the editor: control and bidi characters escaped, newlines and tabs kept. */
export function displayText(s: unknown): string {
  return String(s).replace(DISPLAY_UNSAFE, (c) => (c === '\r\n' ? '\n' : escape(c)));
}

/** One line for a terminal or the editor (a name, a table cell): displayText with newlines and tabs escaped too. */
export function lineText(s: unknown): string {
  return displayText(s).replace(/[\n\t]/g, escape);
}

/** At most `max` characters (a trailing … says it was cut), never splitting a surrogate pair. */
export function clip(s: string, max: number): string {
  if (s.length <= max) return s;
  let end = Math.max(0, max - 1);
  if (end > 0 && /[\ud800-\udbff]/.test(s[end - 1])) end--;
  return `${s.slice(0, end)}…`;
}

/**
 * Text for a prompt or a tool result: every control character (newlines too, unless `newlines`), bidi
 * control and angle bracket escaped as \uXXXX. Applied to JSON text it keeps the JSON valid and equal.
 */
export function promptText(s: unknown, opts: { newlines?: boolean } = {}): string {
  return String(s).replace(opts.newlines ? PROMPT_UNSAFE_KEEP_NL : PROMPT_UNSAFE, escape);
}

/** JSON for a prompt or tool result: valid JSON whose text has no control characters and no `<`/`>`. */
export function promptJson(v: unknown, indent?: number): string {
  return promptText(JSON.stringify(v ?? null, null, indent), { newlines: indent !== undefined });
}

/** One line of untrusted text to quote as data: control characters become spaces, at most `max` characters. */
export function flatText(s: unknown, max = 120): string {
  return clip(String(s).replace(FLAT_UNSAFE, ' '), max);
}

/** Layer, node, tensor and knob names as exporters write them (globs included): no spaces, quotes or markup. */
const PLAUSIBLE_NAME = /^[\w.:/#*?@+\-[\]]{1,200}$/;

export function isPlausibleName(s: unknown): s is string {
  return typeof s === 'string' && PLAUSIBLE_NAME.test(s);
}

/** A name from a file for the LLM: itself when plausible, else `name-withheld-<index>` (the index tells them apart). */
export function promptName(s: unknown, index: number, kind = 'name'): string {
  return isPlausibleName(s) ? s : `${kind}-withheld-${index}`;
}
