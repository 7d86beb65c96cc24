// What the recipe and config.json checks produce: LSP diagnostics (0-based line/character ranges in
// UTF-16 code units, which is what JavaScript string offsets are), each with a stable `code` from
// docs/diagnostics.md and source 'haqa'. The editor, `haqa check` and the agent all read these.
import type { Diagnostic, Position, Range } from 'vscode-languageserver-types';

export type { Diagnostic, Position, Range };

export const Severity = { error: 1, warning: 2, information: 3, hint: 4 } as const;
export type SeverityName = keyof typeof Severity;
export const severityName = (s: number | undefined): SeverityName =>
  (['error', 'error', 'warning', 'information', 'hint'] as const)[s ?? 1] ?? 'error';

/**
 * Machine-readable detail a quick fix needs. Carried in `Diagnostic.data` so code actions can be
 * computed from the diagnostics the client sends back, without re-running the checks.
 */
export type FixData =
  // set the value at path to one of these (`remove`: the entry a "remove" alternative drops, e.g. a whole override)
  | { fix: 'replace'; path: (string | number)[]; values: unknown[]; remove?: (string | number)[] }
  | { fix: 'rename-key'; path: (string | number)[]; to: string } // key at path (last element) renamed
  | { fix: 'remove'; path: (string | number)[] } // drop the entry (a sequence item or a key)
  | { fix: 'set'; path: (string | number)[]; value: unknown; title: string } // set a related value
  // tuner knobs (plan.ts), via edit.ts
  | { fix: 'knobs'; assignment: Record<string, string | number | boolean | null>; title: string };

export function diag(range: Range, severity: SeverityName, code: string, message: string, data?: FixData): Diagnostic {
  const d: Diagnostic = { range, severity: Severity[severity], code, source: 'haqa', message };
  if (data) d.data = data;
  return d;
}

/** Line starts of a text, and offset ↔ position conversion by binary search. */
export class LineIndex {
  readonly starts: number[] = [0];
  constructor(readonly text: string) {
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 10) this.starts.push(i + 1);
      else if (c === 13 && text.charCodeAt(i + 1) !== 10) this.starts.push(i + 1);
    }
  }
  position(offset: number): Position {
    const o = Math.max(0, Math.min(offset, this.text.length));
    let lo = 0,
      hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= o) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo, character: o - this.starts[lo] };
  }
  offset(p: Position): number {
    if (p.line < 0) return 0;
    if (p.line >= this.starts.length) return this.text.length;
    const lineEnd = p.line + 1 < this.starts.length ? this.starts[p.line + 1] : this.text.length;
    return Math.min(this.starts[p.line] + Math.max(0, p.character), lineEnd);
  }
  range(start: number, end: number): Range {
    return { start: this.position(start), end: this.position(Math.max(start, end)) };
  }
}

/** Levenshtein distance, for "did you mean". */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  const prev = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    let diagPrev = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diagPrev + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagPrev = tmp;
    }
  }
  return prev[b.length];
}

/** The closest candidate, if it is close enough to be a plausible typo. */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(Math.max(word.length, best.length) / 3))
    ? best
    : undefined;
}

/** The plain text of a diagnostic message (LSP 3.18 allows markup there; ours are plain strings). */
export function messageText(d: Diagnostic): string {
  return typeof d.message === 'string' ? d.message : (d.message as { value: string }).value;
}
