// Each diagnostic code links to its row in docs/diagnostics.md (LSP codeDescription): the editor shows
// the code as a link in Problems and in the hover. One table of where the docs live; the anchors are
// the `<a id="code">` in each row of that file.
import type { Diagnostic } from 'vscode-languageserver/node';

export const DIAGNOSTICS_DOC = 'https://github.com/haqa/haqa/blob/main/docs/diagnostics.md';

/** The diagnostic with a link to its code's documentation (haqa's own codes only). */
export function withCodeLink(d: Diagnostic): Diagnostic {
  if (d.source !== 'haqa' || typeof d.code !== 'string' || !/^[a-z0-9-]+$/.test(d.code) || d.codeDescription) return d;
  return { ...d, codeDescription: { href: `${DIAGNOSTICS_DOC}#${d.code}` } };
}
