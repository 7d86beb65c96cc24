// Request parameters come from the client and are not trusted to have the protocol's shape (a buggy
// or hostile client sends null, numbers for strings, negative positions). Handlers read them through
// these checks and answer "nothing" for malformed ones instead of failing with a TypeError.
import type { Position, Range } from 'vscode-languageserver/node';
import { TextDocument } from 'vscode-languageserver-textdocument';

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 2 ** 31;

/** `params.textDocument.uri`, or undefined. */
export function documentUri(params: unknown): string | undefined {
  const td = isObj(params) ? params.textDocument : undefined;
  return isObj(td) && typeof td.uri === 'string' ? td.uri : undefined;
}

/** `params.uri` (the custom haqa/* requests), or undefined. */
export function plainUri(params: unknown): string | undefined {
  return isObj(params) && typeof params.uri === 'string' ? params.uri : undefined;
}

export function isPosition(v: unknown): v is Position {
  return isObj(v) && isCount(v.line) && isCount(v.character);
}

export function isRange(v: unknown): v is Range {
  return isObj(v) && isPosition(v.start) && isPosition(v.end);
}

/** The diagnostics of a code-action request that have a proper range (others are ignored). */
export function contextDiagnostics<T>(params: unknown): T[] {
  const ctx = isObj(params) ? params.context : undefined;
  const ds = isObj(ctx) && Array.isArray(ctx.diagnostics) ? ctx.diagnostics : [];
  return ds.filter((d): d is T => isObj(d) && isRange(d.range) && typeof d.message === 'string');
}

export { isObj };

/**
 * TextDocument construction for `TextDocuments`, tolerant of a didOpen whose fields have the wrong
 * types: a document's text is always a string (else every later check would fail on it).
 */
export const SafeTextDocument = {
  create(uri: unknown, languageId: unknown, version: unknown, content: unknown): TextDocument {
    const v = Number.isInteger(version) ? (version as number) : 0;
    return TextDocument.create(String(uri), String(languageId), v, typeof content === 'string' ? content : '');
  },
  update: TextDocument.update,
};
