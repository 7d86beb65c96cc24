// Diagnostics per document, merged from any number of sources (the recipe checks here; run-derived
// diagnostics from the tuner can register their own). Each document is checked at most once per
// `delayMs`: the first change after a quiet spell is checked at once, a burst of typing is coalesced
// into one check when the delay has passed — so a single edit never waits, and typing never queues.
import type { Connection, Diagnostic, Disposable } from 'vscode-languageserver/node';
import type { TextDocument } from 'vscode-languageserver-textdocument';
import type { TextDocuments } from 'vscode-languageserver/node';
import { displayText } from '../util/sanitize';
import { withCodeLink } from './codeLinks';

export interface DiagnosticSource {
  /** Stable id; diagnostics of a source are replaced as a whole on each computation. */
  id: string;
  appliesTo(doc: TextDocument): boolean;
  compute(doc: TextDocument): Promise<Diagnostic[]> | Diagnostic[];
}

/** A diagnostic whose message is safe to show: messages quote names from model files (util/sanitize). */
function shown(d: Diagnostic): Diagnostic {
  const m: unknown = d.message;
  if (typeof m === 'string') return { ...d, message: displayText(m) };
  if (m && typeof m === 'object' && typeof (m as { value?: unknown }).value === 'string') {
    return {
      ...d,
      message: { ...(m as object), value: displayText((m as { value: string }).value) } as Diagnostic['message'],
    };
  }
  return d;
}

interface DocState {
  timer?: NodeJS.Timeout;
  running: boolean;
  dirty: boolean;
  lastRun: number;
}

export class DiagnosticsHub {
  private sources: DiagnosticSource[] = [];
  private states = new Map<string, DocState>();
  /** Called after each publish (tests and benchmarks listen here). */
  onPublished?: (uri: string, version: number, diagnostics: Diagnostic[], ms: number) => void;

  constructor(
    private readonly connection: Connection,
    private readonly documents: TextDocuments<TextDocument>,
    public delayMs = 150,
  ) {}

  register(source: DiagnosticSource): Disposable {
    this.sources.push(source);
    for (const d of this.documents.all()) this.schedule(d.uri);
    return { dispose: () => (this.sources = this.sources.filter((s) => s !== source)) };
  }

  /** Check a document soon (changes, watched files, a source with news). */
  schedule(uri: string): void {
    let st = this.states.get(uri);
    if (!st) this.states.set(uri, (st = { running: false, dirty: false, lastRun: 0 }));
    st.dirty = true;
    if (st.timer || st.running) return;
    const wait = Math.max(0, st.lastRun + this.delayMs - Date.now());
    st.timer = setTimeout(() => void this.run(uri), wait);
  }

  /** Re-check every open document a predicate selects (all when omitted). */
  refresh(pred: (doc: TextDocument) => boolean = () => true): void {
    for (const d of this.documents.all()) if (pred(d)) this.schedule(d.uri);
  }

  /** Forget a closed document and clear what the client shows for it. */
  close(uri: string): void {
    const st = this.states.get(uri);
    if (st?.timer) clearTimeout(st.timer);
    this.states.delete(uri);
    void this.connection.sendDiagnostics({ uri, diagnostics: [] });
  }

  private async run(uri: string): Promise<void> {
    const st = this.states.get(uri);
    if (!st) return;
    st.timer = undefined;
    const doc = this.documents.get(uri);
    if (!doc) return;
    st.running = true;
    st.dirty = false;
    st.lastRun = Date.now();
    const t0 = performance.now();
    const all: Diagnostic[] = [];
    for (const s of this.sources) {
      if (!s.appliesTo(doc)) continue;
      try {
        // Messages quote names from model files: no raw control or bidi characters reach the editor.
        for (const d of await s.compute(doc)) all.push(withCodeLink(shown(d)));
      } catch (err) {
        this.connection.console.error(
          `haqa: diagnostics source '${s.id}' failed on ${uri}: ${(err as Error).stack ?? err}`,
        );
      }
    }
    st.running = false;
    if (this.states.get(uri) === st && this.documents.get(uri)) {
      await this.connection.sendDiagnostics({ uri, version: doc.version, diagnostics: all });
      this.onPublished?.(uri, doc.version, all, performance.now() - t0);
    }
    if (st.dirty && this.states.get(uri) === st) {
      st.dirty = false;
      this.schedule(uri);
    }
  }
}
