// Nesting depth and size in tokens, bounded before any parser sees the text. The yaml and jsonc parsers
// recurse once per level (about a thousand levels overflow the stack), the yaml parser slows down
// sharply with depth (100,000 levels took seconds) and costs tens of µs per structure token even on junk.
// No recipe or config.json nests more than a handful of levels, so a linear, iterative scan refuses
// deep or token-heavy text up front, pointing at where the limit is crossed.

/** Deeper than any recipe or config.json needs; shallow enough for every recursive step after parsing. */
export const MAX_NESTING = 64;

/** Offset where JSON nesting first exceeds `max` (strings skipped), or undefined. */
export function jsonTooDeep(text: string, max = MAX_NESTING): number | undefined {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return i;
    } else if (c === 0x5d || c === 0x7d) depth = Math.max(0, depth - 1);
  }
  return undefined;
}

/**
 * Offset where YAML nesting first exceeds `max`, or undefined. An estimate that never undercounts what
 * a parser would build: block levels (the indentation stack, plus each compact `- ` / `? ` on a line)
 * plus open flow collections (`[` and `{` where a value starts, and any inside a flow collection).
 * Quoted strings, comments and block scalars (`|`, `>`) are skipped.
 */
export function yamlTooDeep(text: string, max = MAX_NESTING): number | undefined {
  const b = yamlBounds(text, max, Infinity);
  return b?.kind === 'depth' ? b.offset : undefined;
}

/**
 * More structure tokens than any recipe has (`:`, `-`, `?` before a space, `[ ] { } ,` in flow), about
 * 12 a line in a real recipe. The yaml parser's cost is per token and far from cheap on junk (a
 * megabyte of `- ` inside a flow list took seconds), so the token count bounds the parse time.
 */
export const MAX_YAML_TOKENS = 20_000;

/** Where nesting (`depth`) or the token count (`tokens`) first exceeds its bound, or undefined. */
export function yamlBounds(
  text: string,
  max = MAX_NESTING,
  maxTokens = MAX_YAML_TOKENS,
): { offset: number; kind: 'depth' | 'tokens' } | undefined {
  let tokens = 0;
  const indents: number[] = [];
  let flow = 0;
  let quote = 0; // 0, or the quote character code of a string that spans lines
  let blockScalarIndent = -1; // >= 0 while inside a block scalar's lines
  let pos = 0;
  while (pos <= text.length) {
    let end = text.indexOf('\n', pos);
    if (end < 0) end = text.length;
    let i = pos;
    while (i < end && text.charCodeAt(i) === 0x20) i++;
    const indent = i - pos;
    const blank = i >= end || text.charCodeAt(i) === 0x0d || (text.charCodeAt(i) === 0x23 && !quote && !flow);
    if (blockScalarIndent >= 0) {
      if (blank || indent > blockScalarIndent) {
        pos = end + 1;
        continue;
      }
      blockScalarIndent = -1;
    }
    if (blank) {
      pos = end + 1;
      continue;
    }
    let depth = 0;
    if (!flow && !quote) {
      while (indents.length && indents[indents.length - 1] >= indent) indents.pop();
      indents.push(indent);
      // Compact nested sequences or complex keys: `- - - x`.
      while (i + 1 < end && (text[i] === '-' || text[i] === '?') && (text[i + 1] === ' ' || text[i + 1] === '\t')) {
        depth++;
        i += 2;
        while (i < end && text.charCodeAt(i) === 0x20) i++;
      }
      tokens += depth;
      if (tokens > maxTokens) return { offset: i, kind: 'tokens' };
      depth += indents.length;
      if (depth + flow > max) return { offset: i, kind: 'depth' };
    }
    let valueStart = true; // where a `[`/`{` opens a flow collection in block context
    let last = '';
    for (; i < end; i++) {
      const ch = text[i];
      if (quote) {
        if (quote === 0x22 && ch === '\\') i++;
        else if (ch.charCodeAt(0) === quote) quote = 0;
        continue;
      }
      if (ch === '#' && (last === '' || last === ' ' || last === '\t')) break;
      const next = i + 1 < end ? text[i + 1] : ' ';
      const spaced = next === ' ' || next === '\t' || next === '\r';
      const indicator = (ch === ':' || ch === '-' || ch === '?') && spaced;
      if (indicator || (flow > 0 && (ch === ',' || ch === '[' || ch === ']' || ch === '{' || ch === '}'))) {
        if (++tokens > maxTokens) return { offset: i, kind: 'tokens' };
      }
      const tokenStart = last === '' || last === ' ' || last === '\t' || last === ',' || last === '[' || last === '{';
      if ((ch === '"' || ch === "'") && tokenStart) quote = ch.charCodeAt(0);
      else if ((ch === '[' || ch === '{') && (flow > 0 || valueStart)) {
        flow++;
        if (depth + flow > max) return { offset: i, kind: 'depth' };
      } else if ((ch === ']' || ch === '}') && flow > 0) flow--;
      if (ch !== ' ' && ch !== '\t') {
        valueStart = flow > 0 ? false : ch === ':' || ch === '-' || ch === '?';
        if (ch === ':' && i + 1 < end && text[i + 1] !== ' ' && text[i + 1] !== '\t') valueStart = false;
      }
      last = ch;
    }
    if (!flow && !quote) {
      // A block scalar header ends the line: `key: |`, `- >-`, `key: |2 # comment`.
      const content = text.slice(pos, i).replace(/\s+$/, '');
      if (/(^|[\s:-])[|>][-+0-9]*$/.test(content)) blockScalarIndent = indent;
    }
    pos = end + 1;
  }
  return undefined;
}
